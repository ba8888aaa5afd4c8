# Nudge — two commands: `make run` and `make test`. Each installs what is missing.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := run

CARGO_LEPTOS_VERSION := 0.3.11
# Must equal the wasm-bindgen crate version pinned in Cargo.toml.
WASM_BINDGEN_VERSION := 0.2.130
# cargo-leptos 0.3.11's own lockfile needs rustc 1.96 to build; only the tool uses it.
TOOL_TOOLCHAIN := 1.96.0
TEST_POSTGRES_URL ?=

# wasm-opt (binaryen, from npm) and the cargo tools are looked up on PATH.
export PATH := $(CURDIR)/end2end/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)
# Where cargo puts binaries: CI keeps its build cache outside the clone.
BIN_DIR := $(or $(CARGO_TARGET_DIR),target)
# The same value cargo-leptos sets, so plain cargo commands share its build cache.
export LEPTOS_OUTPUT_NAME := nudge
export TEST_POSTGRES_URL

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)


.PHONY: bench bench-quick bench-ingest bench-executor bench-sse bench-dashboard
.PHONY: run test tools tool-rust tool-cargo-leptos tool-wasm-bindgen tool-chromium tool-npm \
        fmt-check clippy rust-test build-release e2e clean-data

## Build (release) and serve on http://127.0.0.1:3000, SQLite in ./data.
run: tools
	cargo leptos serve --release

## Everything CI checks: format, lints, Rust tests (SQLite, and Postgres when
## TEST_POSTGRES_URL is set), the release build and the Playwright browser tests.
test: tools fmt-check clippy rust-test build-release e2e
	@echo "make test: all green"

tools: tool-rust tool-cargo-leptos tool-wasm-bindgen tool-chromium tool-npm

tool-rust:
	@command -v rustup >/dev/null || { echo "rustup is required: https://rustup.rs"; exit 1; }
	@rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
	@rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

tool-cargo-leptos:
	@if ! cargo leptos --version 2>/dev/null | grep -q "$(CARGO_LEPTOS_VERSION)"; then \
	  echo "Installing cargo-leptos $(CARGO_LEPTOS_VERSION) (about 15 minutes, once)"; \
	  rustup toolchain install $(TOOL_TOOLCHAIN) --profile minimal; \
	  cd /tmp && CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
	    cargo +$(TOOL_TOOLCHAIN) install cargo-leptos --version $(CARGO_LEPTOS_VERSION) --locked; \
	fi

tool-wasm-bindgen:
	@if ! wasm-bindgen --version 2>/dev/null | grep -q "$(WASM_BINDGEN_VERSION)"; then \
	  echo "Installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION) (about 5 minutes, once)"; \
	  cd /tmp && CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
	    cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION); \
	fi

tool-chromium:
	@if ! [ -x /usr/bin/chromium ]; then \
	  echo "Installing Debian's Chromium for the browser tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; \
	fi

tool-npm: end2end/node_modules/.installed

end2end/node_modules/.installed: end2end/package.json end2end/package-lock.json
	cd end2end && npm ci --no-audit --no-fund
	touch $@

fmt-check:
	cargo fmt --all -- --check

clippy:
	cargo clippy -p app -p server --all-targets --features app/ssr -- -D warnings
	cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings

rust-test:
	@if [ -n "$(TEST_POSTGRES_URL)" ]; then echo "Rust tests on SQLite and Postgres ($(TEST_POSTGRES_URL))"; \
	  else echo "Rust tests on SQLite (set TEST_POSTGRES_URL to add Postgres)"; fi
	cargo test -p app --features ssr
	# One test at a time in each server test binary: pages rendered by tests on
	# parallel threads (each its own runtime, sharing Leptos' global reactive
	# state) now and then left a page's resource unresolved and its test hung
	# (1 run in 3 to 15 of the api tests in parallel, none in 40 serially).
	cargo test -p server -- --test-threads=1

build-release:
	@start=$$(date +%s); cargo leptos build --release; echo "release build: $$(( $$(date +%s) - start )) s"
	@ls -l target/site/pkg/nudge.wasm | awk '{ printf "wasm size: %d bytes\n", $$5 }'

