//! HTTP/1.1 keep-alive connections to Nudge, the benchmark source's set-up, and
//! the executor's figures read from `/metrics`.

use anyhow::{bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;

pub struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(addr: &str) -> anyhow::Result<Conn> {
        let stream = tokio::net::TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Conn { sender })
    }

    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> anyhow::Result<(u16, Bytes)> {
        self.sender.ready().await?;
        let res = self.sender.send_request(req).await?;
        let status = res.status().as_u16();
        let body = res.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// A GET without credentials (`/healthz`, `/metrics`).
    pub async fn get(&mut self, addr: &str, path: &str) -> anyhow::Result<(u16, Bytes)> {
        let req = Request::builder().uri(path).header("host", addr).body(Full::new(Bytes::new()))?;
        self.send(req).await
    }
}

pub fn api_request(
    addr: &str,
    method: &str,
    path: &str,
    key: &str,
    body: String,
) -> anyhow::Result<Request<Full<Bytes>>> {
    Ok(Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?)
}

/// A signed webhook request carrying `body`, signed at unix second `now`.
pub fn hook_request(
    addr: &str,
    slug: &str,
    secret: &str,
    now: i64,
    body: String,
) -> anyhow::Result<Request<Full<Bytes>>> {
    let signature = app::service::signature::header_value(secret, now, body.as_bytes());
    Ok(Request::builder()
        .method("POST")
        .uri(format!("/hooks/{slug}"))
        .header("host", addr)
        .header("content-type", "application/json")
        .header("nudge-signature", signature)
        .body(Full::new(Bytes::from(body)))?)
}

/// The source's secret: from creating it, or from rotating its secret when it exists.
/// The mapping reads the fields the benchmark workflows look at.
pub async fn prepare_source(addr: &str, key: &str, slug: &str) -> anyhow::Result<String> {
    let mut conn = Conn::open(addr).await?;
    let mapping = serde_json::json!({
        "event_name": "$.type", "customer_id": "$.customer.id", "event_id": "$.id", "timestamp": "$.at",
        "profile": [{ "attribute": "email", "path": "$.customer.email" }, { "attribute": "tier", "path": "$.customer.tier" }]
    });
    let body = serde_json::json!({ "name": "Benchmark", "slug": slug, "mapping": mapping }).to_string();
    let (status, answer) = conn.send(api_request(addr, "POST", "/api/v1/sources", key, body)?).await?;
    let answer = match status {
        201 => answer,
        409 => {
            let path = format!("/api/v1/sources/{slug}/rotate-secret");
            let (status, answer) =
                conn.send(api_request(addr, "POST", &path, key, r#"{"grace_hours":0}"#.into())?).await?;
            if status != 200 {
                bail!("rotating the source's secret answered {status}: {}", String::from_utf8_lossy(&answer));
            }
            answer
        }
        other => bail!("creating the source answered {other}: {}", String::from_utf8_lossy(&answer)),
    };
    let v: serde_json::Value = serde_json::from_slice(&answer).context("the source's answer is not JSON")?;
    v["secret"].as_str().map(str::to_string).context("no secret in the answer")
}

/// What `/metrics` says of the executor: its backlog and the cumulative
/// event-to-commit histogram as (upper bound in seconds, count).
#[derive(Debug, Default, Clone)]
pub struct ExecutorFigures {
    pub backlog: u64,
    pub handled: u64,
    pub buckets: Vec<(f64, u64)>,
}

impl ExecutorFigures {
    pub fn parse(text: &str) -> ExecutorFigures {
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
        out
    }

    /// Reads them over `conn`.
    pub async fn read(conn: &mut Conn, addr: &str) -> anyhow::Result<ExecutorFigures> {
        let (status, body) = conn.get(addr, "/metrics").await?;
        if status != 200 {
            bail!("/metrics answered {status}");
        }
        Ok(ExecutorFigures::parse(&String::from_utf8_lossy(&body)))
    }

    /// Reads them over a new connection.
    pub async fn fetch(addr: &str) -> anyhow::Result<ExecutorFigures> {
        ExecutorFigures::read(&mut Conn::open(addr).await?, addr).await
    }
}

/// The `q` quantile (in ms) of the observations between two histogram
/// snapshots, interpolated linearly inside its bucket.
pub fn histogram_quantile(before: &ExecutorFigures, after: &ExecutorFigures, q: f64) -> Option<f64> {
    let counts: Vec<(f64, u64)> = after
        .buckets
        .iter()
        .map(|(b, n)| (*b, n.saturating_sub(before.buckets.iter().find(|(x, _)| x == b).map_or(0, |(_, m)| *m))))
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

/// The `p` quantile of sorted microsecond samples, in ms.
pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executor_figures_are_read_from_metrics_and_quantiles_interpolate_inside_a_bucket() {
        let before = ExecutorFigures::parse(
            "nudge_executor_backlog_events 5\nnudge_executor_events_total 10\n\
             nudge_executor_event_to_commit_seconds_bucket{le=\"0.001\"} 10\n\
             nudge_executor_event_to_commit_seconds_bucket{le=\"0.01\"} 10\n\
             nudge_executor_event_to_commit_seconds_bucket{le=\"+Inf\"} 10\n",
        );
        assert_eq!((before.backlog, before.handled, before.buckets.len()), (5, 10, 3));
        let after = ExecutorFigures::parse(
            "# HELP x\nnudge_executor_backlog_events 0\nnudge_executor_events_total 110\n\
             nudge_executor_event_to_commit_seconds_bucket{le=\"0.001\"} 60\n\
             nudge_executor_event_to_commit_seconds_bucket{le=\"0.01\"} 110\n\
             nudge_executor_event_to_commit_seconds_bucket{le=\"+Inf\"} 110\n",
        );
        // 100 new observations: 50 under 1 ms, 50 between 1 and 10 ms.
        let p50 = histogram_quantile(&before, &after, 0.5).unwrap_or(f64::NAN);
        let p99 = histogram_quantile(&before, &after, 0.99).unwrap_or(f64::NAN);
        assert!((p50 - 1.0).abs() < 1e-9, "{p50}");
        assert!((p99 - 9.82).abs() < 1e-9, "{p99}");
        assert_eq!(histogram_quantile(&after, &after, 0.5), None, "no observations, no quantile");
        assert_eq!(percentile(&[1000, 2000, 3000], 0.5), 2.0);
    }
}
