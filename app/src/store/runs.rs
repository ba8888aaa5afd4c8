//! The executor's tables: runs and their steps, actions (the exactly-once
//! ledger), offers, alerts, re-entry times, and the queue of events to run.

use super::events::EventRow;
use super::rollups::metric;
use super::{Db, Id, IdText};
use crate::model::ActionHealth;
use crate::with_pool;
use crate::workflow::status::ActionStatus;
use std::collections::HashMap;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunRow {
    #[sqlx(try_from = "IdText")]
    pub run_id: String,
    #[sqlx(try_from = "IdText")]
    pub workflow_id: String,
    pub version: i64,
    pub customer_id: String,
    pub status: String,
    pub at_node: Option<String>,
    pub wake_at: Option<i64>,
    pub state: String,
    #[sqlx(try_from = "IdText")]
    pub trigger_event_id: String,
    pub started_at: i64,
    pub updated_at: i64,
    pub ended_at: Option<i64>,
    /// The trigger event's payload, read from the event itself by the queries
    /// that load runs to advance them: the stored state leaves it out (it
    /// would repeat the event in every run it starts).
    #[sqlx(default)]
    pub trigger_payload: Option<String>,
}

pub const RUN_COLUMNS: &str = "run_id, workflow_id, version, customer_id, status, at_node, wake_at, state, \
                               trigger_event_id, started_at, updated_at, ended_at";

/// The trigger event's payload of the run in the query (see `RunRow::trigger_payload`).
const TRIGGER_PAYLOAD: &str =
    "(select e.payload from event e where e.event_id = run.trigger_event_id) as trigger_payload";

/// A published version that may start runs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActiveVersion {
    #[sqlx(try_from = "IdText")]
    pub workflow_id: String,
    pub version: i64,
    pub definition: String,
    pub status: String,
}

/// The oldest events not yet run, at most `limit`, in arrival order.
pub async fn queued_events(db: &Db, limit: i64) -> sqlx::Result<Vec<EventRow>> {
    let sql = "select e.event_id, e.source_id, e.external_id, e.name, e.customer_id, e.occurred_at, e.received_at, \
               e.payload, e.offer_code from work_item w join event e on e.event_id = w.event_id order by w.event_id limit $1";
    with_pool!(db, p => sqlx::query_as::<_, EventRow>(sql).bind(limit).fetch_all(p).await)
}

/// How many events wait for the executor, and since when (the oldest's arrival).
pub async fn backlog(db: &Db) -> sqlx::Result<(i64, Option<i64>)> {
    let sql = "select count(*), min(created_at) from work_item";
    with_pool!(db, p => sqlx::query_as::<_, (i64, Option<i64>)>(sql).fetch_one(p).await)
}

/// What the database says about the executor at a moment.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Events queued for the executor.
    pub backlog: i64,
    /// Age of the oldest queued event (ms; 0 when none).
    pub lag_ms: i64,
    /// Runs by status.
    pub runs: Vec<(String, i64)>,
    /// Actions by kind and status.
    pub actions: Vec<(String, String, i64)>,
}

pub async fn gauges(db: &Db, now: i64) -> sqlx::Result<Gauges> {
    let (backlog, oldest) = backlog(db).await?;
    let runs_sql = "select status, count(*) from run group by status order by status";
    let runs: Vec<(String, i64)> = with_pool!(db, p => sqlx::query_as(runs_sql).fetch_all(p).await)?;
    let actions_sql = "select kind, status, count(*) from action group by kind, status order by kind, status";
    let actions: Vec<(String, String, i64)> = with_pool!(db, p => sqlx::query_as(actions_sql).fetch_all(p).await)?;
    Ok(Gauges { backlog, lag_ms: oldest.map(|o| (now - o).max(0)).unwrap_or(0), runs, actions })
}

/// Every workflow's running version: the active ones start runs; paused ones
/// are listed too, so their waiting runs are known to be held.
pub async fn published_versions(db: &Db) -> sqlx::Result<Vec<ActiveVersion>> {
    let sql = "select w.workflow_id, v.version, v.definition, w.status from workflow w \
               join workflow_version v on v.workflow_id = w.workflow_id and v.version = w.active_version \
               where w.status in ('active', 'paused')";
    with_pool!(db, p => sqlx::query_as::<_, ActiveVersion>(sql).fetch_all(p).await)
}

pub async fn version_definition(db: &Db, workflow_id: &str, version: i64) -> sqlx::Result<Option<String>> {
    let sql = "select definition from workflow_version where workflow_id = $1 and version = $2";
    with_pool!(db, p => sqlx::query_scalar::<_, String>(sql).bind(Id(workflow_id)).bind(version).fetch_optional(p).await)
}

pub async fn workflow_status(db: &Db, workflow_id: &str) -> sqlx::Result<Option<String>> {
    let sql = "select status from workflow where workflow_id = $1";
    with_pool!(db, p => sqlx::query_scalar::<_, String>(sql).bind(Id(workflow_id)).fetch_optional(p).await)
}

