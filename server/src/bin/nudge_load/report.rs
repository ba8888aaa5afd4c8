//! The suite's figures: what one run measured, the median of the repeats, the
//! targets beside them, as a Markdown table for people and JSON for machines.

use super::sse::SseReport;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CommitLatency {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    /// The histogram's largest finite bound: a quantile equal to it means "at least this".
    pub histogram_top_ms: f64,
}

impl CommitLatency {
    pub fn show(&self, v: Option<f64>) -> String {
        match v {
            Some(v) if self.histogram_top_ms > 0.0 && v >= self.histogram_top_ms => format!("> {}", ms(v)),
            other => opt_ms(other),
        }
    }
}

/// Five seconds of the soak.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub end_seconds: f64,
    pub events_per_second: f64,
    pub rss_kib: Option<u64>,
    /// RSS without file-backed pages (the database's memory map).
    pub rss_anon_kib: Option<u64>,
    pub backlog: u64,
}

/// One run of a throughput scenario, on its own fresh server.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunFigures {
    pub seconds: f64,
    /// Events a second asked of the fixed-rate sender, if it was one.
    pub target_events_per_second: Option<f64>,
    pub requests: u64,
    pub events_accepted: u64,
    pub events_per_second: f64,
    pub http_latency_ms: Latency,
    pub errors: BTreeMap<String, u64>,
    pub events_executed: u64,
    pub executed_per_second: f64,
    /// From the first request until the executor's backlog was empty.
    pub drained_after_seconds: f64,
    pub backlog_left: u64,
    /// The largest executor backlog seen (sampled every second).
    pub backlog_max: u64,
    /// From an event's arrival (its 202) to the commit of its runs and actions.
    pub event_to_commit_ms: CommitLatency,
    pub server_cpu_seconds: f64,
    pub cpu_seconds_per_1k_events: Option<f64>,
    /// CPU the load generator itself used (it shares the machine).
    pub load_generator_cpu_seconds: f64,
    pub peak_rss_kib: Option<u64>,
    pub disk_bytes: u64,
    pub disk_files: BTreeMap<String, u64>,
    /// The data folder, when kept (`--keep-data`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<std::path::PathBuf>,
    /// From SIGTERM until the server had exited.
    pub stop_seconds: f64,
    pub bytes_per_event: Option<f64>,
    pub webhooks_received: u64,
    pub clean_shutdown: bool,
    /// Lines at WARN or ERROR in the server's log.
    pub server_log_warnings: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Window>,
}

