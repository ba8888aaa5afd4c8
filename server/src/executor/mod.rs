//! The executor: runs every published workflow against each accepted event,
//! and fires due timers. It reads the queue of events the ingest writer
//! committed (`work_item`), evaluates with the pure core
//! (`app::workflow::eval`), and commits run states, step traces, actions and
//! their effects together with the events' removal from the queue — so a crash
//! at any point replays the batch, and action keys make the replay a no-op.

pub mod delivery;

use anyhow::Context as _;
use app::service::Ctx;
use app::store::events::EventRow;
use app::store::offers::OfferRow;
use app::store::rollups::metric;
use app::store::runs::{self, ActionWrite, Batch, Committed, Effect, RunRow, RunWrite, StepWrite};
use app::store::{now_ms, uuid_v7_floor};
use app::workflow::describe;
use app::workflow::eval::{self, Action, Context, EventData, Input, RunState, Step};
use app::workflow::rules::Operand;
use app::workflow::status::WEBHOOK_KIND;
use app::workflow::Workflow;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Where the executor reads the time: the system clock, or a test's hand.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> i64;
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        now_ms()
    }
}

/// A clock tests move by hand, so waits of hours pass in milliseconds.
#[derive(Debug, Default)]
pub struct ManualClock(pub AtomicI64);

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl ManualClock {
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

/// How far back a customer's offers are looked at for codes an event carries:
/// older codes expired long ago (offers are valid for days, not months).
const OFFER_LOOKBACK_MS: i64 = 90 * 24 * 3_600_000;

/// Events per batch: one transaction, so one fsync, for all of them.
const BATCH: i64 = 256;
/// Customers looked up per query (bind parameters stay well under both drivers' limits).
const LOOKUP_CHUNK: usize = 500;

/// A customer as the executor evaluates against: the profile, parsed.
#[derive(Debug)]
struct Known {
    profile: Value,
    last_seen_at: i64,
}

/// The batch's customers' events that count and sum conditions look at, read
/// once per batch: (customer, event name) → (event id, payload), for events
/// since `covers[name]` (a UUID v7 floor). An operand whose window reaches
/// further back (a pinned old version's) is read on its own.
#[derive(Debug, Default)]
struct Windows {
    covers: HashMap<String, String>,
    events: HashMap<(String, String), Vec<(String, String)>>,
}

impl Windows {
    /// The payloads of `customer`'s events named `event` since `since`, if read.
    fn get(&self, customer: &str, event: &str, since: &str) -> Option<Vec<&str>> {
        let floor = self.covers.get(event)?;
        if floor.as_str() > since {
            return None;
        }
        let key = (customer.to_string(), event.to_string());
        Some(
            self.events
                .get(&key)
                .map(|list| list.iter().filter(|(id, _)| id.as_str() >= since).map(|(_, p)| p.as_str()).collect())
                .unwrap_or_default(),
        )
    }
}

/// A published workflow version, parsed once.
#[derive(Debug, Clone)]
struct Version {
    workflow_id: String,
    version: i64,
    workflow: Arc<Workflow>,
    active: bool,
}

/// A run being worked on in this batch.
#[derive(Debug, Clone)]
struct Live {
    state: RunState,
    version: i64,
    customer: String,
    trigger_event_id: String,
    started_at: i64,
    new: bool,
    /// Changed in this batch (a step, or an event kept in its inbox).
    dirty: bool,
}

pub struct Executor {
    ctx: Ctx,
    clock: Arc<dyn Clock>,
    /// Versions that start runs or hold waiting ones, by workflow.
    published: Vec<Version>,
    published_at: Option<u64>,
    /// Definitions of older versions that waiting runs are pinned to.
    pinned: HashMap<(String, i64), Arc<Workflow>>,
    sources: HashMap<String, String>,
    /// Event names the published versions count or sum over, with the
    /// longest window (hours) any of them looks back.
    windows: HashMap<String, u32>,
    /// Step numbers: increasing across the process's life.
    seq: i64,
    metrics: Option<Arc<crate::http::metrics::Metrics>>,
}

impl Executor {
    pub fn new(ctx: Ctx, clock: Arc<dyn Clock>) -> Self {
        let seq = now_ms() * 1000;
        Executor {
            ctx,
            clock,
            published: Vec::new(),
            published_at: None,
            pinned: HashMap::new(),
            sources: HashMap::new(),
            windows: HashMap::new(),
            seq,
            metrics: None,
        }
    }

    /// Counts events, runs, actions and event-to-commit times into `/metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::http::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Runs until the process ends: drains the queue, fires due timers, and
    /// sleeps until new events, a workflow change, or the next timer.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(mut self) {
        loop {
            match self.tick().await {
                Ok(done) if done > 0 => continue,
                Ok(_) => {}
                Err(err) => {
                    tracing::error!(error = format!("{err:#}"), "Executor step failed; retrying in a second.");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
            let wait = match runs::next_due(&self.ctx.work).await {
                Ok(Some(due)) => Duration::from_millis((due - self.clock.now()).clamp(10, 1000) as u64),
                _ => Duration::from_secs(1),
            };
            let _ = tokio::time::timeout(wait, self.ctx.signals.work.notified()).await;
        }
    }

    /// One round: a batch of queued events, then a batch of due timers.
    /// Returns how many events and timers it handled.
    pub async fn tick(&mut self) -> anyhow::Result<usize> {
        self.refresh().await?;
        let events = runs::queued_events(&self.ctx.work, BATCH).await.context("Reading the event queue.")?;
        let mut done = events.len();
        if !events.is_empty() {
            self.run_events(events).await?;
        }
        let due = runs::due_runs(&self.ctx.work, self.clock.now(), BATCH).await.context("Reading due timers.")?;
        done += due.len();
        if !due.is_empty() {
            self.run_timers(due).await?;
        }
        Ok(done)
    }

    /// Runs `tick` until nothing is left (tests and start-up catch-up).
    pub async fn drain(&mut self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let n = self.tick().await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    async fn refresh(&mut self) -> anyhow::Result<()> {
        let seen = self.ctx.signals.workflows.load(Ordering::Relaxed);
        if self.published_at == Some(seen) {
            return Ok(());
        }
        let rows = runs::published_versions(&self.ctx.work).await.context("Loading published workflows.")?;
        let mut published = Vec::with_capacity(rows.len());
        for row in rows {
            match serde_json::from_str::<Workflow>(&row.definition) {
                Ok(w) => published.push(Version {
                    workflow_id: row.workflow_id,
                    version: row.version,
                    workflow: Arc::new(w),
                    active: row.status == "active",
                }),
                Err(err) => {
                    tracing::error!(workflow = %row.workflow_id, error = %err, "A published version cannot be read.")
                }
            }
        }
        self.windows.clear();
        for v in &published {
            for operand in v.workflow.aggregates() {
                if let Operand::CountInWindow { event, hours } | Operand::SumInWindow { event, hours, .. } = operand {
                    let longest = self.windows.entry(event).or_insert(0);
                    *longest = (*longest).max(hours);
                }
            }
        }
        self.published = published;
        self.published_at = Some(seen);
        self.sources = app::store::sources::list(&self.ctx.work, None, 10_000)
            .await
            .context("Loading sources.")?
            .into_iter()
            .map(|s| (s.source_id, s.slug))
            .collect();
        Ok(())
    }

    async fn definition(&mut self, workflow_id: &str, version: i64) -> anyhow::Result<Option<Arc<Workflow>>> {
        if let Some(v) = self.published.iter().find(|v| v.workflow_id == workflow_id && v.version == version) {
            return Ok(Some(v.workflow.clone()));
        }
        let key = (workflow_id.to_string(), version);
        if let Some(w) = self.pinned.get(&key) {
            return Ok(Some(w.clone()));
        }
        let Some(text) = runs::version_definition(&self.ctx.work, workflow_id, version).await? else { return Ok(None) };
        let w = Arc::new(serde_json::from_str::<Workflow>(&text).context("A pinned version cannot be read.")?);
        self.pinned.insert(key, w.clone());
        Ok(Some(w))
    }

    /// A version's definition if this executor holds it already (no query).
    fn known(&self, workflow_id: &str, version: i64) -> Option<&Workflow> {
        self.published
            .iter()
            .find(|v| v.workflow_id == workflow_id && v.version == version)
            .map(|v| v.workflow.as_ref())
            .or_else(|| self.pinned.get(&(workflow_id.to_string(), version)).map(Arc::as_ref))
    }

    /// Whether runs of this workflow may advance now (not paused or archived).
    fn advancing(&self, workflow_id: &str) -> bool {
        self.published.iter().any(|v| v.workflow_id == workflow_id && v.active)
    }

    fn event_data(&mut self, e: &EventRow) -> anyhow::Result<EventData> {
        let source = match self.sources.get(&e.source_id) {
            Some(slug) => slug.clone(),
            None => e.source_id.clone(),
        };
        Ok(EventData {
            id: e.event_id.clone(),
            name: e.name.clone(),
            source,
            customer: e.customer_id.clone(),
            at: e.occurred_at,
            payload: serde_json::from_str(&e.payload).context("An event's payload is not JSON.")?,
        })
    }

    /// The customers of `ids`, read and their profiles parsed once per batch.
    async fn customers(&self, mut ids: Vec<String>) -> anyhow::Result<HashMap<String, Known>> {
        ids.sort();
        ids.dedup();
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            for c in app::store::events::customers(&self.ctx.work, chunk).await? {
                let profile = serde_json::from_str::<Value>(&c.attributes).unwrap_or_else(|_| serde_json::json!({}));
                out.insert(c.customer_id, Known { profile, last_seen_at: c.last_seen_at });
            }
        }
        Ok(out)
    }

    /// The evaluation context for one workflow; `known` is the customer as
    /// read for the batch.
    async fn context(
        &self,
        known: Option<&Known>,
        windows: &Windows,
        customer: &str,
        workflow: &Workflow,
        now: i64,
    ) -> anyhow::Result<Context> {
        let profile = known.map_or_else(|| serde_json::json!({}), |k| k.profile.clone());
        let mut aggregates = Vec::new();
        for operand in workflow.aggregates() {
            let value = match &operand {
                Operand::LastSeen => known.map(|k| Value::from(k.last_seen_at)),
                Operand::CountInWindow { event, hours } => {
                    let since = uuid_v7_floor(now - i64::from(*hours) * 3_600_000);
                    let n = match windows.get(customer, event, &since) {
                        Some(payloads) => payloads.len(),
                        None => runs::customer_events_since(&self.ctx.work, customer, event, &since).await?.len(),
                    };
                    Some(Value::from(n))
                }
                Operand::SumInWindow { event, path, hours } => {
                    let since = uuid_v7_floor(now - i64::from(*hours) * 3_600_000);
                    let path = app::ingest::mapping::Path::parse(path).ok();
                    let read;
                    let payloads = match windows.get(customer, event, &since) {
                        Some(p) => p,
                        None => {
                            read = runs::customer_events_since(&self.ctx.work, customer, event, &since).await?;
                            read.iter().map(String::as_str).collect()
                        }
                    };
                    let mut sum = 0.0;
                    for payload in payloads {
                        let value: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
                        let field = path.as_ref().and_then(|p| p.get(&value));
                        sum += match field {
                            Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
                            Some(Value::String(s)) => s.trim().parse().unwrap_or(0.0),
                            _ => 0.0,
                        };
                    }
                    Some(Value::from(sum))
                }
                Operand::Event { .. } | Operand::Profile { .. } => None,
            };
            if let Some(v) = value {
                aggregates.push((operand, v));
            }
        }
        Ok(Context { profile, aggregates, now, seed: seed() })
    }

    /// What the published versions' count and sum conditions need of these
    /// customers' events, one query per event name counted.
    async fn windows(&self, customers: &[String], now: i64) -> anyhow::Result<Windows> {
        let mut out = Windows::default();
        for (event, hours) in &self.windows {
            let since = uuid_v7_floor(now - i64::from(*hours) * 3_600_000);
            for chunk in customers.chunks(LOOKUP_CHUNK) {
                for (customer, id, payload) in
                    runs::customers_events_since(&self.ctx.work, chunk, event, &since).await?
                {
                    out.events.entry((customer, event.clone())).or_default().push((id, payload));
                }
            }
            out.covers.insert(event.clone(), since);
        }
        Ok(out)
    }

    async fn run_events(&mut self, events: Vec<EventRow>) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let now = self.clock.now();
        let mut batch = Batch::default();
        // Runs touched in this batch, so a later event of the same customer sees them.
        let mut live: HashMap<String, Live> = HashMap::new();
        // What the batch's customers are, wait for and last entered: three kinds
        // of query per batch rather than per event (each is a round trip).
        let mut ids: Vec<String> = events.iter().map(|e| e.customer_id.clone()).collect();
        ids.sort();
        ids.dedup();
        let customers = self.customers(ids.clone()).await?;
        let windows = self.windows(&ids, now).await?;
        // Workflows runs may start in (cloned once: recording a step borrows self).
        let active: Vec<Version> = self.published.iter().filter(|v| v.active).cloned().collect();
        let active_ids: Vec<String> = active.iter().map(|v| v.workflow_id.clone()).collect();
        let mut waiting_of: HashMap<String, Vec<RunRow>> = HashMap::new();
        let mut entered: HashMap<(String, String), i64> = HashMap::new();
        let mut offers_of: HashMap<String, Vec<OfferRow>> = HashMap::new();
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            for o in
                app::store::offers::recent_of_customers(&self.ctx.work, chunk, now_ms() - OFFER_LOOKBACK_MS).await?
            {
                offers_of.entry(o.customer_id.clone()).or_default().push(o);
            }
            for r in runs::waiting_runs_of_many(&self.ctx.work, chunk).await? {
                waiting_of.entry(r.customer_id.clone()).or_default().push(r);
            }
            for (workflow_id, customer, at) in runs::last_entered_many(&self.ctx.work, &active_ids, chunk).await? {
                entered.insert((workflow_id, customer), at);
            }
        }
        let read = started.elapsed();
        for row in &events {
            batch.events_done.push(row.event_id.clone());
            let event = match self.event_data(row) {
                Ok(e) => e,
                Err(err) => {
                    tracing::warn!(event = %row.event_id, error = %err, "Event skipped by the executor.");
                    continue;
                }
            };
            let customer = customers.get(&event.customer);
            if let Some(offers) = offers_of.get_mut(&event.customer) {
                self.redeem_carried(&mut batch, offers, &event, now);
            }
            // Waiting runs of this customer, from the database and from this batch.
            for r in waiting_of.remove(&event.customer).unwrap_or_default() {
                if !live.contains_key(&r.run_id) {
                    if let Some(l) = to_live(&r) {
                        live.insert(r.run_id.clone(), l);
                    }
                }
            }
            let mut waiting: Vec<(String, i64, String)> = live
                .iter()
                .filter(|(_, l)| l.customer == event.customer && l.state.status == eval::RunStatus::Waiting)
                .map(|(id, l)| (id.clone(), l.version, l.state.workflow_id.clone()))
                .collect();
            waiting.sort();
            for (run_id, version, workflow_id) in waiting {
                let Some(workflow) = self.definition(&workflow_id, version).await? else { continue };
                let Some(current) = live.get(&run_id).cloned() else { continue };
                if current.state.status != eval::RunStatus::Waiting {
                    continue;
                }
                let ctx = self.context(customer, &windows, &event.customer, &workflow, now).await?;
                // A paused workflow's runs keep the event for when it resumes.
                let step = if self.advancing(&workflow_id) {
                    eval::advance(&workflow, &current.state, Input::Event(&event), &ctx)
                } else {
                    eval::hold(&workflow, &current.state, &event, &ctx)
                };
                if step.state != current.state {
                    self.record(&mut batch, &mut live, current, step, now, Cause::event(row));
                }
            }
            // Runs this event starts.
            for v in &active {
                // Most workflows do not listen to most events: skip them before
                // building a context (a profile copy, aggregates).
                if !v.workflow.listens_to(&event) {
                    continue;
                }
                let ctx = self.context(customer, &windows, &event.customer, &v.workflow, now).await?;
                if !v.workflow.triggered_by(&event, &ctx) {
                    continue;
                }
                let key = (v.workflow_id.clone(), event.customer.clone());
                let last = entered.get(&key).copied();
                if !eval::may_enter(&v.workflow.settings, last, now) {
                    continue;
                }
                entered.insert(key, now);
                batch.entries.push((v.workflow_id.clone(), event.customer.clone(), now));
                let run_id = app::store::new_id();
                let step = eval::start(&v.workflow, &v.workflow_id, &run_id, event.clone(), &ctx);
                let fresh = Live {
                    state: step.state.clone(),
                    version: v.version,
                    customer: event.customer.clone(),
                    trigger_event_id: event.id.clone(),
                    started_at: now,
                    new: true,
                    dirty: true,
                };
                self.record(&mut batch, &mut live, fresh, step, now, Cause::event(row));
            }
        }
        let received: Vec<i64> = events.iter().map(|e| e.received_at).collect();
        let evaluated = started.elapsed();
        self.finish(batch, live, &received).await?;
        tracing::debug!(
            events = events.len(),
            read_us = read.as_micros() as u64,
            evaluate_us = (evaluated - read).as_micros() as u64,
            commit_us = (started.elapsed() - evaluated).as_micros() as u64,
            "Executor batch."
        );
        Ok(())
    }

    async fn run_timers(&mut self, due: Vec<RunRow>) -> anyhow::Result<()> {
        let now = self.clock.now();
        let mut batch = Batch::default();
        let mut live: HashMap<String, Live> = HashMap::new();
        let mut ids: Vec<String> = due.iter().map(|r| r.customer_id.clone()).collect();
        ids.sort();
        ids.dedup();
        let customers = self.customers(ids.clone()).await?;
        let windows = self.windows(&ids, now).await?;
        for row in due {
            if !self.advancing(&row.workflow_id) {
                continue;
            }
            let Some(current) = to_live(&row) else {
                // Unreadable: failing it keeps it from being due forever.
                batch.broken.push((row.run_id.clone(), "the run's state cannot be read".into()));
                continue;
            };
            let Some(workflow) = self.definition(&row.workflow_id, row.version).await? else {
                batch.broken.push((row.run_id.clone(), "the workflow version it runs is gone".into()));
                continue;
            };
            let ctx = self.context(customers.get(&row.customer_id), &windows, &row.customer_id, &workflow, now).await?;
            let step = eval::advance(&workflow, &current.state, Input::Timer, &ctx);
            if step.state != current.state {
                self.record(&mut batch, &mut live, current, step, now, Cause::default());
            }
        }
        self.finish(batch, live, &[]).await
    }

    /// Adds a step's outcome to the batch and the batch's view of the run.
    fn record(
        &mut self,
        batch: &mut Batch,
        live: &mut HashMap<String, Live>,
        mut run: Live,
        step: Step,
        now: i64,
        cause: Cause,
    ) {
        let run_id = step.state.run_id.clone();
        let workflow_id = step.state.workflow_id.clone();
        let at = now_ms();
        // Started by this step (a run started earlier in the batch is in `live`).
        let starting = run.new && !live.contains_key(&run_id);
        let resumed_at = (!starting).then(|| run.state.at.clone()).flatten();
        for m in step.funnel(resumed_at.as_deref()) {
            if m.entered {
                batch.tally.add(metric::NODE_ENTERED, &workflow_id, &format!("{}:{}", run.version, m.node), at, 1);
            }
            if let Some(output) = m.left_by {
                let key = format!("{}:{}:{output}", run.version, m.node);
                batch.tally.add(metric::NODE_EXIT, &workflow_id, &key, at, 1);
            }
        }
        if starting {
            batch.tally.add_both(metric::RUNS_STARTED, &workflow_id, "", at);
        }
        let ended = match step.state.status {
            eval::RunStatus::Waiting => None,
            eval::RunStatus::Completed => Some(metric::RUNS_COMPLETED),
            eval::RunStatus::Converted => Some(metric::RUNS_CONVERTED),
            eval::RunStatus::Failed => Some(metric::RUNS_FAILED),
        };
        if let Some(m) = ended.filter(|_| starting || run.state.status == eval::RunStatus::Waiting) {
            batch.tally.add_both(m, &workflow_id, "", at);
        }
        for t in step.trace {
            self.seq += 1;
            batch.steps.push(StepWrite {
                run_id: run_id.clone(),
                seq: self.seq,
                node: t.node,
                outcome: t.outcome,
                detail: t.detail,
                at: now,
            });
        }
        for action in step.actions {
            let mut write = action_write(&run_id, &step.state.workflow_id, &run.customer, action);
            write.caused_at = cause.event_received_at;
            batch.actions.push(write);
        }
        run.state = step.state;
        run.dirty = true;
        live.insert(run_id, run);
    }

    /// Redeems the customer's offer codes an event carries (an order with its
    /// coupon), once; a used or expired code is refused, and the refusal is
    /// written into the offer's run trace with the reason.
    fn redeem_carried(&mut self, batch: &mut Batch, offers: &mut [OfferRow], event: &EventData, now: i64) {
        // Nudge's own record of an API redemption was redeemed already.
        if event.source == eval::NUDGE_SOURCE {
            return;
        }
        for offer in offers.iter_mut().filter(|o| eval::carries_code(&event.payload, &o.code)) {
            let refusal = match offer.redeemed_at {
                Some(at) => Some(format!(
                    "{} carried by {} {} was already redeemed at {} by {}",
                    offer.code,
                    event.name,
                    event.id,
                    app::pages::settings::format_ms(at),
                    offer.redeemed_by.as_deref().unwrap_or("?")
                )),
                None if offer.expires_at <= now => Some(format!(
                    "{} carried by {} {} had expired at {}",
                    offer.code,
                    event.name,
                    event.id,
                    app::pages::settings::format_ms(offer.expires_at)
                )),
                None => None,
            };
            let node = offer.action_key.split_once(':').map_or("offer", |(_, n)| n).to_string();
            self.seq += 1;
            match refusal {
                Some(why) => {
                    tracing::info!(code = %offer.code, event = %event.id, reason = %why, "Offer redemption refused.");
                    batch.steps.push(StepWrite {
                        run_id: offer.run_id.clone(),
                        seq: self.seq,
                        node,
                        outcome: "redemption_refused".into(),
                        detail: Some(why),
                        at: now,
                    });
                }
                None => {
                    batch.redemptions.push((offer.code.clone(), event.id.clone()));
                    batch.steps.push(StepWrite {
                        run_id: offer.run_id.clone(),
                        seq: self.seq,
                        node,
                        outcome: "redeemed".into(),
                        detail: Some(format!("{} by {} {}", offer.code, event.name, event.id)),
                        at: now,
                    });
                    offer.redeemed_at = Some(now);
                    offer.redeemed_by = Some(format!("event {}", event.id));
                }
            }
        }
    }

    async fn finish(&mut self, mut batch: Batch, live: HashMap<String, Live>, received: &[i64]) -> anyhow::Result<()> {
        for (run_id, mut l) in live {
            // Runs read from the database but left unchanged need no write.
            if !l.new && !l.dirty {
                continue;
            }
            // The trigger event is stored once, as the event: the state leaves
            // its payload out, and `to_live` reads it back from the event.
            l.state.trigger.payload = Value::Null;
            batch.runs.push(RunWrite {
                run_id,
                workflow_id: l.state.workflow_id.clone(),
                version: l.version,
                customer_id: l.customer.clone(),
                status: l.state.status.as_str().to_string(),
                at_node: l.state.at.clone(),
                wake_at: l.state.wake_at,
                state: serde_json::to_string(&l.state).context("Serialising a run state.")?,
                trigger_event_id: l.trigger_event_id.clone(),
                started_at: l.started_at,
                new: l.new,
            });
        }
        // New runs first: steps and actions refer to them.
        batch.runs.sort_by_key(|r| !r.new);
        let turn = self.ctx.signals.write_turn(&self.ctx.work).await;
        let committed = runs::commit(&self.ctx.work, &batch).await.context("Committing an executor batch.");
        drop(turn);
        let committed = committed?;
        if committed.webhooks > 0 {
            self.ctx.signals.deliveries.notify_one();
        }
        if self.ctx.live.wanted() {
            self.announce(&batch, &committed).await;
            self.ctx.live.count(committed.tally.totals());
        }
        if let Some(m) = &self.metrics {
            let now = now_ms();
            let performed: std::collections::HashSet<&str> = committed.performed.iter().map(String::as_str).collect();
            let kinds: Vec<&str> =
                batch.actions.iter().filter(|a| performed.contains(a.action_key.as_str())).map(|a| a.kind).collect();
            let seconds: Vec<f64> = received.iter().map(|r| (now - r).max(0) as f64 / 1000.0).collect();
            let started = batch.runs.iter().filter(|r| r.new).count() as u64;
            m.observe_batch(received.len() as u64, started, &kinds, &seconds);
        }
        Ok(())
    }
}

