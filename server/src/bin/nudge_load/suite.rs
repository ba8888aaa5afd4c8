//! `nudge-load suite`: every benchmark scenario, each on a fresh release server
//! and SQLite database, reported as a Markdown table and a JSON file.

use super::client::{histogram_quantile, percentile, prepare_source, Conn, ExecutorFigures};
use super::report::{
    self, median_index, CommitLatency, Kind, Latency, Machine, Results, RunFigures, Scenario, SseFigures, Window,
};
use super::server::{cpu_seconds, open_files_limit, rss_anon_kib, rss_kib, Server};
use super::sse::{self, SseParams};
use super::traffic::{self, Plan};
use super::workflows::{self, Sink};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Workflows published on every scenario's server.
const WORKFLOWS: usize = 20;
const SLUG: &str = "bench";

/// Runs every scenario, each on a fresh release server with its own SQLite folder.
#[derive(Debug, Clone, clap::Args)]
pub struct SuiteArgs {
    /// The server binary to start for each run.
    #[arg(long, default_value = "target/release/nudge")]
    server_bin: PathBuf,
    /// Where to write the JSON results (the Markdown goes beside it, as .md;
    /// the servers' logs into a `logs` folder there).
    #[arg(long, default_value = "target/bench/results.json")]
    out: PathBuf,
    /// Runs of each throughput scenario; the median run is reported [default: 3; quick: 1].
    #[arg(long)]
    repeat: Option<usize>,
    /// Seconds of load per throughput run and per live-stream scenario [default: 15; quick: 3].
    #[arg(long)]
    seconds: Option<u64>,
    /// Seconds of the soak at 64 connections [default: 60; quick: 10].
    #[arg(long)]
    soak_seconds: Option<u64>,
    /// Longest wait, per run, for the executor to run what was accepted.
    #[arg(long, default_value_t = 60)]
    drain_seconds: u64,
    /// Keep each run's data folder (its path is in the JSON) instead of removing it.
    #[arg(long)]
    keep_data: bool,
    /// Clients of the live-stream fan-out scenario [default: 1000; quick: 100].
    #[arg(long)]
    sse_clients: Option<usize>,
    /// Clients of the idle live-stream scenario [default: 10000; quick: 1000].
    #[arg(long)]
    sse_idle_clients: Option<usize>,
    /// A smoke check: one short run of each scenario, fewer stream clients.
    #[arg(long)]
    quick: bool,
    /// Only these scenarios (comma-separated): store-only, single-16, single-64,
    /// half-rate, store-only-batch, batch-100, soak-64, sse-fanout, sse-idle.
    /// half-rate needs single-64.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Distinct customer ids the events are spread over.
    #[arg(long, default_value_t = 100_000)]
    customers: u64,
}

const SCENARIOS: [&str; 9] = [
    "store-only",
    "single-16",
    "single-64",
    "half-rate",
    "store-only-batch",
    "batch-100",
    "soak-64",
    "sse-fanout",
    "sse-idle",
];

/// The settings once defaults (normal or quick) are filled in.
struct Settings {
    bin: PathBuf,
    out: PathBuf,
    logs: PathBuf,
    repeat: usize,
    seconds: u64,
    soak_seconds: u64,
    drain: Duration,
    sse_clients: usize,
    sse_idle_clients: usize,
    customers: u64,
    only: Vec<String>,
    keep_data: bool,
}

impl Settings {
    fn from(a: &SuiteArgs) -> anyhow::Result<Settings> {
        let q = a.quick;
        let only = a.only.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect::<Vec<_>>();
        if let Some(bad) = only.iter().find(|s| !SCENARIOS.contains(&s.as_str())) {
            bail!("no scenario '{bad}'; there are {}", SCENARIOS.join(", "));
        }
        if !a.server_bin.is_file() {
            bail!(
                "no server binary at {}; build it with `cargo build --release -p server --bins` (or pass --server-bin)",
                a.server_bin.display()
            );
        }
        let logs = a.out.parent().unwrap_or(Path::new(".")).join("logs");
        Ok(Settings {
            bin: a.server_bin.clone(),
            out: a.out.clone(),
            logs,
            repeat: a.repeat.unwrap_or(if q { 1 } else { 3 }).max(1),
            seconds: a.seconds.unwrap_or(if q { 3 } else { 15 }).max(1),
            soak_seconds: a.soak_seconds.unwrap_or(if q { 10 } else { 60 }).max(5),
            drain: Duration::from_secs(a.drain_seconds),
            sse_clients: a.sse_clients.unwrap_or(if q { 100 } else { 1000 }),
            sse_idle_clients: a.sse_idle_clients.unwrap_or(if q { 1000 } else { 10_000 }),
            customers: a.customers.max(1),
            only,
            keep_data: a.keep_data,
        })
    }