/// Waiting runs of any of these customers, in one query, ordered by run. (No
/// ORDER BY in SQL: it would tempt SQLite into walking every waiting run by
/// (status, run_id) instead of these customers' few by (customer_id, status).)
pub async fn waiting_runs_of_many(db: &Db, customer_ids: &[String]) -> sqlx::Result<Vec<RunRow>> {
    if customer_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "select {RUN_COLUMNS}, {TRIGGER_PAYLOAD} from run where customer_id in ({}) and status = 'waiting'",
        super::params(db, 1, customer_ids.len())
    );
    let mut rows = with_pool!(db, p => {
        let mut q = sqlx::query_as::<_, RunRow>(&sql);
        for id in customer_ids {
            q = q.bind(id);
        }
        q.fetch_all(p).await
    })?;
    rows.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    Ok(rows)
}

/// When each of these customers last entered each workflow: (workflow,
/// customer, at), in one query.
pub async fn last_entered_of(db: &Db, customer_ids: &[String]) -> sqlx::Result<Vec<(String, String, i64)>> {
    if customer_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "select workflow_id, customer_id, last_entered_at from workflow_entry where customer_id in ({})",
        super::params(db, 1, customer_ids.len())
    );
    with_pool!(db, p => {
        let mut q = sqlx::query_as::<_, (IdText, String, i64)>(&sql);
        for id in customer_ids {
            q = q.bind(id);
        }
        q.fetch_all(p).await.map(|rows| rows.into_iter().map(|(w, c, at)| (w.0, c, at)).collect())
    })
}

/// Waiting runs of active workflows whose timer is due at `now`, oldest due
/// first. (A paused workflow's runs keep their timers until it resumes.)
pub async fn due_runs(db: &Db, now: i64, limit: i64) -> sqlx::Result<Vec<RunRow>> {
    let columns: Vec<String> = RUN_COLUMNS.split(", ").map(|c| format!("run.{c}")).collect();
    let sql = format!(
        "select {}, {TRIGGER_PAYLOAD} from run join workflow w on w.workflow_id = run.workflow_id \
         where run.status = 'waiting' and run.wake_at <= $1 and w.status = 'active' \
         order by run.wake_at, run.run_id limit $2",
        columns.join(", ")
    );
    with_pool!(db, p => sqlx::query_as::<_, RunRow>(&sql).bind(now).bind(limit).fetch_all(p).await)
}

/// When the next timer of an active workflow's run is due, if any.
pub async fn next_due(db: &Db) -> sqlx::Result<Option<i64>> {
    // Walks run_due in time order and stops at the first run of an active workflow.
    let sql = "select r.wake_at from run r join workflow w on w.workflow_id = r.workflow_id \
               where r.status = 'waiting' and r.wake_at is not null and w.status = 'active' \
               order by r.wake_at limit 1";
    with_pool!(db, p => sqlx::query_scalar::<_, i64>(sql).fetch_optional(p).await)
}

/// Events of one name of any of these customers accepted since `since`
/// (unix ms): (customer, accepted at, payload), in one query — what the
/// engine counts in the windows of the customers its cache does not hold.
pub async fn customers_events_since(
    db: &Db,
    customer_ids: &[String],
    name: &str,
    since: i64,
) -> sqlx::Result<Vec<(String, i64, String)>> {
    if customer_ids.is_empty() {
        return Ok(Vec::new());
    }
    // The customers' few events, not every event of that name: without
    // statistics SQLite may pick `event_by_name`, which scans all of them.
    let hint = match db {
        Db::Sqlite(_) => "indexed by event_by_customer",
        Db::Postgres(_) => "",
    };
    let sql = format!(
        "select customer_id, received_at, payload from event {hint} \
         where received_at >= {} and name = {} and customer_id in ({})",
        super::param(db, 1),
        super::param(db, 2),
        super::params(db, 3, customer_ids.len())
    );
    with_pool!(db, p => {
        let mut q = sqlx::query_as::<_, (String, i64, String)>(&sql).bind(since).bind(name);
        for id in customer_ids {
            q = q.bind(id);
        }
        q.fetch_all(p).await
    })
}

/// A run as it is after a step, to insert or update.
#[derive(Debug, Clone)]
pub struct RunWrite {
    pub run_id: String,
    pub workflow_id: String,
    pub version: i64,
    pub customer_id: String,
    pub status: crate::workflow::eval::RunStatus,
    pub at_node: Option<String>,
    pub wake_at: Option<i64>,
    pub state: String,
    pub trigger_event_id: String,
    pub started_at: i64,
    pub new: bool,
}

#[derive(Debug, Clone)]
pub struct StepWrite {
    pub run_id: String,
    pub seq: i64,
    pub node: String,
    pub outcome: String,
    pub detail: Option<String>,
    pub at: i64,
}

/// An action with its effect, written only if its key is new.
#[derive(Debug, Clone)]
pub enum Effect {
    Offer {
        code: String,
        discount: String,
        value: f64,
        expires_at: i64,
    },
    Alert {
        alert_id: String,
        severity: String,
        audience: String,
        message: String,
    },
    /// Attribute changes merged into the customer's profile.
    Profile {
        changes: Vec<crate::workflow::ProfileChange>,
    },
    /// Delivered later by the webhook worker.
    Webhook,
}