e2e: build-release
	cd end2end && CI=$${CI:-} NUDGE_BIN=$(abspath $(BIN_DIR))/release/nudge npx playwright test

## The whole benchmark suite (docs/benchmarks.md), each run on a fresh release server
## and SQLite folder with 20 published workflows: single events at 16 and 64
## connections, half the 64-connection rate, batches of 100, a soak, and the live
## stream with 1,000 and 10,000 clients. Prints a Markdown table beside the targets
## and writes the figures to BENCH_OUT (JSON; .md beside it). About 10 minutes after
## the build; `make bench-quick` is a two-minute smoke check.
BENCH_REPEAT ?= 3
BENCH_SECONDS ?= 15
BENCH_SOAK_SECONDS ?= 60
BENCH_OUT ?= target/bench/results.json
BENCH_QUICK ?=
bench: tool-rust
	@start=$$(date +%s); echo "cargo build --release -p server --bins"; cargo build --release -p server --bins; \
	ulimit -n $$(ulimit -Hn) 2>/dev/null || true; status=0; \
	$(BIN_DIR)/release/nudge-load suite --server-bin $(BIN_DIR)/release/nudge --out $(BENCH_OUT) \
	  $(if $(BENCH_QUICK),--quick,--repeat $(BENCH_REPEAT) --seconds $(BENCH_SECONDS) --soak-seconds $(BENCH_SOAK_SECONDS)) \
	  || status=$$?; \
	echo "make bench: $$(( $$(date +%s) - start )) s, the release build included"; exit $$status

bench-quick:
	@$(MAKE) --no-print-directory bench BENCH_QUICK=1 BENCH_OUT=target/bench/quick.json

## Webhook ingest throughput on a fresh SQLite database (release build, loopback):
## single events at 16 and 64 connections, then batches of 100.
BENCH_ADDR ?= 127.0.0.1:3400
bench-ingest:
	cargo build --release -p server --bins
	@dir=$$(mktemp -d /tmp/nudge-bench.XXXXXX); \
	export NUDGE_DATA_DIR=$$dir NUDGE_ADDR=$(BENCH_ADDR) NUDGE_INGEST_RATE_LIMIT=0 NUDGE_LOG=warn; \
	key=$$($(BIN_DIR)/release/nudge api-key create --name bench --role editor 2>/dev/null); \
	$(BIN_DIR)/release/nudge & pid=$$!; trap "kill $$pid 2>/dev/null; rm -rf $$dir" EXIT; \
	for i in $$(seq 50); do curl -sf http://$(BENCH_ADDR)/healthz >/dev/null && break; sleep 0.1; done; \
	echo "nudge-load against $(BENCH_ADDR), SQLite in $$dir, $(BENCH_SECONDS) s per run, $$(nproc) cores"; \
	for run in "16 1" "64 1" "16 100"; do set -- $$run; \
	  $(BIN_DIR)/release/nudge-load --addr $(BENCH_ADDR) --api-key $$key --concurrency $$1 --batch $$2 --seconds $(BENCH_SECONDS); \
	done; \
	du -sh $$dir | awk '{ print "database on disk: " $$1 }'

## Ingest plus execution: the three starter templates published, then signed events
## until the executor has run every one; prints events/s executed and the p50/p99
## time from an event's arrival to the commit of its runs and actions.
bench-executor:
	cargo build --release -p server --bins
	@dir=$$(mktemp -d /tmp/nudge-bench.XXXXXX); \
	export NUDGE_DATA_DIR=$$dir NUDGE_ADDR=$(BENCH_ADDR) NUDGE_INGEST_RATE_LIMIT=0 NUDGE_LOG=warn; \
	key=$$($(BIN_DIR)/release/nudge api-key create --name bench --role editor 2>/dev/null); \
	$(BIN_DIR)/release/nudge & pid=$$!; trap "kill $$pid 2>/dev/null; rm -rf $$dir" EXIT; \
	for i in $$(seq 50); do curl -sf http://$(BENCH_ADDR)/healthz >/dev/null && break; sleep 0.1; done; \
	echo "nudge-load against $(BENCH_ADDR) with 3 published workflows, SQLite in $$dir, $(BENCH_SECONDS) s per run, $$(nproc) cores"; \
	workflows=3; for run in "16 1" "64 1" "16 100"; do set -- $$run; \
	  $(BIN_DIR)/release/nudge-load --addr $(BENCH_ADDR) --api-key $$key --concurrency $$1 --batch $$2 --seconds $(BENCH_SECONDS) --workflows $$workflows; \
	  workflows=0; \
	done

