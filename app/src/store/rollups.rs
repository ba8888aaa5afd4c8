//! Engagement figures as per-minute and per-hour counters, added to in the
//! same transaction as the events, runs and actions they count — so a
//! dashboard reads a few hundred rows whatever the number of events, and a
//! replayed batch cannot count twice.

use super::Db;
use crate::with_pool;
use std::collections::HashMap;

pub const MINUTE: i64 = 60_000;
pub const HOUR: i64 = 3_600_000;

/// Per-minute rows are kept this long (enough for a 24 h range and the 24 h before).
pub const MINUTE_RETENTION_MS: i64 = 3 * 24 * HOUR;

/// What is counted. `workflow` is empty for installation-wide totals; `key`
/// carries the dimension (an event name, a source, a node, a latency bucket).
pub mod metric {
    pub const EVENTS: &str = "events";
    pub const EVENT_NAME: &str = "event_name";
    pub const EVENT_SOURCE: &str = "event_source";
    pub const RUNS_STARTED: &str = "runs_started";
    pub const RUNS_CONVERTED: &str = "runs_converted";
    pub const RUNS_COMPLETED: &str = "runs_completed";
    pub const RUNS_FAILED: &str = "runs_failed";
    pub const OFFERS_ISSUED: &str = "offers_issued";
    pub const OFFERS_REDEEMED: &str = "offers_redeemed";
    pub const ALERTS_RAISED: &str = "alerts_raised";
    pub const WEBHOOKS: &str = "webhooks";
    pub const PROFILE_UPDATES: &str = "profile_updates";
    /// Event → action commit time; key = the bucket's index in `LATENCY_BOUNDS_MS`.
    pub const LATENCY: &str = "latency";
    /// Runs entering a node; key = `<version>:<node>`.
    pub const NODE_ENTERED: &str = "node_entered";
    /// Runs leaving a node by an output; key = `<version>:<node>:<output>`.
    pub const NODE_EXIT: &str = "node_exit";
}

/// The histogram's bounds live in the model: the browser reads quantiles from it too.
pub use crate::model::LATENCY_BOUNDS_MS;

pub fn latency_bucket(ms: i64) -> usize {
    LATENCY_BOUNDS_MS.iter().position(|b| ms <= *b).unwrap_or(LATENCY_BOUNDS_MS.len() - 1)
}

/// Counts gathered while a batch is built, written with it.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    counts: HashMap<(&'static str, String, String, i64), i64>,
}

impl Tally {
    /// Adds `n` to `metric` for `workflow` ("" = all) and `key` at time `at` (unix ms).
    pub fn add(&mut self, metric: &'static str, workflow: &str, key: &str, at: i64, n: i64) {
        let minute = at - at.rem_euclid(MINUTE);
        *self.counts.entry((metric, workflow.to_string(), key.to_string(), minute)).or_default() += n;
    }

    /// Adds to the installation's total and, when given, the workflow's own.
    pub fn add_both(&mut self, metric: &'static str, workflow: &str, key: &str, at: i64) {
        self.add(metric, "", key, at, 1);
        if !workflow.is_empty() {
            self.add(metric, workflow, key, at, 1);
        }
    }