impl Executor {
    /// Tells live subscribers what the commit did: runs as they now stand,
    /// offers issued and redeemed, alerts raised. Whole objects, so pages
    /// update without a refetch.
    async fn announce(&self, batch: &Batch, committed: &Committed) {
        let live = &self.ctx.live;
        for r in &batch.runs {
            let ended = r.status != eval::RunStatus::Waiting.as_str();
            let waiting_for = match (&r.at_node, ended) {
                (Some(node), false) => Some(describe::waiting_at(self.known(&r.workflow_id, r.version), node)),
                _ => None,
            };
            live.publish(
                "runs",
                app::model::Run {
                    run_id: r.run_id.clone(),
                    workflow_id: r.workflow_id.clone(),
                    version: r.version,
                    customer_id: r.customer_id.clone(),
                    status: r.status.clone(),
                    at_node: r.at_node.clone(),
                    wake_at: r.wake_at,
                    trigger_event_id: r.trigger_event_id.clone(),
                    started_at: r.started_at,
                    updated_at: committed.at,
                    ended_at: ended.then_some(committed.at),
                    // The name and the webhooks' health are read with the run
                    // (pages refetch on this message); the stream stays cheap.
                    workflow_name: None,
                    waiting_for,
                    action_health: Default::default(),
                },
            );
        }
        let performed: std::collections::HashSet<&str> = committed.performed.iter().map(String::as_str).collect();
        for a in batch.actions.iter().filter(|a| performed.contains(a.action_key.as_str())) {
            match &a.effect {
                Effect::Offer { code, discount, value, expires_at } => live.publish(
                    "offers",
                    app::model::Offer {
                        code: code.clone(),
                        workflow_id: a.workflow_id.clone(),
                        run_id: a.run_id.clone(),
                        customer_id: a.customer_id.clone(),
                        discount: discount.clone(),
                        value: *value,
                        expires_at: *expires_at,
                        status: "active".into(),
                        redeemed_at: None,
                        redeemed_by: None,
                        created_at: committed.at,
                    },
                ),
                Effect::Alert { alert_id, severity, audience, message } => live.publish(
                    "alerts",
                    app::model::Alert {
                        alert_id: alert_id.clone(),
                        workflow_id: a.workflow_id.clone(),
                        run_id: a.run_id.clone(),
                        customer_id: a.customer_id.clone(),
                        severity: severity.clone(),
                        audience: audience.clone(),
                        message: message.clone(),
                        status: "open".into(),
                        acknowledged_by: None,
                        acknowledged_at: None,
                        resolved_by: None,
                        resolved_at: None,
                        created_at: committed.at,
                    },
                ),
                _ => {}
            }
        }
        for code in &committed.redeemed {
            match app::store::offers::offer(&self.ctx.work, code).await {
                Ok(Some(o)) => live.publish("offers", o.to_offer(committed.at)),
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(code = %code, error = %err, "A redeemed offer could not be read to announce it.")
                }
            }
        }
    }
}

