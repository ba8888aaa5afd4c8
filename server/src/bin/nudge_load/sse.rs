//! The live stream under fan-out: N idle `/api/v1/stream?topics=events` clients,
//! then a steady trickle of events, timed from each request to each client.

use super::client::{hook_request, percentile, Conn};
use super::server::{rss_anon_kib, rss_kib};
use super::traffic::{event, Rng};
use anyhow::bail;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct SseParams {
    pub addr: String,
    pub key: String,
    pub slug: String,
    pub secret: String,
    pub clients: usize,
    /// Events a second.
    pub rate: u64,
    pub seconds: u64,
    pub customers: u64,
    /// The server's process id, to read its memory with and without the clients.
    pub server_pid: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Millis {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SseReport {
    pub sse_clients: usize,
    pub events: u64,
    pub deliveries: usize,
    pub expected_deliveries: usize,
    pub clients_failed: usize,
    pub event_to_client_ms: Millis,
    pub server_rss_kib_before: Option<u64>,
    pub server_rss_kib_with_idle_clients: Option<u64>,
    pub added_rss_kib: Option<u64>,
    /// The anonymous part of it (without memory-mapped database pages).
    pub added_rss_anon_kib: Option<u64>,
    pub kib_per_idle_client: Option<f64>,
    /// Seconds until every client had its `ready` message.
    pub connect_seconds: f64,
}

type Sent = Arc<Mutex<HashMap<String, Instant>>>;

/// One SSE client: reads `events` messages and records, for each event this
/// run sent, the time from its request to the message's arrival.
async fn client(
    addr: String,
    key: String,
    sent: Sent,
    ready: tokio::sync::mpsc::Sender<Result<(), String>>,
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
                let _ = ready.send(Ok(())).await;
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

/// Opens the clients, waits until all are ready (and two seconds more, for the
/// memory reading), sends `rate` events a second for `seconds`, then a stop marker.
pub async fn run(p: &SseParams) -> anyhow::Result<SseReport> {
    let before_kib = p.server_pid.and_then(rss_kib);
    let before_anon_kib = p.server_pid.and_then(rss_anon_kib);
    let sent: Sent = Arc::default();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<Result<(), String>>(p.clients.max(1));
    let connecting = Instant::now();
    let mut clients = Vec::with_capacity(p.clients);
    for _ in 0..p.clients {
        let (addr, key, sent, ready) = (p.addr.clone(), p.key.clone(), sent.clone(), ready_tx.clone());
        clients.push(tokio::spawn(async move {
            let outcome = client(addr, key, sent, ready.clone()).await;
            if let Err(err) = &outcome {
                let _ = ready.send(Err(format!("{err:#}"))).await;
            }
            outcome
        }));
    }
    drop(ready_tx);
    let all_ready = async {
        for _ in 0..p.clients {
            match ready_rx.recv().await {
                Some(Ok(())) => {}
                Some(Err(err)) => bail!("an SSE client failed before it was ready: {err}"),
                None => bail!("the SSE clients stopped before they were ready"),
            }
        }
        Ok(())
    };
    let waited = tokio::time::timeout(Duration::from_secs(120), all_ready).await;
    if !matches!(waited, Ok(Ok(()))) {
        clients.iter().for_each(|c| c.abort());
        match waited {
            Ok(Err(err)) => return Err(err),
            _ => bail!("the SSE clients were not all ready after 120 s"),
        }
    }
    let connect_seconds = connecting.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_kib = p.server_pid.and_then(rss_kib);
    let idle_anon_kib = p.server_pid.and_then(rss_anon_kib);
    let mut conn = Conn::open(&p.addr).await?;
    let mut rng = Rng(7);
    let every = Duration::from_secs_f64(1.0 / p.rate.max(1) as f64);
    let count = p.seconds * p.rate.max(1);
    let run = format!("{}-{}", std::process::id(), time::OffsetDateTime::now_utc().unix_timestamp_nanos());
    let post = |rng: &mut Rng, external: &str| {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        hook_request(&p.addr, &p.slug, &p.secret, now, event(external, rng, p.customers, now))
    };
    let mut ticks = tokio::time::interval(every);
    for i in 0..count {
        ticks.tick().await;
        let external = format!("sse-{i}-{run}");
        let req = post(&mut rng, &external)?;
        if let Ok(mut m) = sent.lock() {
            m.insert(external, Instant::now());
        }
        let (status, answer) = conn.send(req).await?;
        if status != 202 {
            bail!("an event answered {status}: {}", String::from_utf8_lossy(&answer));
        }
    }
    conn.send(post(&mut rng, &format!("sse-stop-{run}"))?).await?;
    let mut all: Vec<u32> = Vec::new();
    let mut failed = 0;
    for c in clients {
        match tokio::time::timeout(Duration::from_secs(30), c).await {
            Ok(Ok(Ok(seen))) => all.extend(seen),
            Ok(Ok(Err(err))) => {
                failed += 1;
                if failed <= 3 {
                    eprintln!("an SSE client failed: {err:#}");
                }
            }
            _ => failed += 1,
        }
    }
    all.sort_unstable();
    let added = match (before_kib, idle_kib) {
        (Some(b), Some(i)) => Some(i.saturating_sub(b)),
        _ => None,
    };
    Ok(SseReport {
        sse_clients: p.clients,
        events: count,
        deliveries: all.len(),
        expected_deliveries: count as usize * p.clients,
        clients_failed: failed,
        event_to_client_ms: Millis {
            p50: percentile(&all, 0.50),
            p99: percentile(&all, 0.99),
            max: percentile(&all, 1.0),
        },
        server_rss_kib_before: before_kib,
        server_rss_kib_with_idle_clients: idle_kib,
        added_rss_kib: added,
        added_rss_anon_kib: match (before_anon_kib, idle_anon_kib) {
            (Some(b), Some(i)) => Some(i.saturating_sub(b)),
            _ => None,
        },
        kib_per_idle_client: added.filter(|_| p.clients > 0).map(|a| a as f64 / p.clients as f64),
        connect_seconds,
    })
}