#[derive(Debug, Clone)]
pub struct ActionWrite {
    pub action_key: String,
    pub run_id: String,
    pub workflow_id: String,
    pub node: String,
    pub customer_id: String,
    pub kind: &'static str,
    pub payload: String,
    pub effect: Effect,
    /// When the event that caused it arrived (none for a timer's step).
    pub caused_at: Option<i64>,
}

/// Everything one executor step writes, committed together.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub runs: Vec<RunWrite>,
    pub steps: Vec<StepWrite>,
    /// (workflow, customer, time) of runs started.
    pub entries: Vec<(String, String, i64)>,
    pub actions: Vec<ActionWrite>,
    /// Events of an older version's queue (`work_item`) done with, removed
    /// from it: only the catch-up at start-up has any.
    pub events_done: Vec<String>,
    /// Offer codes the core found redeemable: (code, redeemed by).
    pub redemptions: Vec<(String, String)>,
    /// Runs that can no longer advance, failed with the reason: (run, why).
    pub broken: Vec<(String, String)>,
    /// Webhook attempts the delivery worker made, recorded with the group.
    pub attempts: Vec<Attempt>,
    /// New webhook actions are inserted leased for this long (ms), to be
    /// handed to this process's delivery worker (`engine::Handover`); `None`:
    /// due at once, for a lease round.
    pub webhook_lease_ms: Option<i64>,
    /// The profiles a workflow changed, as the group left them (customer,
    /// JSON): the engine applied its events' attributes and the changes in
    /// the order they happened, which is what is stored.
    pub profiles: Vec<(String, String)>,
    /// Runs started and ended, nodes entered and left (the executor counts
    /// these; the commit adds what the actions did).
    pub tally: super::rollups::Tally,
}

/// What the commit did, for metrics and the live stream.
#[derive(Debug, Clone, Default)]
pub struct Committed {
    /// Keys of actions performed now (not replays of ones done before).
    pub performed: Vec<String>,
    /// Webhook actions now waiting for delivery.
    pub webhooks: usize,
    /// Offers redeemed now, as they now stand.
    pub redeemed: Vec<crate::model::Offer>,
    /// The commit's time (unix ms), written as the rows' `updated_at`.
    pub at: i64,
    /// Everything counted, as written to the rollups.
    pub tally: super::rollups::Tally,
}