/// What made a step happen: an event (and when it arrived), or a timer.
#[derive(Debug, Default, Clone, Copy)]
struct Cause {
    event_received_at: Option<i64>,
}

impl Cause {
    fn event(row: &EventRow) -> Self {
        Cause { event_received_at: Some(row.received_at) }
    }
}

fn to_live(row: &RunRow) -> Option<Live> {
    let mut state: RunState = match serde_json::from_str(&row.state) {
        Ok(s) => s,
        Err(err) => {
            tracing::error!(run = %row.run_id, error = %err, "A run's state cannot be read.");
            return None;
        }
    };
    // States written before the payload was left out still carry it.
    if state.trigger.payload.is_null() {
        match row.trigger_payload.as_deref().map(serde_json::from_str::<Value>) {
            Some(Ok(payload)) => state.trigger.payload = payload,
            Some(Err(err)) => {
                tracing::error!(run = %row.run_id, error = %err, "A run's trigger event cannot be read.");
                return None;
            }
            None => tracing::warn!(run = %row.run_id, "A run's trigger event is gone; it goes on without its payload."),
        }
    }
    Some(Live {
        state,
        version: row.version,
        customer: row.customer_id.clone(),
        trigger_event_id: row.trigger_event_id.clone(),
        started_at: row.started_at,
        new: false,
        dirty: false,
    })
}