    /// The rows to add, per minute and per hour: (metric, workflow, key, step, bucket, n).
    pub fn rows(&self) -> Vec<(&'static str, &str, &str, i64, i64, i64)> {
        let mut hourly: HashMap<(&'static str, &str, &str, i64), i64> = HashMap::new();
        let mut out = Vec::with_capacity(self.counts.len() * 2);
        for ((metric, workflow, key, minute), n) in &self.counts {
            out.push((*metric, workflow.as_str(), key.as_str(), MINUTE, *minute, *n));
            let hour = minute - minute.rem_euclid(HOUR);
            *hourly.entry((*metric, workflow.as_str(), key.as_str(), hour)).or_default() += n;
        }
        out.extend(hourly.into_iter().map(|((m, w, k, h), n)| (m, w, k, HOUR, h, n)));
        out
    }

    /// Per-metric totals, for the live `metrics` tick.
    pub fn totals(&self) -> impl Iterator<Item = (&'static str, &str, &str, i64)> + '_ {
        self.counts.iter().map(|((m, w, k, _), n)| (*m, w.as_str(), k.as_str(), *n))
    }
}

/// Rows per statement: 6 binds each, well under both drivers' limits.
const CHUNK: usize = 150;

/// `insert … on conflict do update` for `n` rows: adds to existing counters.
fn upsert_sql(db: &Db, n: usize) -> String {
    format!(
        "insert into metric_rollup (metric, workflow_id, key, step, bucket, value) values {} \
         on conflict (metric, workflow_id, key, step, bucket) do update set value = metric_rollup.value + excluded.value",
        super::events::values(db, n, 6)
    )
}

impl Tally {
    /// Adds the tally's rows to `script`, in the transaction of what they count.
    pub fn script<'q>(&'q self, db: &Db, script: &mut super::group::Script<'q>) {
        let mut rows = self.rows();
        // Sorted, so concurrent writers lock counters in the same order.
        rows.sort_unstable();
        for chunk in rows.chunks(CHUNK) {
            script.statement(&upsert_sql(db, chunk.len()));
            for (metric, workflow, key, step, bucket, n) in chunk {
                script.bind(*metric).bind(*workflow).bind(*key).bind(*step).bind(*bucket).bind(*n);
            }
        }
    }
}

/// Sums of one metric in `[from, to)` per bucket of `step` (MINUTE or HOUR rows).
pub async fn series(
    db: &Db,
    metric: &str,
    workflow: &str,
    key: &str,
    step: i64,
    from: i64,
    to: i64,
) -> sqlx::Result<Vec<(i64, i64)>> {
    let sql = "select bucket, value from metric_rollup where metric = $1 and workflow_id = $2 and key = $3 \
               and step = $4 and bucket >= $5 and bucket < $6 order by bucket";
    with_pool!(db, p => sqlx::query_as::<_, (i64, i64)>(sql)
        .bind(metric).bind(workflow).bind(key).bind(step).bind(from).bind(to)
        .fetch_all(p).await)
}

/// Totals of one metric in `[from, to)` per key (top event names, latency buckets, funnels).
pub async fn by_key(
    db: &Db,
    metric: &str,
    workflow: &str,
    step: i64,
    from: i64,
    to: i64,
) -> sqlx::Result<Vec<(String, i64)>> {
    let sql = "select key, cast(sum(value) as bigint) from metric_rollup where metric = $1 and workflow_id = $2 \
               and step = $3 and bucket >= $4 and bucket < $5 group by key";
    with_pool!(db, p => sqlx::query_as::<_, (String, i64)>(sql)
        .bind(metric).bind(workflow).bind(step).bind(from).bind(to)
        .fetch_all(p).await)
}

/// Totals per workflow of one metric in `[from, to)` (offer performance by workflow).
pub async fn by_workflow(db: &Db, metric: &str, step: i64, from: i64, to: i64) -> sqlx::Result<Vec<(String, i64)>> {
    let sql = "select workflow_id, cast(sum(value) as bigint) from metric_rollup where metric = $1 \
               and workflow_id <> '' and key = '' and step = $2 and bucket >= $3 and bucket < $4 group by workflow_id";
    with_pool!(db, p => sqlx::query_as::<_, (String, i64)>(sql)
        .bind(metric).bind(step).bind(from).bind(to)
        .fetch_all(p).await)
}

/// Drops per-minute rows older than the retention (hourly rows stay).
pub async fn prune(db: &Db, now: i64) -> sqlx::Result<u64> {
    let sql = "delete from metric_rollup where step = $1 and bucket < $2";
    crate::execute!(db, sqlx::query(sql).bind(MINUTE).bind(now - MINUTE_RETENTION_MS))
}

/// Totals of every un-keyed metric in `[from, to)` for `workflow` ("" = all).
pub async fn totals(db: &Db, workflow: &str, step: i64, from: i64, to: i64) -> sqlx::Result<Vec<(String, i64)>> {
    let sql = "select metric, cast(sum(value) as bigint) from metric_rollup where workflow_id = $1 and key = '' \
               and step = $2 and bucket >= $3 and bucket < $4 group by metric";
    with_pool!(db, p => sqlx::query_as::<_, (String, i64)>(sql)
        .bind(workflow).bind(step).bind(from).bind(to)
        .fetch_all(p).await)
}

pub async fn workflow_names(db: &Db) -> sqlx::Result<HashMap<String, String>> {
    let sql = "select workflow_id, name from workflow";
    let rows: Vec<(super::IdText, String)> = with_pool!(db, p => sqlx::query_as(sql).fetch_all(p).await)?;
    Ok(rows.into_iter().map(|(id, name)| (id.0, name)).collect())
}

/// What the installation has set up: a source, a published workflow, an event.
pub async fn setup(db: &Db) -> sqlx::Result<crate::model::Setup> {
    let sql = "select (select count(*) from source), \
               (select count(*) from workflow where active_version is not null), \
               (select count(*) from (select 1 from event limit 1) as any_event)";
    let (sources, workflows, events): (i64, i64, i64) = with_pool!(db, p => sqlx::query_as(sql).fetch_one(p).await)?;
    Ok(crate::model::Setup { source: sources > 0, workflow: workflows > 0, events: events > 0 })
}

/// Alerts still open, of one workflow or all ("").
pub async fn open_alerts(db: &Db, workflow: &str) -> sqlx::Result<i64> {
    let sql = "select count(*) from alert where status = 'open' and ($1 = '' or workflow_id = $1)";
    with_pool!(db, p => sqlx::query_scalar::<_, i64>(sql).bind(super::Id(workflow)).fetch_one(p).await)
}

/// Runs of a workflow version waiting now, by the node they wait at.
pub async fn waiting_at(db: &Db, workflow_id: &str, version: i64) -> sqlx::Result<Vec<(String, i64)>> {
    let sql = "select at_node, count(*) from run where workflow_id = $1 and status = 'waiting' and version = $2 \
               and at_node is not null group by at_node";
    with_pool!(db, p => sqlx::query_as::<_, (String, i64)>(sql).bind(super::Id(workflow_id)).bind(version).fetch_all(p).await)
}