    fn wants(&self, id: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == id)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "server_bin": self.bin, "repeat": self.repeat, "seconds": self.seconds,
            "soak_seconds": self.soak_seconds, "drain_seconds": self.drain.as_secs(),
            "sse_clients": self.sse_clients, "sse_idle_clients": self.sse_idle_clients,
            "customers": self.customers, "workflows": WORKFLOWS,
        })
    }
}

/// One throughput scenario.
struct Load {
    concurrency: usize,
    batch: usize,
    seconds: u64,
    /// Events a second for the fixed-rate sender; `None`: as fast as answered.
    rate: Option<f64>,
    /// Record 5-second windows of events/s and RSS (the soak).
    windows: bool,
    /// Workflows published before the load: `WORKFLOWS`, or none for the
    /// store-only ceiling (verify, map, store, answer).
    workflows: usize,
}

/// A fresh server with the benchmark source and the workflows (twenty, or none).
struct Stage {
    server: Server,
    sink: Sink,
    secret: String,
}

async fn stage(s: &Settings, log: &Path, workflows: usize) -> anyhow::Result<Stage> {
    let server = Server::start(&s.bin, log).await?;
    let sink = Sink::start().await?;
    let secret = prepare_source(&server.addr, &server.key, SLUG).await?;
    if workflows > 0 {
        workflows::publish(&server.addr, &server.key, &sink.base, workflows).await?;
    }
    Ok(Stage { server, sink, secret })
}

fn warnings_in(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .map(|t| t.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).count())
        .unwrap_or(0)
}

/// What the per-second sampler saw.
#[derive(Default)]
struct Samples {
    backlog_max: u64,
    windows: Vec<Window>,
}