/// Writes what the engine evaluated inside the group's transaction: run
/// states, steps, entries, actions and their effects (offers, alerts, profile
/// changes), redemptions. An action whose key exists is skipped with its
/// effect, so nothing is performed twice, whatever is replayed.
pub async fn write(tx: &mut super::group::Tx<'_>, db: &Db, batch: &Batch, now: i64) -> sqlx::Result<Committed> {
    use super::events::values;
    use super::group::Script;
    let mut out = Committed { at: now, ..Committed::default() };
    let mut tally = batch.tally.clone();
    // A multi-row upsert may touch each key once: the latest entry per
    // (workflow, customer) wins.
    let mut entries: HashMap<(&str, &str), i64> = HashMap::new();
    for (workflow_id, customer_id, at) in &batch.entries {
        let e = entries.entry((workflow_id.as_str(), customer_id.as_str())).or_insert(*at);
        *e = (*e).max(*at);
    }
    let mut entries: Vec<((&str, &str), i64)> = entries.into_iter().collect();
    entries.sort_unstable();
    // A run's steps in the batch that starts it go inline in its row.
    let (inline, steps) = inline_steps(batch);
    // Statements carry many rows each, in chunks under both drivers' bind
    // limits, and those whose outcome is not read go in scripts (`Script`):
    // what a group costs is its round trips, not its rows.
    let mut first = Script::new(db);
    attempts_into(&mut first, db, &batch.attempts, now);
    // Runs: new ones inserted, the others' state updated, in one statement.
    for chunk in batch.runs.chunks(ROWS_PER_STATEMENT / 13) {
        first.statement(&format!(
            "insert into run ({RUN_COLUMNS}, steps) values {} on conflict (run_id) do update set \
             status = excluded.status, at_node = excluded.at_node, wake_at = excluded.wake_at, \
             state = excluded.state, updated_at = excluded.updated_at, ended_at = excluded.ended_at",
            values(db, chunk.len(), 13)
        ));
        for r in chunk {
            let ended = r.status.is_final().then_some(now);
            first
                .bind(Id(&r.run_id))
                .bind(Id(&r.workflow_id))
                .bind(r.version)
                .bind(r.customer_id.as_str())
                .bind(r.status.as_str())
                .bind(r.at_node.as_deref())
                .bind(r.wake_at)
                .bind(r.state.as_str())
                .bind(Id(&r.trigger_event_id))
                .bind(r.started_at)
                .bind(now)
                .bind(ended)
                .bind(inline.get(r.run_id.as_str()).map(String::as_str));
        }
    }
    for chunk in steps.chunks(ROWS_PER_STATEMENT / 6) {
        first.statement(&format!(
            "insert into run_step (run_id, seq, node, outcome, detail, at) values {} \
             on conflict (run_id, seq) do nothing",
            values(db, chunk.len(), 6)
        ));
        for s in chunk {
            first
                .bind(Id(&s.run_id))
                .bind(s.seq)
                .bind(s.node.as_str())
                .bind(s.outcome.as_str())
                .bind(s.detail.as_deref())
                .bind(s.at);
        }
    }
    for chunk in entries.chunks(ROWS_PER_STATEMENT / 3) {
        first.statement(&format!(
            "insert into workflow_entry (workflow_id, customer_id, last_entered_at) values {} \
             on conflict (workflow_id, customer_id) do update set last_entered_at = excluded.last_entered_at",
            values(db, chunk.len(), 3)
        ));
        for ((workflow_id, customer_id), at) in chunk {
            first.bind(Id(workflow_id)).bind(*customer_id).bind(*at);
        }
    }
    first.run(tx).await?;
    // Actions: the keys the ledger did not hold yet are performed now.
    let mut performed: std::collections::HashSet<String> = std::collections::HashSet::new();
    crate::with_tx!(tx, tx => {
        for chunk in batch.actions.chunks(ROWS_PER_STATEMENT / 11) {
            let sql = format!(
                "insert into action (action_key, run_id, workflow_id, node, kind, payload, status, attempts, \
                 next_attempt_at, created_at, updated_at) values {} \
                 on conflict (action_key) do nothing returning action_key",
                values(db, chunk.len(), 11)
            );
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for a in chunk {
                let webhook = matches!(a.effect, Effect::Webhook);
                q = q
                    .bind(&a.action_key)
                    .bind(Id(&a.run_id))
                    .bind(Id(&a.workflow_id))
                    .bind(&a.node)
                    .bind(a.kind)
                    .bind(&a.payload)
                    .bind(if webhook { ActionStatus::Pending } else { ActionStatus::Done }.as_str())
                    .bind(0_i64)
                    .bind(webhook.then_some(now + batch.webhook_lease_ms.unwrap_or(0)))
                    .bind(now)
                    .bind(now);
            }
            performed.extend(q.fetch_all(&mut *tx).await?);
        }
    });
    let fresh: Vec<&ActionWrite> = batch.actions.iter().filter(|a| performed.contains(&a.action_key)).collect();
    let mut offers: Vec<&ActionWrite> = Vec::new();
    let mut alerts: Vec<&ActionWrite> = Vec::new();
    for a in &fresh {
        out.performed.push(a.action_key.clone());
        let counted = match a.effect {
            Effect::Offer { .. } => metric::OFFERS_ISSUED,
            Effect::Alert { .. } => metric::ALERTS_RAISED,
            Effect::Profile { .. } => metric::PROFILE_UPDATES,
            Effect::Webhook => metric::WEBHOOKS,
        };
        tally.add_both(counted, &a.workflow_id, "", now);
        if let Some(arrived) = a.caused_at {
            let bucket = super::rollups::latency_bucket(now - arrived).to_string();
            tally.add_both(metric::LATENCY, &a.workflow_id, &bucket, now);
        }
        match &a.effect {
            Effect::Offer { .. } => offers.push(a),
            Effect::Alert { .. } => alerts.push(a),
            // Written whole below, from the engine's view of the profile.
            Effect::Profile { .. } => {}
            Effect::Webhook => out.webhooks += 1,
        }
    }
    let mut then = Script::new(db);
    // Profiles a workflow changed: written as the engine left them (one
    // writer owns the customers, so nothing else changed them meanwhile).
    for chunk in batch.profiles.chunks(ROWS_PER_STATEMENT / 5) {
        then.statement(&format!(
            "insert into customer (customer_id, attributes, first_seen_at, last_seen_at, event_count) \
             values {} on conflict (customer_id) do update set attributes = excluded.attributes",
            values(db, chunk.len(), 5)
        ));
        for (id, attributes) in chunk {
            then.bind(id.as_str()).bind(attributes.as_str()).bind(now).bind(now).bind(0_i64);
        }
    }
    for chunk in offers.chunks(ROWS_PER_STATEMENT / 9) {
        then.statement(&format!(
            "insert into offer (code, action_key, workflow_id, run_id, customer_id, discount, value, \
             expires_at, created_at) values {}",
            values(db, chunk.len(), 9)
        ));
        for a in chunk {
            if let Effect::Offer { code, discount, value, expires_at } = &a.effect {
                then.bind(code.as_str())
                    .bind(a.action_key.as_str())
                    .bind(Id(&a.workflow_id))
                    .bind(Id(&a.run_id))
                    .bind(a.customer_id.as_str())
                    .bind(discount.as_str())
                    .bind(*value)
                    .bind(*expires_at)
                    .bind(now);
            }
        }
    }
    for chunk in alerts.chunks(ROWS_PER_STATEMENT / 10) {
        then.statement(&format!(
            "insert into alert (alert_id, action_key, workflow_id, run_id, customer_id, severity, \
             audience, message, status, created_at) values {}",
            values(db, chunk.len(), 10)
        ));
        for a in chunk {
            if let Effect::Alert { alert_id, severity, audience, message } = &a.effect {
                then.bind(Id(alert_id))
                    .bind(a.action_key.as_str())
                    .bind(Id(&a.workflow_id))
                    .bind(Id(&a.run_id))
                    .bind(a.customer_id.as_str())
                    .bind(severity.as_str())
                    .bind(audience.as_str())
                    .bind(message.as_str())
                    .bind(crate::workflow::status::AlertStatus::Open.as_str())
                    .bind(now);
            }
        }
    }
    if !batch.redemptions.is_empty() {
        // Their outcome is read: what went before is written first.
        std::mem::replace(&mut then, Script::new(db)).run(tx).await?;
        crate::with_tx!(tx, tx => {
            for (code, by) in &batch.redemptions {
                // The core decided; the guard only keeps a code from being
                // redeemed twice in one group.
                let sql = format!(
                    "update offer set redeemed_at = $1, redeemed_by = $2 where code = $3 and redeemed_at is null \
                     returning {}",
                    super::offers::OFFER_COLUMNS
                );
                let redeemed: Option<super::offers::OfferRow> =
                    sqlx::query_as(&sql).bind(now).bind(by).bind(code).fetch_optional(&mut *tx).await?;
                if let Some(offer) = redeemed {
                    tally.add_both(metric::OFFERS_REDEEMED, &offer.workflow_id, "", now);
                    out.redeemed.push(offer.to_offer(now));
                }
            }
        });
    }
    let p = |i| super::param(db, i);
    let fail = format!(
        "update run set status = 'failed', wake_at = null, updated_at = {}, ended_at = {} where run_id = {}",
        p(1),
        p(2),
        p(3)
    );
    for (run_id, why) in &batch.broken {
        tracing::error!(run = %run_id, reason = %why, "A due run cannot advance; it is marked failed.");
        then.statement(&fail).bind(now).bind(now).bind(Id(run_id));
    }
    for chunk in batch.events_done.chunks(ROWS_PER_STATEMENT) {
        then.statement(&format!("delete from work_item where event_id in {}", values(db, 1, chunk.len())));
        for event_id in chunk {
            then.bind(Id(event_id));
        }
    }
    out.tally = tally;
    out.tally.script(db, &mut then);
    then.run(tx).await?;
    Ok(out)
}

