//! nudge-load: sends signed webhook events to a running Nudge as fast as it
//! answers, over keep-alive HTTP/1.1 connections, and reports throughput and
//! latency. Creates (or re-keys) the benchmark source through the API first.
//! With `--sse-clients N` it measures the live stream instead: N idle clients,
//! a trickle of events, and the time from each event's request to each client.
//! `nudge-load suite` runs every benchmark scenario, each on a fresh server.

// The modules live in `nudge_load/` beside this file; a crate root looks for
// them next to itself, and a `src/bin/*.rs` there would become a binary.
#[path = "nudge_load/client.rs"]
mod client;
#[path = "nudge_load/report.rs"]
mod report;
#[path = "nudge_load/server.rs"]
mod server;
#[path = "nudge_load/sse.rs"]
mod sse;
#[path = "nudge_load/suite.rs"]
mod suite;
#[path = "nudge_load/traffic.rs"]
mod traffic;
#[path = "nudge_load/workflows.rs"]
mod workflows;

use anyhow::Context;
use clap::{Parser, Subcommand};
use client::{histogram_quantile, percentile, prepare_source, ExecutorFigures};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Signed webhook load for Nudge benchmarks.
#[derive(Debug, Parser)]
#[command(name = "nudge-load", args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Every benchmark scenario, each on a fresh release server and SQLite folder:
    /// single events at 16 and 64 connections, half the 64-connection rate, batches
    /// of 100, a soak, and the live stream with 1,000 and 10,000 clients. Prints a
    /// Markdown table with the targets and writes the figures as JSON.
    Suite(suite::SuiteArgs),
}

/// Load against a running server.
#[derive(Debug, clap::Args)]
struct LoadArgs {
    /// Nudge's address.
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: String,
    /// An editor or admin API key, to create the benchmark source.
    #[arg(long, env = "NUDGE_API_KEY")]
    api_key: Option<String>,
    /// Slug of the benchmark source (created if missing, re-keyed if present).
    #[arg(long, default_value = "bench")]
    slug: String,
    /// Parallel connections.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds to send for.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Events per request: 1 sends single events, more sends arrays.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Distinct customer ids the events are spread over.
    #[arg(long, default_value_t = 100_000)]
    customers: u64,
    /// Publish this many workflows first (the suite's twenty in turn: the three
    /// starter templates, then variations), then wait for the executor to run
    /// every event and report its figures too. Their webhooks call a receiver
    /// inside nudge-load.
    #[arg(long, default_value_t = 0)]
    workflows: usize,
    /// Print the machine-readable JSON report instead of the one-line summary.
    #[arg(long)]
    json: bool,
    /// SSE mode: open this many `/api/v1/stream?topics=events` clients, then
    /// send `--rate` single events a second and report event → client latency.
    #[arg(long, default_value_t = 0)]
    sse_clients: usize,
    /// Events a second in SSE mode.
    #[arg(long, default_value_t = 1)]
    rate: u64,
    /// The server's process id, to report its memory per idle SSE client.
    #[arg(long)]
    server_pid: Option<u32>,
}

async fn sse_mode(args: &LoadArgs, key: &str, secret: String) -> anyhow::Result<()> {
    let report = sse::run(&sse::SseParams {
        addr: args.addr.clone(),
        key: key.to_string(),
        slug: args.slug.clone(),
        secret,
        clients: args.sse_clients,
        rate: args.rate,
        seconds: args.seconds,
        customers: args.customers,
        server_pid: args.server_pid,
    })
    .await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{:>6} SSE clients  {} events  {} of {} deliveries  event→client p50 {:.2} ms  p99 {:.2} ms  {} KiB per idle client",
            report.sse_clients,
            report.events,
            report.deliveries,
            report.expected_deliveries,
            report.event_to_client_ms.p50,
            report.event_to_client_ms.p99,
            report.kib_per_idle_client.map_or("-".into(), |k| format!("{k:.1}")),
        );
    }
    Ok(())
}

async fn load_mode(args: LoadArgs) -> anyhow::Result<()> {
    let key = args.api_key.clone().context("--api-key (or NUDGE_API_KEY) is required")?;
    let secret = prepare_source(&args.addr, &key, &args.slug).await?;
    if args.sse_clients > 0 {
        return sse_mode(&args, &key, secret).await;
    }
    let sink = workflows::Sink::start().await?;
    workflows::publish(&args.addr, &key, &sink.base, args.workflows).await?;
    let executor_before = ExecutorFigures::fetch(&args.addr).await?;
    let started = Instant::now();
    let plan = traffic::Plan {
        addr: args.addr.clone(),
        slug: args.slug.clone(),
        secret,
        concurrency: args.concurrency,
        batch: args.batch,
        customers: args.customers,
        duration: Duration::from_secs(args.seconds),
        rate: None,
        run: format!("w{}", time::OffsetDateTime::now_utc().unix_timestamp()),
    };
    let (total, elapsed) = traffic::send(plan, Arc::new(AtomicU64::new(0))).await?;
    // The executor's figures: wait until it has run every event sent.
    let mut executor_after = ExecutorFigures::fetch(&args.addr).await?;
    let drain_deadline = Instant::now() + Duration::from_secs(600);
    while executor_after.backlog > 0 && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        executor_after = ExecutorFigures::fetch(&args.addr).await?;
    }
    let executed_in = started.elapsed().as_secs_f64();
    let handled = executor_after.handled.saturating_sub(executor_before.handled);
    let l = &total.latencies_us;
    let events_per_second = total.events as f64 / elapsed;
    let requests_per_second = total.requests as f64 / elapsed;
    let commit_p50 = histogram_quantile(&executor_before, &executor_after, 0.50);
    let commit_p99 = histogram_quantile(&executor_before, &executor_after, 0.99);
    if args.json {
        let report = serde_json::json!({
            "concurrency": args.concurrency,
            "batch": args.batch,
            "seconds": elapsed,
            "requests": total.requests,
            "events_accepted": total.events,
            "events_per_second": events_per_second,
            "requests_per_second": requests_per_second,
            "latency_ms": { "p50": percentile(l, 0.50), "p99": percentile(l, 0.99), "p999": percentile(l, 0.999), "max": percentile(l, 1.0) },
            "errors_by_status": total.errors,
            "executor": {
                "events_handled": handled,
                "seconds_until_drained": executed_in,
                "events_per_second": handled as f64 / executed_in,
                "backlog_left": executor_after.backlog,
                "event_to_commit_ms": { "p50": commit_p50, "p99": commit_p99 },
            },
            "webhooks_received": sink.calls(),
        });
        println!("{report}");
        return Ok(());
    }
    println!(
        "{:>6} conn  batch {:>4}  {:>9.0} events/s  {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  p99.9 {:>6.2} ms  errors {:?}",
        args.concurrency,
        args.batch,
        events_per_second,
        requests_per_second,
        percentile(l, 0.50),
        percentile(l, 0.99),
        percentile(l, 0.999),
        total.errors
    );
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2} ms"));
    println!(
        "{:>6}       executed {:>9.0} events/s  drained after {:.1} s  event→commit p50 {}  p99 {}",
        "",
        handled as f64 / executed_in,
        executed_in,
        ms(commit_p50),
        ms(commit_p99),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::Suite(args)) => suite::run(args).await,
        None => load_mode(cli.load).await,
    }
}