/// Reads `/metrics` every second until stopped (the executor's backlog), and
/// while the load lasts, every five seconds, the events acknowledged and the RSS.
async fn sample(
    addr: String,
    pid: u32,
    accepted: Arc<AtomicU64>,
    windows: Option<Instant>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Samples {
    let mut out = Samples::default();
    let started = Instant::now();
    let mut conn = Conn::open(&addr).await.ok();
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let window = Duration::from_secs(5);
    let (mut last_count, mut backlog, mut next_window) = (0u64, 0u64, window);
    loop {
        tokio::select! {
            _ = &mut stop => return out,
            _ = ticks.tick() => {}
        }
        let figures = match conn.as_mut() {
            Some(c) => ExecutorFigures::read(c, &addr).await.ok(),
            None => None,
        };
        match figures {
            Some(f) => {
                backlog = f.backlog;
                out.backlog_max = out.backlog_max.max(f.backlog);
            }
            None => conn = Conn::open(&addr).await.ok(),
        }
        let Some(until) = windows else { continue };
        let elapsed = started.elapsed();
        // Windows of five seconds while the load lasts (a little slack for the last one).
        if elapsed + Duration::from_millis(100) >= next_window && Instant::now() <= until + Duration::from_millis(500) {
            let count = accepted.load(Ordering::Relaxed);
            let end = elapsed.as_secs_f64();
            let previous_end = out.windows.last().map_or(0.0, |w| w.end_seconds);
            out.windows.push(Window {
                end_seconds: end,
                events_per_second: count.saturating_sub(last_count) as f64 / (end - previous_end).max(0.001),
                rss_kib: rss_kib(pid),
                rss_anon_kib: rss_anon_kib(pid),
                backlog,
            });
            last_count = count;
            next_window += window;
        }
    }
}

/// One run of a throughput scenario on a fresh server.
async fn throughput_run(s: &Settings, id: &str, n: usize, load: &Load) -> anyhow::Result<RunFigures> {
    let log = s.logs.join(format!("{id}-{n}.log"));
    let Stage { server, sink, secret } = stage(s, &log, load.workflows).await?;
    let addr = server.addr.clone();
    let before = ExecutorFigures::fetch(&addr).await?;
    let cpu_before = server.cpu_seconds()?;
    let own_before = cpu_seconds("/proc/self/stat")?;
    let accepted = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let started = Instant::now();
    let until = started + Duration::from_secs(load.seconds);
    let sampler =
        tokio::spawn(sample(addr.clone(), server.pid, accepted.clone(), load.windows.then_some(until), stopped));
    let plan = Plan {
        addr: addr.clone(),
        slug: SLUG.into(),
        secret,
        concurrency: load.concurrency,
        batch: load.batch,
        customers: s.customers,
        duration: Duration::from_secs(load.seconds),
        rate: load.rate,
        run: format!("{id}{n}"),
    };
    let (tally, elapsed) = traffic::send(plan, accepted).await?;
    // Wait until the executor has run everything accepted (or the drain limit).
    let mut after = ExecutorFigures::fetch(&addr).await?;
    let deadline = Instant::now() + s.drain;
    while after.backlog > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        after = ExecutorFigures::fetch(&addr).await?;
    }
    let drained_after = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    let samples = sampler.await.unwrap_or_default();
    let server_cpu = server.cpu_seconds()? - cpu_before;
    let own_cpu = cpu_seconds("/proc/self/stat")? - own_before;
    let peak_rss_kib = server.peak_rss_kib();
    let webhooks_received = sink.calls();
    drop(sink);
    let gone = server.stop(s.keep_data).await?;
    let handled = after.handled.saturating_sub(before.handled);
    let l = &tally.latencies_us;
    let per_event = |v: f64| (tally.events > 0).then(|| v / tally.events as f64);
    Ok(RunFigures {
        seconds: elapsed,
        target_events_per_second: load.rate,
        requests: tally.requests,
        events_accepted: tally.events,
        events_per_second: tally.events as f64 / elapsed,
        http_latency_ms: Latency {
            p50: percentile(l, 0.50),
            p99: percentile(l, 0.99),
            p999: percentile(l, 0.999),
            max: percentile(l, 1.0),
        },
        errors: tally.errors,
        events_executed: handled,
        executed_per_second: handled as f64 / drained_after,
        drained_after_seconds: drained_after,
        backlog_left: after.backlog,
        backlog_max: samples.backlog_max.max(after.backlog),
        event_to_commit_ms: CommitLatency {
            p50: histogram_quantile(&before, &after, 0.50),
            p99: histogram_quantile(&before, &after, 0.99),
            histogram_top_ms: after.buckets.iter().map(|(b, _)| *b).filter(|b| b.is_finite()).fold(0.0, f64::max)
                * 1000.0,
        },
        server_cpu_seconds: server_cpu,
        cpu_seconds_per_1k_events: per_event(server_cpu * 1000.0),
        load_generator_cpu_seconds: own_cpu,
        peak_rss_kib,
        disk_bytes: gone.disk_bytes,
        disk_files: gone.disk_files,
        data_dir: gone.kept,
        stop_seconds: gone.stop_seconds,
        bytes_per_event: per_event(gone.disk_bytes as f64),
        webhooks_received,
        clean_shutdown: gone.clean_exit,
        server_log_warnings: warnings_in(&log),
        windows: samples.windows,
    })
}

/// A live-stream scenario on a fresh server: `clients` stream clients, one event a second.
async fn sse_run(s: &Settings, id: &str, clients: usize) -> anyhow::Result<SseFigures> {
    // Each client is a socket here and one in the server (a child, same limit).
    let needed = clients as u64 + 256;
    if let Some(limit) = open_files_limit().filter(|l| *l < needed) {
        bail!("{clients} stream clients need about {needed} open files, the limit is {limit}: run `ulimit -n $(ulimit -Hn)` first");
    }
    let log = s.logs.join(format!("{id}.log"));
    let Stage { server, sink, secret } = stage(s, &log, WORKFLOWS).await?;
    let cpu_before = server.cpu_seconds()?;
    let params = SseParams {
        addr: server.addr.clone(),
        key: server.key.clone(),
        slug: SLUG.into(),
        secret,
        clients,
        rate: 1,
        seconds: s.seconds,
        customers: s.customers,
        server_pid: Some(server.pid),
    };
    let stream = sse::run(&params).await?;
    let server_cpu = server.cpu_seconds()? - cpu_before;
    let peak_rss_kib = server.peak_rss_kib();
    drop(sink);
    let gone = server.stop(s.keep_data).await?;
    Ok(SseFigures {
        stream,
        peak_rss_kib,
        server_cpu_seconds: server_cpu,
        disk_bytes: gone.disk_bytes,
        clean_shutdown: gone.clean_exit,
        server_log_warnings: warnings_in(&log),
    })
}