impl RunFigures {
    /// The soak's first and last windows and the RSS growth between them, in %.
    pub fn soak_drift(&self) -> Option<(&Window, &Window, Option<f64>)> {
        let (first, last) = (self.windows.first()?, self.windows.last()?);
        let growth = match (first.rss_kib, last.rss_kib) {
            (Some(a), Some(b)) if a > 0 => Some((b as f64 - a as f64) / a as f64 * 100.0),
            _ => None,
        };
        Some((first, last, growth))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SseFigures {
    #[serde(flatten)]
    pub stream: SseReport,
    pub peak_rss_kib: Option<u64>,
    pub server_cpu_seconds: f64,
    pub disk_bytes: u64,
    pub clean_shutdown: bool,
    pub server_log_warnings: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Throughput,
    Sse,
}

#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub id: String,
    pub title: String,
    pub kind: Kind,
    pub settings: serde_json::Value,
    /// Index into `runs` of the run reported (the median).
    pub median_run: Option<usize>,
    pub runs: Vec<RunFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sse: Option<SseFigures>,
    /// Why runs failed, one entry per failure.
    pub failures: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl Scenario {
    pub fn median(&self) -> Option<&RunFigures> {
        self.runs.get(self.median_run?)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub target: String,
    pub measured: String,
    /// `None`: not measured, or not at the target's scale (quick mode).
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub memory_kib: Option<u64>,
    pub kernel: String,
    /// /proc/loadavg when the suite started and when it ended: other work on the
    /// machine (compiles, say) takes CPU from the server and the load generator.
    pub load_average_start: String,
    pub load_average_end: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub date: String,
    pub command: String,
    pub git_commit: Option<String>,
    /// Whether the working tree had uncommitted changes to tracked files.
    pub git_dirty: Option<bool>,
    pub machine: Machine,
    pub settings: serde_json::Value,
    pub scenarios: Vec<Scenario>,
    pub targets: Vec<Target>,
    pub total_seconds: f64,
}

/// Picks the run to report: the median by `key` (lower middle for an even count).
pub fn median_index(runs: &[RunFigures], key: impl Fn(&RunFigures) -> f64) -> Option<usize> {
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by(|a, b| key(&runs[*a]).total_cmp(&key(&runs[*b])));
    order.get(runs.len().saturating_sub(1) / 2).copied()
}

fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

pub fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or("–".into(), ms)
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("–".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn errors(e: &BTreeMap<String, u64>) -> String {
    if e.is_empty() {
        return "none".into();
    }
    e.iter().map(|(k, v)| format!("{k} × {}", thousands(*v as f64))).collect::<Vec<_>>().join(", ")
}

fn find<'a>(scenarios: &'a [Scenario], id: &str) -> Option<&'a Scenario> {
    scenarios.iter().find(|s| s.id == id)
}

/// The targets, each beside what the suite measured.
pub fn targets(scenarios: &[Scenario], soak_target_seconds: u64, idle_target_clients: usize) -> Vec<Target> {
    let mut out = Vec::new();
    let median = |id: &str| find(scenarios, id).and_then(Scenario::median);
    let missing = |target: &str| Target { target: target.into(), measured: "not measured".into(), met: None };

    let ceiling = median("store-only");
    let t = "64 connections, 20 workflows: ≥ 8,000 events/s accepted and evaluated, and ≥ 0.6 × store-only";
    out.push(match median("single-64") {
        Some(r) => {
            let evaluated = r.events_per_second.min(r.executed_per_second);
            let ratio = ceiling.map(|c| evaluated / c.events_per_second.max(1.0));
            Target {
                target: t.into(),
                measured: format!(
                    "{} accepted, {} evaluated; {} × store-only ({})",
                    thousands(r.events_per_second),
                    thousands(r.executed_per_second),
                    ratio.map_or("–".into(), |x| format!("{x:.2}")),
                    ceiling.map_or("not measured".into(), |c| format!("{} events/s", thousands(c.events_per_second)))
                ),
                met: ratio.map(|x| evaluated >= 8_000.0 && x >= 0.6),
            }
        }
        None => missing(t),
    });
    let t = "Batches of 100, 20 workflows: ≥ 25,000 events/s accepted and evaluated";
    let batch_ceiling = median("store-only-batch");
    out.push(match median("batch-100") {
        Some(r) => Target {
            target: t.into(),
            measured: format!(
                "{} accepted, {} evaluated; {}",
                thousands(r.events_per_second),
                thousands(r.executed_per_second),
                batch_ceiling.map_or("store-only batches not measured".into(), |c| format!(
                    "{:.2} × store-only batches ({} events/s)",
                    r.events_per_second.min(r.executed_per_second) / c.events_per_second.max(1.0),
                    thousands(c.events_per_second)
                ))
            ),
            met: Some(r.events_per_second.min(r.executed_per_second) >= 25_000.0),
        },
        None => missing(t),
    });
    let t = "Half the 64-connection rate: HTTP p99 ≤ 15 ms, no separate 202 → action latency";
    out.push(match median("half-rate") {
        Some(r) => Target {
            target: t.into(),
            measured: format!(
                "HTTP p99 {} ms at {} events/s; backlog max {}",
                ms(r.http_latency_ms.p99),
                thousands(r.events_per_second),
                thousands(r.backlog_max as f64)
            ),
            met: Some(r.http_latency_ms.p99 <= 15.0 && r.backlog_max == 0),
        },
        None => missing(t),
    });
    let t = "1,000 SSE clients, 1 event/s: event → client p99 ≤ 50 ms";
    out.push(match find(scenarios, "sse-fanout").and_then(|s| s.sse.as_ref()) {
        Some(f) => Target {
            target: t.into(),
            measured: format!(
                "p99 {} ms, {} clients, {} of {} deliveries",
                ms(f.stream.event_to_client_ms.p99),
                thousands(f.stream.sse_clients as f64),
                thousands(f.stream.deliveries as f64),
                thousands(f.stream.expected_deliveries as f64)
            ),
            met: (f.stream.sse_clients >= 1000).then_some(
                f.stream.event_to_client_ms.p99 <= 50.0 && f.stream.deliveries == f.stream.expected_deliveries,
            ),
        },
        None => missing(t),
    });
    let t = "10,000 idle SSE clients: < 100 MiB more RSS";
    out.push(match find(scenarios, "sse-idle").and_then(|s| s.sse.as_ref()) {
        Some(f) => Target {
            target: t.into(),
            measured: format!(
                "+{} with {} clients ({} KiB each; anonymous +{})",
                mib(f.stream.added_rss_kib),
                thousands(f.stream.sse_clients as f64),
                f.stream.kib_per_idle_client.map_or("–".into(), |k| format!("{k:.1}")),
                mib(f.stream.added_rss_anon_kib)
            ),
            met: f.stream.added_rss_kib.filter(|_| f.stream.sse_clients >= idle_target_clients).map(|k| k < 100 * 1024),
        },
        None => missing(t),
    });
    let t = "RSS flat over the soak (≤ 10 % growth, first to last 5 s window)";
    out.push(match median("soak-64").and_then(|r| r.soak_drift().map(|d| (r, d))) {
        Some((r, (first, last, growth))) => Target {
            target: t.into(),
            measured: format!(
                "{} → {} ({}) over {:.0} s (anonymous {} → {}); {} → {} events/s",
                mib(first.rss_kib),
                mib(last.rss_kib),
                growth.map_or("–".into(), |g| format!("{g:+.1} %")),
                r.seconds,
                mib(first.rss_anon_kib),
                mib(last.rss_anon_kib),
                thousands(first.events_per_second),
                thousands(last.events_per_second)
            ),
            met: growth.filter(|_| r.seconds + 1.0 >= soak_target_seconds as f64).map(|g| g <= 10.0),
        },
        None => missing(t),
    });
    let t = "< 1 KiB on disk per event (the soak's database)";
    let disk = median("soak-64").or_else(|| median("single-64"));
    out.push(match disk.and_then(|r| r.bytes_per_event.map(|b| (r, b))) {
        Some((r, b)) => Target {
            target: t.into(),
            measured: format!("{} bytes/event over {} events", thousands(b), thousands(r.events_accepted as f64)),
            met: Some(b < 1024.0),
        },
        None => missing(t),
    });
    out
}

/// The Markdown the suite prints: the throughput table, the soak's windows,
/// the live stream, and the targets.
pub fn markdown(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Nudge benchmark suite, {} — {} × {}, commit {}{}",
        r.date,
        r.machine.nproc,
        r.machine.cpu_model,
        r.git_commit.as_deref().unwrap_or("unknown"),
        if r.git_dirty == Some(true) { " (with uncommitted changes)" } else { "" }
    );
    let _ = writeln!(
        s,
        "`{}` — {:.0} s; load average {} at the start, {} at the end\n",
        r.command, r.total_seconds, r.machine.load_average_start, r.machine.load_average_end
    );
    let _ = writeln!(
        s,
        "| Scenario | Events/s accepted | Executed/s | HTTP p50 / p99 / p99.9 ms | 202→commit p50 / p99 ms | Backlog max / left | CPU s / 1k events | Peak RSS | Bytes / event | Errors |"
    );
    let _ = writeln!(s, "|---|---:|---:|---|---|---:|---:|---:|---:|---|");
    for sc in r.scenarios.iter().filter(|sc| matches!(sc.kind, Kind::Throughput)) {
        let Some(m) = sc.median() else {
            let why = sc.skipped.clone().or_else(|| sc.failures.first().cloned()).unwrap_or_default();
            let _ = writeln!(
                s,
                "| {} | {} | | | | | | | | |",
                sc.title,
                if sc.skipped.is_some() { "skipped" } else { "failed" }
            );
            let _ = writeln!(s, "|  ↳ {} | | | | | | | | | |", why.replace('|', "/").replace('\n', " "));
            continue;
        };
        let runs = if sc.runs.len() > 1 { format!(" (median of {})", sc.runs.len()) } else { String::new() };
        let _ = writeln!(
            s,
            "| {}{} | {} | {} | {} / {} / {} | {} / {} | {} / {} | {} | {} | {} | {} |",
            sc.title,
            runs,
            thousands(m.events_per_second),
            thousands(m.executed_per_second),
            ms(m.http_latency_ms.p50),
            ms(m.http_latency_ms.p99),
            ms(m.http_latency_ms.p999),
            m.event_to_commit_ms.show(m.event_to_commit_ms.p50),
            m.event_to_commit_ms.show(m.event_to_commit_ms.p99),
            thousands(m.backlog_max as f64),
            thousands(m.backlog_left as f64),
            m.cpu_seconds_per_1k_events.map_or("–".into(), |c| format!("{c:.3}")),
            mib(m.peak_rss_kib),
            m.bytes_per_event.map_or("–".into(), thousands),
            errors(&m.errors),
        );
    }
    if let Some(soak) = find(&r.scenarios, "soak-64").and_then(Scenario::median) {
        let _ = writeln!(
            s,
            "\nSoak, every 5 s:\n\n| t (s) | Events/s | RSS | of which anonymous | Backlog |\n|---:|---:|---:|---:|---:|"
        );
        for w in &soak.windows {
            let _ = writeln!(
                s,
                "| {:.0} | {} | {} | {} | {} |",
                w.end_seconds,
                thousands(w.events_per_second),
                mib(w.rss_kib),
                mib(w.rss_anon_kib),
                thousands(w.backlog as f64)
            );
        }
    }
    let sse: Vec<&Scenario> = r.scenarios.iter().filter(|sc| matches!(sc.kind, Kind::Sse)).collect();
    if !sse.is_empty() {
        let _ = writeln!(
            s,
            "\n| Live stream | Clients | Deliveries | Event → client p50 / p99 / max ms | RSS added by idle clients | Peak RSS |\n|---|---:|---:|---|---:|---:|"
        );
        for sc in sse {
            match &sc.sse {
                Some(f) => {
                    let st = &f.stream;
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} of {} | {} / {} / {} | {} ({} KiB each) | {} |",
                        sc.title,
                        thousands(st.sse_clients as f64),
                        thousands(st.deliveries as f64),
                        thousands(st.expected_deliveries as f64),
                        ms(st.event_to_client_ms.p50),
                        ms(st.event_to_client_ms.p99),
                        ms(st.event_to_client_ms.max),
                        mib(st.added_rss_kib),
                        st.kib_per_idle_client.map_or("–".into(), |k| format!("{k:.1}")),
                        mib(f.peak_rss_kib),
                    );
                }
                None => {
                    let why = sc.skipped.clone().or_else(|| sc.failures.first().cloned()).unwrap_or_default();
                    let _ = writeln!(s, "| {} | {} | | | | |", sc.title, why.replace('|', "/").replace('\n', " "));
                }
            }
        }
    }
    let _ = writeln!(s, "\n| Target | Measured | Met |\n|---|---|---|");
    for t in &r.targets {
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "n/a",
        };
        let _ = writeln!(s, "| {} | {} | {met} |", t.target, t.measured);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_run_is_reported_and_numbers_read_with_separators() {
        let run = |eps: f64| RunFigures { events_per_second: eps, ..RunFigures::default() };
        let runs = vec![run(300.0), run(100.0), run(200.0)];
        assert_eq!(median_index(&runs, |r| r.events_per_second), Some(2));
        assert_eq!(median_index(&runs[..2], |r| r.events_per_second), Some(1), "lower middle of two");
        assert_eq!(median_index(&[], |r| r.events_per_second), None);
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(ms(0.456), "0.46");
        assert_eq!(ms(123.4), "123");
    }
}
