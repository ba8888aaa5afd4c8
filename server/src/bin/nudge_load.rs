//! nudge-load: sends signed webhook events to a running Nudge as fast as it
//! answers, over keep-alive HTTP/1.1 connections, and reports throughput and
//! latency. Creates (or re-keys) the benchmark source through the API first.
//! With `--sse-clients N` it measures the live stream instead: N idle clients,
//! a trickle of events, and the time from each event's request to each client.

use anyhow::{bail, Context};
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::time::{Duration, Instant};

/// Signed webhook load for Nudge benchmarks.
#[derive(Debug, Parser)]
#[command(name = "nudge-load")]
struct Args {
    /// Nudge's address.
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: String,
    /// An editor or admin API key, to create the benchmark source.
    #[arg(long, env = "NUDGE_API_KEY")]
    api_key: String,
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
    /// Publish this many workflows first (the three starter templates in turn),
    /// then wait for the executor to run every event and report its figures too.
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

const TEMPLATES: [&str; 3] = ["abandoned_cart", "high_value_transaction", "low_inventory"];

/// Creates and publishes `n` workflows from the starter templates.
async fn publish_workflows(args: &Args) -> anyhow::Result<()> {
    let mut conn = Conn::open(&args.addr).await?;
    for i in 0..args.workflows {
        let template = TEMPLATES[i % TEMPLATES.len()];
        let body = serde_json::json!({ "template": template, "name": format!("Bench {} ({template})", i + 1) });
        let (status, answer) =
            conn.send(api_request(&args.addr, "POST", "/api/v1/workflows", &args.api_key, body.to_string())?).await?;
        if status != 201 {
            bail!("creating a workflow answered {status}: {}", String::from_utf8_lossy(&answer));
        }
        let v: serde_json::Value = serde_json::from_slice(&answer)?;
        let id = v["workflow_id"].as_str().context("no workflow_id in the answer")?;
        let path = format!("/api/v1/workflows/{id}/publish");
        let (status, answer) = conn.send(api_request(&args.addr, "POST", &path, &args.api_key, String::new())?).await?;
        if status != 200 {
            bail!("publishing a workflow answered {status}: {}", String::from_utf8_lossy(&answer));
        }
    }
    Ok(())
}

/// What `/metrics` says of the executor: its backlog and the cumulative
/// event-to-commit histogram as (upper bound in seconds, count).
#[derive(Debug, Default, Clone)]
struct ExecutorFigures {
    backlog: u64,
    handled: u64,
    buckets: Vec<(f64, u64)>,
}

async fn executor_figures(addr: &str) -> anyhow::Result<ExecutorFigures> {
    let mut conn = Conn::open(addr).await?;
    let req = Request::builder().uri("/metrics").header("host", addr).body(Full::new(Bytes::new()))?;
    let (status, body) = conn.send(req).await?;
    if status != 200 {
        bail!("/metrics answered {status}");
    }
    let text = String::from_utf8_lossy(&body);
    let mut out = ExecutorFigures::default();
    for line in text.lines() {
        let mut parts = line.rsplitn(2, ' ');
        let (Some(value), Some(name)) = (parts.next(), parts.next()) else { continue };
        if name == "nudge_executor_backlog_events" {
            out.backlog = value.parse().unwrap_or_default();
        } else if name == "nudge_executor_events_total" {
            out.handled = value.parse().unwrap_or_default();
        } else if let Some(le) = name.strip_prefix("nudge_executor_event_to_commit_seconds_bucket{le=\"") {
            let bound = le.trim_end_matches("\"}");
            let bound = if bound == "+Inf" { f64::INFINITY } else { bound.parse().unwrap_or(f64::INFINITY) };
            out.buckets.push((bound, value.parse().unwrap_or_default()));
        }
    }
    Ok(out)
}

/// The `q` quantile (in ms) of the observations between two histogram
/// snapshots, interpolated linearly inside its bucket.
fn histogram_quantile(before: &ExecutorFigures, after: &ExecutorFigures, q: f64) -> Option<f64> {
    let counts: Vec<(f64, u64)> = after
        .buckets
        .iter()
        .map(|(b, n)| (*b, n - before.buckets.iter().find(|(x, _)| x == b).map_or(0, |(_, m)| *m)))
        .collect();
    let total = counts.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let (mut lower, mut below) = (0.0, 0u64);
    for (bound, n) in counts {
        if n as f64 >= rank {
            if bound.is_infinite() {
                return Some(lower * 1000.0);
            }
            let inside = (n - below).max(1) as f64;
            return Some((lower + (bound - lower) * (rank - below as f64) / inside) * 1000.0);
        }
        (lower, below) = (bound, n);
    }
    None
}

struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    async fn open(addr: &str) -> anyhow::Result<Conn> {
        let stream = tokio::net::TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Conn { sender })
    }

    async fn send(&mut self, req: Request<Full<Bytes>>) -> anyhow::Result<(u16, Bytes)> {
        self.sender.ready().await?;
        let res = self.sender.send_request(req).await?;
        let status = res.status().as_u16();
        let body = res.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

fn api_request(addr: &str, method: &str, path: &str, key: &str, body: String) -> anyhow::Result<Request<Full<Bytes>>> {
    Ok(Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?)
}

/// The source's secret: from creating it, or from rotating its secret when it exists.
async fn prepare_source(args: &Args) -> anyhow::Result<String> {
    let mut conn = Conn::open(&args.addr).await?;
    let mapping = serde_json::json!({
        "event_name": "$.type", "customer_id": "$.customer.id", "event_id": "$.id", "timestamp": "$.at",
        "profile": [{ "attribute": "email", "path": "$.customer.email" }, { "attribute": "tier", "path": "$.customer.tier" }]
    });
    let body = serde_json::json!({ "name": "Benchmark", "slug": args.slug, "mapping": mapping }).to_string();
    let (status, answer) = conn.send(api_request(&args.addr, "POST", "/api/v1/sources", &args.api_key, body)?).await?;
    let answer = match status {
        201 => answer,
        409 => {
            let path = format!("/api/v1/sources/{}/rotate-secret", args.slug);
            let (status, answer) = conn
                .send(api_request(&args.addr, "POST", &path, &args.api_key, r#"{"grace_hours":0}"#.into())?)
                .await?;
            if status != 200 {
                bail!("rotating the source's secret answered {status}: {}", String::from_utf8_lossy(&answer));
            }
            answer
        }
        other => bail!("creating the source answered {other}: {}", String::from_utf8_lossy(&answer)),
    };
    let v: serde_json::Value = serde_json::from_slice(&answer)?;
    v["secret"].as_str().map(str::to_string).context("no secret in the answer")
}

/// A small fast PRNG (xorshift64*), seeded per worker: no dependency needed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

const NAMES: [&str; 6] =
    ["cart_updated", "cart_updated", "page_viewed", "checkout_started", "order_completed", "transaction_completed"];

/// One ~300-byte event with a unique id.
fn event(worker: usize, seq: u64, rng: &mut Rng, customers: u64, now: i64) -> serde_json::Value {
    let customer = rng.next() % customers;
    let name = NAMES[(rng.next() % NAMES.len() as u64) as usize];
    serde_json::json!({
        "id": format!("w{worker}-{seq}-{now}"),
        "type": name,
        "at": now,
        "customer": { "id": format!("c-{customer}"), "email": format!("c{customer}@example.com"), "tier": if customer.is_multiple_of(7) { "gold" } else { "standard" } },
        "cart": { "id": format!("k-{customer}"), "value": (rng.next() % 50_000) as f64 / 100.0, "items": rng.next() % 9 + 1 },
        "amount": rng.next() % 20_000, "currency": "EUR",
        "page": "/products/sku-123",
    })
}

#[derive(Default)]
struct Tally {
    events: u64,
    requests: u64,
    errors: std::collections::BTreeMap<u16, u64>,
    latencies_us: Vec<u32>,
}

async fn worker(
    id: usize,
    args: std::sync::Arc<Args>,
    secret: std::sync::Arc<String>,
    until: Instant,
) -> anyhow::Result<Tally> {
    let mut conn = Conn::open(&args.addr).await?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let mut tally = Tally::default();
    let path = format!("/hooks/{}", args.slug);
    let mut seq = 0u64;
    while Instant::now() < until {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let body = if args.batch <= 1 {
            seq += 1;
            event(id, seq, &mut rng, args.customers, now).to_string()
        } else {
            let items: Vec<_> = (0..args.batch)
                .map(|_| {
                    seq += 1;
                    event(id, seq, &mut rng, args.customers, now)
                })
                .collect();
            serde_json::Value::Array(items).to_string()
        };
        let signature = app::service::signature::header_value(&secret, now, body.as_bytes());
        let req = Request::builder()
            .method("POST")
            .uri(&path)
            .header("host", &args.addr)
            .header("content-type", "application/json")
            .header("nudge-signature", signature)
            .body(Full::new(Bytes::from(body)))?;
        let started = Instant::now();
        let (status, _answer) = conn.send(req).await?;
        tally.latencies_us.push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        tally.requests += 1;
        if status == 202 {
            tally.events += args.batch.max(1) as u64;
        } else {
            *tally.errors.entry(status).or_default() += 1;
        }
    }
    Ok(tally)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

/// The server's resident memory in KiB, from /proc (Linux).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

type Sent = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>>;

/// One SSE client: reads `events` messages and records, for each event this
/// run sent, the time from its request to the message's arrival.
async fn sse_client(
    addr: String,
    key: String,
    sent: Sent,
    ready: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<Vec<u32>> {
    let stream = tokio::net::TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = Request::builder()
        .uri("/api/v1/stream?topics=events")
        .header("host", &addr)
        .header("authorization", format!("Bearer {key}"))
        .body(Full::new(Bytes::new()))?;
    let res = sender.send_request(req).await?;
    if res.status() != 200 {
        bail!("the stream answered {}", res.status());
    }
    let mut body = res.into_body();
    let mut buffer = String::new();
    let mut seen = Vec::new();
    let mut announced = false;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else { continue };
        let arrived = Instant::now();
        buffer.push_str(&String::from_utf8_lossy(&data));
        while let Some(end) = buffer.find("\n\n") {
            let message: String = buffer.drain(..end + 2).collect();
            if message.contains("event: ready") && !announced {
                announced = true;
                let _ = ready.send(()).await;
            }
            let Some(json) = message.lines().find_map(|l| l.strip_prefix("data:")) else { continue };
            if !message.contains("event: events") {
                continue;
            }
            let Ok(v) = serde_json::from_str::<serde_json::Value>(json.trim()) else { continue };
            let Some(external) = v["external_id"].as_str() else { continue };
            if external.starts_with("sse-stop") {
                return Ok(seen);
            }
            let at = sent.lock().ok().and_then(|m| m.get(external).copied());
            if let Some(at) = at {
                seen.push(arrived.saturating_duration_since(at).as_micros().min(u128::from(u32::MAX)) as u32);
            }
        }
    }
    Ok(seen)
}

/// SSE fan-out: N idle clients, then a steady trickle of events.
async fn sse_mode(args: std::sync::Arc<Args>, secret: String) -> anyhow::Result<()> {
    let before_kib = args.server_pid.and_then(rss_kib);
    let sent: Sent = std::sync::Arc::default();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(args.sse_clients.max(1));
    let mut clients = Vec::with_capacity(args.sse_clients);
    for _ in 0..args.sse_clients {
        clients.push(tokio::spawn(sse_client(args.addr.clone(), args.api_key.clone(), sent.clone(), ready_tx.clone())));
    }
    drop(ready_tx);
    for _ in 0..args.sse_clients {
        if ready_rx.recv().await.is_none() {
            bail!("an SSE client failed before it was ready");
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_kib = args.server_pid.and_then(rss_kib);
    let mut conn = Conn::open(&args.addr).await?;
    let path = format!("/hooks/{}", args.slug);
    let mut rng = Rng(7);
    let every = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let count = args.seconds * args.rate.max(1);
    let mut post = |external: String| {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut e = event(0, 0, &mut rng, args.customers, now);
        e["id"] = serde_json::Value::String(external);
        let body = e.to_string();
        let signature = app::service::signature::header_value(&secret, now, body.as_bytes());
        Request::builder()
            .method("POST")
            .uri(&path)
            .header("host", &args.addr)
            .header("content-type", "application/json")
            .header("nudge-signature", signature)
            .body(Full::new(Bytes::from(body)))
    };
    for i in 0..count {
        let external =
            format!("sse-{i}-{}-{}", std::process::id(), time::OffsetDateTime::now_utc().unix_timestamp_nanos());
        let req = post(external.clone())?;
        if let Ok(mut m) = sent.lock() {
            m.insert(external, Instant::now());
        }
        let (status, _) = conn.send(req).await?;
        if status != 202 {
            bail!("an event answered {status}");
        }
        tokio::time::sleep(every).await;
    }
    let run = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    conn.send(post(format!("sse-stop-{run}"))?).await?;
    let mut all: Vec<u32> = Vec::new();
    for c in clients {
        match tokio::time::timeout(Duration::from_secs(30), c).await {
            Ok(Ok(Ok(seen))) => all.extend(seen),
            Ok(Ok(Err(err))) => eprintln!("an SSE client failed: {err:#}"),
            _ => eprintln!("an SSE client did not finish"),
        }
    }
    all.sort_unstable();
    let per_client = match (before_kib, idle_kib) {
        (Some(b), Some(i)) if args.sse_clients > 0 => Some((i.saturating_sub(b)) as f64 / args.sse_clients as f64),
        _ => None,
    };
    let report = serde_json::json!({
        "sse_clients": args.sse_clients,
        "events": count,
        "deliveries": all.len(),
        "expected_deliveries": count as usize * args.sse_clients,
        "event_to_client_ms": { "p50": percentile(&all, 0.50), "p99": percentile(&all, 0.99), "max": percentile(&all, 1.0) },
        "server_rss_kib": { "before": before_kib, "with_idle_clients": idle_kib },
        "kib_per_idle_client": per_client,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{:>6} SSE clients  {} events  {} of {} deliveries  event→client p50 {:.2} ms  p99 {:.2} ms  {} KiB per idle client",
            args.sse_clients,
            count,
            all.len(),
            count as usize * args.sse_clients,
            percentile(&all, 0.50),
            percentile(&all, 0.99),
            per_client.map_or("-".into(), |k| format!("{k:.1}")),
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = std::sync::Arc::new(Args::parse());
    let secret = std::sync::Arc::new(prepare_source(&args).await?);
    if args.sse_clients > 0 {
        return sse_mode(args.clone(), secret.to_string()).await;
    }
    publish_workflows(&args).await?;
    let executor_before = executor_figures(&args.addr).await?;
    let started = Instant::now();
    let until = started + Duration::from_secs(args.seconds);
    let workers: Vec<_> =
        (0..args.concurrency).map(|i| tokio::spawn(worker(i, args.clone(), secret.clone(), until))).collect();
    let mut total = Tally::default();
    for w in workers {
        let t = w.await??;
        total.events += t.events;
        total.requests += t.requests;
        for (k, v) in t.errors {
            *total.errors.entry(k).or_default() += v;
        }
        total.latencies_us.extend(t.latencies_us);
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The executor's figures: wait until it has run every event sent.
    let mut executor_after = executor_figures(&args.addr).await?;
    let drain_deadline = Instant::now() + Duration::from_secs(600);
    while executor_after.backlog > 0 && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        executor_after = executor_figures(&args.addr).await?;
    }
    let executed_in = started.elapsed().as_secs_f64();
    let handled = executor_after.handled.saturating_sub(executor_before.handled);
    total.latencies_us.sort_unstable();
    let l = &total.latencies_us;
    let report = serde_json::json!({
        "concurrency": args.concurrency,
        "batch": args.batch,
        "seconds": elapsed,
        "requests": total.requests,
        "events_accepted": total.events,
        "events_per_second": total.events as f64 / elapsed,
        "requests_per_second": total.requests as f64 / elapsed,
        "latency_ms": { "p50": percentile(l, 0.50), "p99": percentile(l, 0.99), "p999": percentile(l, 0.999), "max": percentile(l, 1.0) },
        "errors_by_status": total.errors,
        "executor": {
            "events_handled": handled,
            "seconds_until_drained": executed_in,
            "events_per_second": handled as f64 / executed_in,
            "backlog_left": executor_after.backlog,
            "event_to_commit_ms": {
                "p50": histogram_quantile(&executor_before, &executor_after, 0.50),
                "p99": histogram_quantile(&executor_before, &executor_after, 0.99),
            },
        },
    });
    if args.json {
        println!("{report}");
        return Ok(());
    }
    println!(
        "{:>6} conn  batch {:>4}  {:>9.0} events/s  {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  p99.9 {:>6.2} ms  errors {:?}",
        args.concurrency,
        args.batch,
        report["events_per_second"].as_f64().unwrap_or_default(),
        report["requests_per_second"].as_f64().unwrap_or_default(),
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
        ms(histogram_quantile(&executor_before, &executor_after, 0.50)),
        ms(histogram_quantile(&executor_before, &executor_after, 0.99)),
    );
    Ok(())
}