fn action_write(run_id: &str, workflow_id: &str, customer: &str, action: Action) -> ActionWrite {
    let payload = serde_json::to_string(&action).unwrap_or_default();
    let (kind, effect, key, node) = match action {
        Action::IssueOffer { key, node, code, discount, value, expires_at } => {
            let discount = serde_json::to_value(&discount).ok().and_then(|v| v.as_str().map(String::from));
            let effect = Effect::Offer { code, discount: discount.unwrap_or_default(), value, expires_at };
            ("issue_offer", effect, key, node)
        }
        Action::RaiseAlert { key, node, severity, audience, message } => {
            let severity = serde_json::to_value(&severity).ok().and_then(|v| v.as_str().map(String::from));
            let effect = Effect::Alert {
                alert_id: app::store::new_id(),
                severity: severity.unwrap_or_default(),
                audience,
                message,
            };
            ("raise_alert", effect, key, node)
        }
        Action::CallWebhook { key, node, .. } => (WEBHOOK_KIND, Effect::Webhook, key, node),
        Action::UpdateProfile { key, node, changes } => ("update_profile", Effect::Profile { changes }, key, node),
    };
    ActionWrite {
        action_key: key,
        run_id: run_id.to_string(),
        workflow_id: workflow_id.to_string(),
        node,
        customer_id: customer.to_string(),
        kind,
        payload,
        effect,
        caused_at: None,
    }
}

/// A fresh random seed for offer codes (122 random bits of a UUID v4, folded).
fn seed() -> u64 {
    let (a, b) = uuid::Uuid::new_v4().as_u64_pair();
    a ^ b.rotate_left(17)
}