fn scenario(id: &str, title: String, kind: Kind, settings: serde_json::Value) -> Scenario {
    Scenario {
        id: id.into(),
        title,
        kind,
        settings,
        median_run: None,
        runs: Vec::new(),
        sse: None,
        failures: Vec::new(),
        skipped: None,
    }
}

async fn throughput(s: &Settings, id: &str, title: String, load: Load, repeat: usize) -> Scenario {
    let settings = serde_json::json!({
        "concurrency": load.concurrency, "batch": load.batch, "seconds": load.seconds,
        "target_events_per_second": load.rate, "repeat": repeat, "workflows": load.workflows,
    });
    let mut sc = scenario(id, title, Kind::Throughput, settings);
    for n in 1..=repeat {
        eprint!("{id} run {n}/{repeat}: ");
        match throughput_run(s, id, n, &load).await {
            Ok(r) => {
                eprintln!(
                    "{:.0} events/s accepted, {:.0} executed/s, 202→commit p99 {} ms, {:.0} bytes/event, errors {:?}",
                    r.events_per_second,
                    r.executed_per_second,
                    r.event_to_commit_ms.show(r.event_to_commit_ms.p99),
                    r.bytes_per_event.unwrap_or_default(),
                    r.errors
                );
                sc.runs.push(r);
            }
            Err(err) => {
                eprintln!("failed: {err:#}");
                sc.failures.push(format!("run {n}: {err:#}"));
            }
        }
    }
    // The fixed-rate scenario is about latency: its median is by the HTTP p99
    // (a 202 is answered after the commit that evaluated the event).
    sc.median_run = if load.rate.is_some() {
        median_index(&sc.runs, |r| r.http_latency_ms.p99)
    } else {
        median_index(&sc.runs, |r| r.events_per_second)
    };
    sc
}

async fn stream(s: &Settings, id: &str, title: String, clients: usize) -> Scenario {
    let settings = serde_json::json!({ "clients": clients, "events_per_second": 1, "seconds": s.seconds });
    let mut sc = scenario(id, title, Kind::Sse, settings);
    eprint!("{id}: ");
    match sse_run(s, id, clients).await {
        Ok(f) => {
            eprintln!(
                "{} of {} deliveries, event→client p99 {:.2} ms, +{} KiB RSS idle",
                f.stream.deliveries,
                f.stream.expected_deliveries,
                f.stream.event_to_client_ms.p99,
                f.stream.added_rss_kib.map_or("–".into(), |k| k.to_string())
            );
            sc.sse = Some(f);
        }
        Err(err) => {
            eprintln!("failed: {err:#}");
            sc.failures.push(format!("{err:#}"));
        }
    }
    sc
}

fn skipped(id: &str, title: String, kind: Kind, why: &str) -> Scenario {
    eprintln!("{id}: skipped, {why}");
    let mut sc = scenario(id, title, kind, serde_json::Value::Null);
    sc.skipped = Some(why.into());
    sc
}

