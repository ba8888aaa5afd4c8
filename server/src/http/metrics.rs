//! Prometheus metrics kept in memory: HTTP requests by route and status, and a
//! latency histogram by route. Rendered in the text exposition format.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

use app::engine::counters::{Figures, Histogram, BUCKETS};

#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

pub use app::store::runs::Gauges as ExecutorGauges;

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        {
            let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
            *requests.entry((method.to_string(), route.to_string(), status)).or_default() += 1;
        }
        let mut latency = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        latency.entry(route.to_string()).or_default().observe(seconds);
    }

    /// The engine's counters and the database's gauges, in the exposition
    /// format. (The names keep `executor`, which dashboards already use.)
    pub fn render_executor(&self, e: &Figures, gauges: &ExecutorGauges) -> String {
        let mut out = String::new();
        out.push_str("# HELP nudge_executor_events_total Events the executor has handled.\n");
        out.push_str("# TYPE nudge_executor_events_total counter\n");
        let _ = writeln!(out, "nudge_executor_events_total {}", e.events);
        out.push_str("# HELP nudge_executor_runs_started_total Runs started.\n");
        out.push_str("# TYPE nudge_executor_runs_started_total counter\n");
        let _ = writeln!(out, "nudge_executor_runs_started_total {}", e.runs_started);
        out.push_str("# HELP nudge_executor_actions_total Actions performed, by kind.\n");
        out.push_str("# TYPE nudge_executor_actions_total counter\n");
        for (kind, n) in &e.actions {
            let _ = writeln!(out, "nudge_executor_actions_total{{kind=\"{}\"}} {n}", escape(kind));
        }
        out.push_str("# HELP nudge_executor_event_to_commit_seconds From a group's acceptance to its commit: events, runs and actions together.\n");
        out.push_str("# TYPE nudge_executor_event_to_commit_seconds histogram\n");
        for (bound, n) in BUCKETS.iter().zip(e.to_commit.counts.iter()) {
            let _ = writeln!(out, "nudge_executor_event_to_commit_seconds_bucket{{le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(out, "nudge_executor_event_to_commit_seconds_bucket{{le=\"+Inf\"}} {}", e.to_commit.count);
        let _ = writeln!(out, "nudge_executor_event_to_commit_seconds_sum {}", e.to_commit.sum);
        let _ = writeln!(out, "nudge_executor_event_to_commit_seconds_count {}", e.to_commit.count);
        out.push_str("# HELP nudge_engine_timers_fired_total Due timers the engine looked at.\n");
        out.push_str("# TYPE nudge_engine_timers_fired_total counter\n");
        let _ = writeln!(out, "nudge_engine_timers_fired_total {}", e.timers);
        out.push_str("# HELP nudge_engine_hot_customers Customers the engine's hot state holds.\n");
        out.push_str("# TYPE nudge_engine_hot_customers gauge\n");
        let _ = writeln!(out, "nudge_engine_hot_customers {}", e.hot_customers);
        out.push_str("# HELP nudge_engine_hot_misses_total Customers read from the database because the hot state did not hold them.\n");
        out.push_str("# TYPE nudge_engine_hot_misses_total counter\n");
        let _ = writeln!(out, "nudge_engine_hot_misses_total {}", e.hot_misses);
        out.push_str("# HELP nudge_engine_groups_total Groups the engine committed (each one transaction).\n");
        out.push_str("# TYPE nudge_engine_groups_total counter\n");
        let _ = writeln!(out, "nudge_engine_groups_total {}", e.groups);
        out.push_str(
            "# HELP nudge_engine_groups_overlapped_total Groups evaluated while the group before them committed.\n",
        );
        out.push_str("# TYPE nudge_engine_groups_overlapped_total counter\n");
        let _ = writeln!(out, "nudge_engine_groups_overlapped_total {}", e.overlapped);
        out.push_str("# HELP nudge_engine_groups_reevaluated_total Groups evaluated again because the group before them did not commit as evaluated.\n");
        out.push_str("# TYPE nudge_engine_groups_reevaluated_total counter\n");
        let _ = writeln!(out, "nudge_engine_groups_reevaluated_total {}", e.reevaluated);
        out.push_str("# HELP nudge_engine_quarantined_events_total Events stored without evaluation, because evaluating them could not be committed.\n");
        out.push_str("# TYPE nudge_engine_quarantined_events_total counter\n");
        let _ = writeln!(out, "nudge_engine_quarantined_events_total {}", e.quarantined);
        out.push_str("# HELP nudge_executor_backlog_events Events stored but not yet run.\n");
        out.push_str("# TYPE nudge_executor_backlog_events gauge\n");
        let _ = writeln!(out, "nudge_executor_backlog_events {}", gauges.backlog);
        out.push_str("# HELP nudge_executor_lag_seconds Age of the oldest event not yet run (0 when none).\n");
        out.push_str("# TYPE nudge_executor_lag_seconds gauge\n");
        let _ = writeln!(out, "nudge_executor_lag_seconds {}", gauges.lag_ms as f64 / 1000.0);
        out.push_str("# HELP nudge_runs Runs by status.\n");
        out.push_str("# TYPE nudge_runs gauge\n");
        for (status, n) in &gauges.runs {
            let _ = writeln!(out, "nudge_runs{{status=\"{}\"}} {n}", escape(status));
        }
        out.push_str("# HELP nudge_actions Actions by kind and outcome (pending: a webhook not delivered yet).\n");
        out.push_str("# TYPE nudge_actions gauge\n");
        for (kind, status, n) in &gauges.actions {
            let _ = writeln!(out, "nudge_actions{{kind=\"{}\",status=\"{}\"}} {n}", escape(kind), escape(status));
        }
        out
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP nudge_http_requests_total HTTP requests by method, route and status.\n");
        out.push_str("# TYPE nudge_http_requests_total counter\n");
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for ((method, route, status), n) in &requests {
            let _ = writeln!(
                out,
                "nudge_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        out.push_str("# HELP nudge_http_request_duration_seconds HTTP request latency by route.\n");
        out.push_str("# TYPE nudge_http_request_duration_seconds histogram\n");
        let latency = self.latency.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for (route, h) in &latency {
            let route = escape(route);
            for (bound, n) in BUCKETS.iter().zip(h.counts.iter()) {
                let _ =
                    writeln!(out, "nudge_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}");
            }
            let _ = writeln!(
                out,
                "nudge_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "nudge_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", h.sum);
            let _ = writeln!(out, "nudge_http_request_duration_seconds_count{{route=\"{route}\"}} {}", h.count);
        }
        out
    }
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Records every routed request under its route pattern (never the raw path,
/// so ids in paths cannot blow up the number of series).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "other".into());
    let method = req.method().to_string();
    let start = Instant::now();
    let res = next.run(req).await;
    state.metrics.observe(&method, &route, res.status().as_u16(), start.elapsed().as_secs_f64());
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_histogram_buckets() {
        let m = Metrics::default();
        m.observe("GET", "/healthz", 200, 0.0007);
        m.observe("GET", "/healthz", 200, 0.02);
        m.observe("POST", "/api/v1/users", 422, 0.003);
        let text = m.render();
        assert!(text.contains("nudge_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 2"));
        assert!(text.contains("nudge_http_requests_total{method=\"POST\",route=\"/api/v1/users\",status=\"422\"} 1"));
        assert!(text.contains("nudge_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.001\"} 1"));
        assert!(text.contains("nudge_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.025\"} 2"));
        assert!(text.contains("nudge_http_request_duration_seconds_count{route=\"/healthz\"} 2"));
    }
}