/// Bind parameters one statement takes at most (well under SQLite's 32,766
/// and Postgres' 65,535).
const ROWS_PER_STATEMENT: usize = 3000;

/// One step kept inline in its run's row: node, outcome, detail, and the
/// milliseconds after the run started.
type InlineStep = (String, String, Option<String>, i64);
/// The same, borrowed from the batch to be written.
type InlineStepRef<'a> = (&'a str, &'a str, Option<&'a str>, i64);

/// Splits the batch's steps: those of runs it starts, as each such run's
/// inline JSON (`run.steps`, written with the run's first row), and the
/// steps of runs started earlier, for `run_step`.
fn inline_steps(batch: &Batch) -> (HashMap<&str, String>, Vec<&StepWrite>) {
    let started: HashMap<&str, i64> =
        batch.runs.iter().filter(|r| r.new).map(|r| (r.run_id.as_str(), r.started_at)).collect();
    let mut trace: HashMap<&str, Vec<InlineStepRef<'_>>> = HashMap::new();
    let mut rest = Vec::new();
    for s in &batch.steps {
        match started.get(s.run_id.as_str()) {
            Some(started) => trace.entry(s.run_id.as_str()).or_default().push((
                &s.node,
                &s.outcome,
                s.detail.as_deref(),
                s.at - started,
            )),
            None => rest.push(s),
        }
    }
    let inline = trace
        .into_iter()
        .filter_map(|(run, steps)| serde_json::to_string(&steps).ok().map(|json| (run, json)))
        .collect();
    (inline, rest)
}

/// A run's inline steps (see `inline_steps`) as trace steps numbered from 1:
/// they come before any step stored in `run_step`.
fn parse_inline(steps: Option<&str>, started_at: i64) -> Vec<crate::model::RunStep> {
    let Some(json) = steps else { return Vec::new() };
    let parsed: Vec<InlineStep> = serde_json::from_str(json).unwrap_or_else(|err| {
        tracing::warn!(error = %err, "A run's inline steps cannot be read.");
        Vec::new()
    });
    parsed
        .into_iter()
        .enumerate()
        .map(|(i, (node, outcome, detail, after))| crate::model::RunStep {
            seq: i as i64 + 1,
            node,
            outcome,
            detail,
            at: started_at + after,
        })
        .collect()
}

/// A webhook action leased for an attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingAction {
    pub action_key: String,
    #[sqlx(try_from = "IdText")]
    pub run_id: String,
    pub payload: String,
    pub attempts: i64,
}