fn run_text(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok());
    let nproc = run_text("nproc", &[])
        .and_then(|n| n.parse().ok())
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1);
    Machine {
        nproc,
        cpu_model,
        memory_kib,
        kernel: run_text("uname", &["-sr"]).unwrap_or_default(),
        load_average_start: load_average(),
        load_average_end: String::new(),
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn now_text() -> String {
    let d = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

fn write_results(s: &Settings, results: &Results) -> anyhow::Result<()> {
    if let Some(dir) = s.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(results)?;
    std::fs::write(&s.out, json + "\n").with_context(|| format!("writing {}", s.out.display()))?;
    let md = s.out.with_extension("md");
    std::fs::write(&md, report::markdown(results)).with_context(|| format!("writing {}", md.display()))?;
    Ok(())
}

/// Runs the suite; fails (after reporting) when a scenario could not be measured.
pub async fn run(args: SuiteArgs) -> anyhow::Result<()> {
    let s = Settings::from(&args)?;
    std::fs::create_dir_all(&s.logs).with_context(|| format!("creating {}", s.logs.display()))?;
    let begun = Instant::now();
    let mut results = Results {
        date: now_text(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        git_commit: run_text("git", &["rev-parse", "--short", "HEAD"]),
        git_dirty: run_text("git", &["status", "--porcelain", "--untracked-files=no"]).map(|t| !t.is_empty()),
        machine: machine(),
        settings: s.json(),
        scenarios: Vec::new(),
        targets: Vec::new(),
        total_seconds: 0.0,
    };
    eprintln!(
        "nudge-load suite: {} run(s) of {} s per throughput scenario, {} s soak, {} workflows, server {}",
        s.repeat,
        s.seconds,
        s.soak_seconds,
        WORKFLOWS,
        s.bin.display()
    );
    let closed = |concurrency, batch, seconds, windows| Load {
        concurrency,
        batch,
        seconds,
        rate: None,
        windows,
        workflows: WORKFLOWS,
    };
    if s.wants("store-only") {
        // The ceiling every other figure reads against: the same signed
        // events at 64 connections, no workflow published.
        let load = Load { workflows: 0, ..closed(64, 1, s.seconds, false) };
        let title = "Store only: 64 connections, no workflow (the ceiling)".to_string();
        results.scenarios.push(throughput(&s, "store-only", title, load, s.repeat).await);
    }
    if s.wants("single-16") {
        let sc = throughput(&s, "single-16", "16 connections".into(), closed(16, 1, s.seconds, false), s.repeat).await;
        results.scenarios.push(sc);
    }
    if s.wants("single-64") {
        let sc = throughput(&s, "single-64", "64 connections".into(), closed(64, 1, s.seconds, false), s.repeat).await;
        results.scenarios.push(sc);
    }
    if s.wants("half-rate") {
        let max = results.scenarios.iter().find(|sc| sc.id == "single-64").and_then(|sc| sc.median());
        match max.map(|r| (r.events_per_second / 2.0).round()).filter(|r| *r >= 1.0) {
            Some(rate) => {
                let title = format!("64 connections at {} events/s (half)", rate as u64);
                let load = Load { rate: Some(rate), ..closed(64, 1, s.seconds, false) };
                results.scenarios.push(throughput(&s, "half-rate", title, load, s.repeat).await);
            }
            None => results.scenarios.push(skipped(
                "half-rate",
                "64 connections at half the rate".into(),
                Kind::Throughput,
                "needs a measured single-64 rate",
            )),
        }
    }
    if s.wants("store-only-batch") {
        // The batches' ceiling: the same batches of 100, no workflow published.
        let load = Load { workflows: 0, ..closed(16, 100, s.seconds, false) };
        let title = "Store only: 16 connections × batches of 100, no workflow (the ceiling)".to_string();
        results.scenarios.push(throughput(&s, "store-only-batch", title, load, s.repeat).await);
    }
    if s.wants("batch-100") {
        let load = closed(16, 100, s.seconds, false);
        results
            .scenarios
            .push(throughput(&s, "batch-100", "16 connections × batches of 100".into(), load, s.repeat).await);
    }
    if s.wants("soak-64") {
        let title = format!("Soak: 64 connections for {} s", s.soak_seconds);
        results.scenarios.push(throughput(&s, "soak-64", title, closed(64, 1, s.soak_seconds, true), 1).await);
    }
    write_results(&s, &results)?;
    if s.wants("sse-fanout") {
        let title = format!("{} clients, 1 event/s", s.sse_clients);
        results.scenarios.push(stream(&s, "sse-fanout", title, s.sse_clients).await);
    }
    if s.wants("sse-idle") {
        let title = format!("{} idle clients + 1 event/s", s.sse_idle_clients);
        results.scenarios.push(stream(&s, "sse-idle", title, s.sse_idle_clients).await);
    }
    results.targets = report::targets(&results.scenarios, 60, 10_000);
    results.total_seconds = begun.elapsed().as_secs_f64();
    results.machine.load_average_end = load_average();
    write_results(&s, &results)?;
    println!("{}", report::markdown(&results));
    println!(
        "Results: {} (and {}); server logs in {}",
        s.out.display(),
        s.out.with_extension("md").display(),
        s.logs.display()
    );
    let failed: Vec<&str> =
        results.scenarios.iter().filter(|sc| !sc.failures.is_empty()).map(|sc| sc.id.as_str()).collect();
    if !failed.is_empty() {
        bail!("some runs failed: {}", failed.join(", "));
    }
    Ok(())
}