## The live stream: 1,000 SSE clients with 20 events a second (event → client
## p50/p99), then 10,000 idle clients (server memory per client).
bench-sse:
	cargo build --release -p server --bins
	@ulimit -n $$(ulimit -Hn); dir=$$(mktemp -d /tmp/nudge-bench.XXXXXX); \
	export NUDGE_DATA_DIR=$$dir NUDGE_ADDR=$(BENCH_ADDR) NUDGE_INGEST_RATE_LIMIT=0 NUDGE_LOG=warn; \
	key=$$($(BIN_DIR)/release/nudge api-key create --name bench --role editor 2>/dev/null); \
	$(BIN_DIR)/release/nudge & pid=$$!; trap "kill $$pid 2>/dev/null; rm -rf $$dir" EXIT; \
	for i in $$(seq 50); do curl -sf http://$(BENCH_ADDR)/healthz >/dev/null && break; sleep 0.1; done; \
	echo "nudge-load SSE against $(BENCH_ADDR), $$(nproc) cores"; \
	$(BIN_DIR)/release/nudge-load --addr $(BENCH_ADDR) --api-key $$key --sse-clients 1000 --rate 20 --seconds $(BENCH_SECONDS) --server-pid $$pid; \
	$(BIN_DIR)/release/nudge-load --addr $(BENCH_ADDR) --api-key $$key --sse-clients 10000 --rate 1 --seconds 5 --server-pid $$pid

## Dashboard reads over a database seeded with about a million events
## (batches of 100 for BENCH_SEED_SECONDS), then the summary and series timed.
BENCH_SEED_SECONDS ?= 160
bench-dashboard:
	cargo build --release -p server --bins
	@dir=$$(mktemp -d /tmp/nudge-bench.XXXXXX); \
	export NUDGE_DATA_DIR=$$dir NUDGE_ADDR=$(BENCH_ADDR) NUDGE_INGEST_RATE_LIMIT=0 NUDGE_LOG=warn; \
	key=$$($(BIN_DIR)/release/nudge api-key create --name bench --role editor 2>/dev/null); \
	$(BIN_DIR)/release/nudge & pid=$$!; trap "kill $$pid 2>/dev/null; rm -rf $$dir" EXIT; \
	for i in $$(seq 50); do curl -sf http://$(BENCH_ADDR)/healthz >/dev/null && break; sleep 0.1; done; \
	$(BIN_DIR)/release/nudge-load --addr $(BENCH_ADDR) --api-key $$key --concurrency 16 --batch 100 --seconds $(BENCH_SEED_SECONDS) --workflows 3; \
	events=$$(sqlite3 $$dir/nudge.db 'select count(*) from event' 2>/dev/null || echo '?'); \
	echo "seeded: $$events events; database $$(du -sh $$dir | cut -f1)"; \
	for path in "/api/v1/metrics/summary?range=24h" "/api/v1/metrics/summary?range=30d" \
	            "/api/v1/metrics/timeseries?metric=events&range=24h" "/api/v1/metrics/timeseries?metric=offers_issued&range=30d"; do \
	  for run in 1 2 3; do curl -s -o /dev/null -w "%{time_total}\n" -H "Authorization: Bearer $$key" "http://$(BENCH_ADDR)$$path"; done \
	    | sort -n | sed -n 2p | awk -v p="$$path" '{ printf "%-55s median of 3: %.1f ms\n", p, $$1 * 1000 }'; \
	done

## Forget the local database (asks first).
clean-data:
	@read -p "Delete ./data and everything in it? [y/N] " a && [ "$$a" = y ] && rm -rf data || true