/// Leases up to `limit` due webhook actions until `lease_until`, in one
/// statement: no transaction that reads and then upgrades to a write (SQLite
/// answers such an upgrade with "database is locked" at once whenever another
/// connection committed in between, without waiting), and on Postgres rows
/// another node is leasing are skipped rather than waited for or leased twice.
pub async fn lease_due_actions(db: &Db, now: i64, lease_until: i64, limit: i64) -> sqlx::Result<Vec<PendingAction>> {
    let sql = match db {
        Db::Sqlite(_) => {
            "update action set next_attempt_at = $1 where action_key in \
             (select action_key from action where status = 'pending' and next_attempt_at <= $2 \
              order by next_attempt_at limit $3) \
             returning action_key, run_id, payload, attempts"
        }
        Db::Postgres(_) => {
            "update action set next_attempt_at = $1 where action_key in \
             (select action_key from action where status = 'pending' and next_attempt_at <= $2 \
              order by next_attempt_at limit $3 for update skip locked) \
             returning action_key, run_id, payload, attempts"
        }
    };
    with_pool!(db, p => sqlx::query_as(sql).bind(lease_until).bind(now).bind(limit).fetch_all(p).await)
}

/// One webhook attempt as the delivery worker reports it: the action
/// `done`, `failed`, or `pending` again at `next_attempt_at`.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub action_key: String,
    pub attempts: i64,
    pub status: ActionStatus,
    pub error: Option<String>,
    pub next_attempt_at: Option<i64>,
}

/// Records `attempts` in their own transaction (the engine writes them with
/// a group when it can: see `write`).
pub async fn record_attempts(db: &Db, attempts: &[Attempt], now: i64) -> sqlx::Result<()> {
    let mut tx = super::group::Tx::begin(db).await?;
    let mut script = super::group::Script::new(db);
    attempts_into(&mut script, db, attempts, now);
    script.run(&mut tx).await?;
    tx.commit().await
}

/// Adds the statements recording `attempts`, many to a statement.
fn attempts_into<'q>(script: &mut super::group::Script<'q>, db: &Db, attempts: &'q [Attempt], now: i64) {
    for chunk in attempts.chunks(ROWS_PER_STATEMENT / 6) {
        // A VALUES list's columns are column1, column2, … on both backends.
        script.statement(&format!(
            "update action set status = v.column2, attempts = v.column3, last_error = v.column4, \
             next_attempt_at = v.column5, updated_at = v.column6 from (values {}) as v \
             where action.action_key = v.column1",
            super::events::values(db, chunk.len(), 6)
        ));
        for a in chunk {
            script
                .bind(a.action_key.as_str())
                .bind(a.status.as_str())
                .bind(a.attempts)
                .bind(a.error.as_deref())
                .bind(a.next_attempt_at)
                .bind(now);
        }
    }
}

/// When the next webhook attempt is due, if any.
pub async fn next_attempt(db: &Db) -> sqlx::Result<Option<i64>> {
    let sql = "select min(next_attempt_at) from action where status = 'pending'";
    with_pool!(db, p => sqlx::query_scalar::<_, Option<i64>>(sql).fetch_one(p).await)
}

impl RunRow {
    /// The status as the core names it; a value no code writes reads as failed, to be seen.
    pub fn status(&self) -> crate::workflow::eval::RunStatus {
        self.status.parse().unwrap_or(crate::workflow::eval::RunStatus::Failed)
    }

    pub fn to_run(&self) -> crate::model::Run {
        crate::model::Run {
            run_id: self.run_id.clone(),
            workflow_id: self.workflow_id.clone(),
            version: self.version,
            customer_id: self.customer_id.clone(),
            status: self.status(),
            at_node: self.at_node.clone(),
            wake_at: self.wake_at,
            trigger_event_id: self.trigger_event_id.clone(),
            started_at: self.started_at,
            updated_at: self.updated_at,
            ended_at: self.ended_at,
            workflow_name: None,
            waiting_for: None,
            action_health: ActionHealth::default(),
        }
    }
}

enum Arg {
    Id(String),
    Text(String),
    Int(i64),
}

/// Which runs a listing shows; `None` fields do not filter.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunQuery<'a> {
    pub workflow_id: Option<&'a str>,
    pub status: Option<&'a str>,
    pub customer_id: Option<&'a str>,
    /// Only runs with a webhook in this state.
    pub actions: Option<ActionsFilter>,
}

/// The runs filter on their actions (`actions=` in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionsFilter {
    /// A webhook failed for good, or failed an attempt and is retrying.
    Failing,
    /// A webhook not delivered yet (retrying ones included).
    Pending,
}

impl ActionsFilter {
    pub const NAMES: [&'static str; 2] = ["failing", "pending"];

    pub fn parse(name: &str) -> Option<ActionsFilter> {
        match name {
            "failing" => Some(ActionsFilter::Failing),
            "pending" => Some(ActionsFilter::Pending),
            _ => None,
        }
    }
}

/// Runs newest first, filtered as `query` says, before `cursor`.
pub async fn list(db: &Db, query: &RunQuery<'_>, cursor: Option<&str>, limit: i64) -> sqlx::Result<Vec<RunRow>> {
    let mut clauses = Vec::new();
    let mut args = Vec::new();
    let mut push = |clause: &str, arg: Option<Arg>| {
        if let Some(arg) = arg {
            args.push(arg);
        }
        clauses.push(clause.replace('?', &format!("${}", args.len())));
    };
    if let Some(w) = query.workflow_id {
        push("workflow_id = ?", Some(Arg::Id(w.to_string())));
    }
    if let Some(s) = query.status {
        push("status = ?", Some(Arg::Text(s.to_string())));
    }
    if let Some(c) = query.customer_id {
        push("customer_id = ?", Some(Arg::Text(c.to_string())));
    }
    // `status <> 'done'` first: it is the partial index `action_undone`'s
    // condition, which lets both databases read only the undone actions.
    let failed = ActionStatus::Failed.as_str();
    let pending = ActionStatus::Pending.as_str();
    match query.actions {
        Some(ActionsFilter::Failing) => push(
            &format!(
                "run_id in (select a.run_id from action a where a.status <> 'done' \
                 and (a.status = '{failed}' or a.last_error is not null))"
            ),
            None,
        ),
        Some(ActionsFilter::Pending) => push(
            &format!("run_id in (select a.run_id from action a where a.status <> 'done' and a.status = '{pending}')"),
            None,
        ),
        None => {}
    }
    if let Some(c) = cursor {
        push("run_id < ?", Some(Arg::Id(c.to_string())));
    }
    args.push(Arg::Int(limit));
    let where_sql = if clauses.is_empty() { String::new() } else { format!("where {}", clauses.join(" and ")) };
    let sql = format!("select {RUN_COLUMNS} from run {where_sql} order by run_id desc limit ${}", args.len());
    with_pool!(db, p => {
        let mut q = sqlx::query_as::<_, RunRow>(&sql);
        for a in &args {
            q = match a {
                Arg::Id(s) => q.bind(Id(s)),
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q.fetch_all(p).await
    })
}

/// The undone webhooks of these runs, per run (runs with none are absent).
pub async fn action_health(db: &Db, run_ids: &[String]) -> sqlx::Result<HashMap<String, ActionHealth>> {
    let mut out: HashMap<String, ActionHealth> = HashMap::new();
    for chunk in run_ids.chunks(ROWS_PER_STATEMENT) {
        if chunk.is_empty() {
            continue;
        }
        let sql = format!(
            "select run_id, status, last_error is not null, count(*) from action \
             where run_id in ({}) and status <> 'done' group by run_id, status, last_error is not null",
            super::params(db, 1, chunk.len())
        );
        let rows: Vec<(IdText, String, bool, i64)> = with_pool!(db, p => {
            let mut q = sqlx::query_as(&sql);
            for id in chunk {
                q = q.bind(Id(id));
            }
            q.fetch_all(p).await
        })?;
        for (IdText(run_id), status, errored, n) in rows {
            let h = out.entry(run_id).or_default();
            match status.parse::<ActionStatus>() {
                Ok(ActionStatus::Failed) => h.failed += n,
                Ok(ActionStatus::Pending) if errored => h.retrying += n,
                Ok(ActionStatus::Pending) => h.pending += n,
                Ok(ActionStatus::Done) | Err(_) => {}
            }
        }
    }
    Ok(out)
}

/// The names of these workflows, by id.
pub async fn workflow_names(db: &Db, workflow_ids: &[String]) -> sqlx::Result<HashMap<String, String>> {
    if workflow_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "select workflow_id, name from workflow where workflow_id in ({})",
        super::params(db, 1, workflow_ids.len())
    );
    let rows: Vec<(IdText, String)> = with_pool!(db, p => {
        let mut q = sqlx::query_as(&sql);
        for id in workflow_ids {
            q = q.bind(Id(id));
        }
        q.fetch_all(p).await
    })?;
    Ok(rows.into_iter().map(|(id, name)| (id.0, name)).collect())
}

pub async fn get(db: &Db, run_id: &str) -> sqlx::Result<Option<RunRow>> {
    let sql = format!("select {RUN_COLUMNS} from run where run_id = $1");
    with_pool!(db, p => sqlx::query_as::<_, RunRow>(&sql).bind(Id(run_id)).fetch_optional(p).await)
}

/// A run's trace: its inline steps, then those stored one per row.
pub async fn steps(db: &Db, run_id: &str) -> sqlx::Result<Vec<crate::model::RunStep>> {
    let inline = "select steps, started_at from run where run_id = $1";
    let head: Option<(Option<String>, i64)> =
        with_pool!(db, p => sqlx::query_as(inline).bind(Id(run_id)).fetch_optional(p).await)?;
    let mut out = head.map(|(steps, started)| parse_inline(steps.as_deref(), started)).unwrap_or_default();
    let sql = "select seq, node, outcome, detail, at from run_step where run_id = $1 order by seq";
    let rows: Vec<(i64, String, String, Option<String>, i64)> =
        with_pool!(db, p => sqlx::query_as(sql).bind(Id(run_id)).fetch_all(p).await)?;
    out.extend(rows.into_iter().map(|(seq, node, outcome, detail, at)| crate::model::RunStep {
        seq,
        node,
        outcome,
        detail,
        at,
    }));
    Ok(out)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActionRow {
    pub action_key: String,
    #[sqlx(try_from = "IdText")]
    pub run_id: String,
    pub node: String,
    pub kind: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub updated_at: i64,
}

const ACTION_COLUMNS: &str = "action_key, run_id, node, kind, status, attempts, last_error, updated_at";

impl ActionRow {
    /// The status as the core names it; a value no code writes reads as failed, to be seen.
    pub fn status(&self) -> ActionStatus {
        self.status.parse().unwrap_or(ActionStatus::Failed)
    }

    pub fn to_action(&self) -> crate::model::RunAction {
        crate::model::RunAction {
            action_key: self.action_key.clone(),
            node: self.node.clone(),
            kind: self.kind.clone(),
            status: self.status(),
            attempts: self.attempts,
            last_error: self.last_error.clone(),
            updated_at: self.updated_at,
        }
    }
}

pub async fn actions(db: &Db, run_id: &str) -> sqlx::Result<Vec<crate::model::RunAction>> {
    let sql = format!("select {ACTION_COLUMNS} from action where run_id = $1 order by created_at, action_key");
    let rows: Vec<ActionRow> = with_pool!(db, p => sqlx::query_as(&sql).bind(Id(run_id)).fetch_all(p).await)?;
    Ok(rows.iter().map(ActionRow::to_action).collect())
}

pub async fn action(db: &Db, action_key: &str) -> sqlx::Result<Option<ActionRow>> {
    let sql = format!("select {ACTION_COLUMNS} from action where action_key = $1");
    with_pool!(db, p => sqlx::query_as(&sql).bind(action_key).fetch_optional(p).await)
}

/// Puts a failed action back in the delivery queue, due now, with a fresh
/// round of attempts; its payload (and so its idempotency key) stays. False
/// when it is not failed (any more).
pub async fn retry_action(db: &Db, action_key: &str, now: i64) -> sqlx::Result<bool> {
    let sql = "update action set status = $1, attempts = 0, next_attempt_at = $2, updated_at = $2 \
               where action_key = $3 and status = $4";
    let changed = crate::execute!(
        db,
        sqlx::query(sql)
            .bind(ActionStatus::Pending.as_str())
            .bind(now)
            .bind(action_key)
            .bind(ActionStatus::Failed.as_str())
    )?;
    Ok(changed == 1)
}

/// Runs of a workflow that passed `node` lately (among its last thousand), newest first.
pub async fn recent_at_node(db: &Db, workflow_id: &str, node: &str, limit: i64) -> sqlx::Result<Vec<RunRow>> {
    // Inline steps are `[node, outcome, …]` arrays: `["node",` cannot occur
    // inside a JSON string, where every quote is escaped.
    let inline = format!("[{},", serde_json::Value::from(node));
    let contains = match db {
        Db::Sqlite(_) => "instr(r.steps, $3) > 0",
        Db::Postgres(_) => "strpos(r.steps, $3) > 0",
    };
    let sql = format!(
        "select {RUN_COLUMNS} from run where run_id in (select r.run_id from \
         (select run_id, steps from run where workflow_id = $1 order by run_id desc limit 1000) r \
         where {contains} or exists (select 1 from run_step s where s.run_id = r.run_id and s.node = $2)) \
         order by run_id desc limit $4"
    );
    with_pool!(db, p => sqlx::query_as::<_, RunRow>(&sql)
        .bind(Id(workflow_id)).bind(node).bind(&inline).bind(limit).fetch_all(p).await)
}

/// A run `end_waiting` ended, for the live feed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EndedRun {
    #[sqlx(try_from = "IdText")]
    pub run_id: String,
    pub version: i64,
    pub customer_id: String,
    pub at_node: Option<String>,
    #[sqlx(try_from = "IdText")]
    pub trigger_event_id: String,
    pub started_at: i64,
}

/// Ends every run of `workflow_id` still waiting as the core's `ending` says,
/// each with a last trace step at `seq`, inside the caller's transaction: two
/// set-based statements, however many runs wait. Returns the runs it ended.
pub async fn end_waiting(
    tx: &mut super::group::Tx<'_>,
    workflow_id: &str,
    ending: &crate::workflow::eval::Ending,
    seq: i64,
    now: i64,
) -> sqlx::Result<Vec<EndedRun>> {
    let step = "insert into run_step (run_id, seq, node, outcome, detail, at) \
                select run_id, $1, coalesce(at_node, ''), $2, $3, $4 from run where workflow_id = $5 and status = 'waiting'";
    let end = "update run set status = $1, wake_at = null, updated_at = $2, ended_at = $2 \
               where workflow_id = $3 and status = 'waiting' \
               returning run_id, version, customer_id, at_node, trigger_event_id, started_at";
    crate::with_tx!(tx, tx => {
        sqlx::query(step)
            .bind(seq).bind(ending.outcome).bind(&ending.detail).bind(now).bind(Id(workflow_id))
            .execute(&mut *tx).await?;
        sqlx::query_as::<_, EndedRun>(end)
            .bind(ending.status.as_str()).bind(now).bind(Id(workflow_id))
            .fetch_all(&mut *tx).await
    })
}
