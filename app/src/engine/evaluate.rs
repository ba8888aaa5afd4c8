//! Evaluation of one group: the timers due at the group's acceptance time
//! first, then the group's new events in acceptance order, each through the
//! pure core, into one `Batch` of writes. What the core looks at is read
//! before the group's transaction (`Evaluator::load`); what it decides is
//! written inside it (`store::group`), so evaluation itself does no I/O.

use super::hot::{Customer, Hot};
use crate::store::events::NewEvent;
use crate::store::offers::OfferRow;
use crate::store::rollups::metric;
use crate::store::runs::{self, ActionWrite, Batch, Effect, RunRow, RunWrite, StepWrite};
use crate::store::{self, Db};
use crate::workflow::aggregate::{self, Window};
use crate::workflow::eval::{self, Action, Context, EventData, Input, RunState, Step};
use crate::workflow::offer::CodeState;
use crate::workflow::profile;
use crate::workflow::rules::Operand;
use crate::workflow::status::WEBHOOK_KIND;
use crate::workflow::Workflow;
use anyhow::Context as _;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// How far back a customer's offers are looked at for the code an event redeems:
/// older codes expired long ago (offers are valid for days, not months).
const OFFER_LOOKBACK_MS: i64 = 90 * 24 * 3_600_000;
/// Customers looked up per query (bind parameters stay well under both drivers' limits).
const LOOKUP_CHUNK: usize = 500;
/// Due timers one group fires at most; the rest fire in the next.
pub const TIMERS_PER_GROUP: i64 = 512;

/// The shape of the windows evaluation counts: for each event name some
/// count or sum condition looks at, the longest window in hours and the
/// fields summed, over every version in play. `version` moves when it
/// changes, so a cached customer's windows counted for another shape are
/// counted again from the events.
#[derive(Debug, Default, PartialEq)]
struct Counted {
    version: u64,
    events: HashMap<String, (u32, aggregate::Fields)>,
}

/// A published version, parsed once.
#[derive(Debug, Clone)]
struct Version {
    workflow_id: String,
    /// The id again, shared by every customer's last entry of this workflow.
    key: Arc<str>,
    version: i64,
    workflow: Arc<Workflow>,
    active: bool,
}

/// A run being worked on in this group.
#[derive(Debug, Clone)]
struct WorkingRun {
    state: RunState,
    version: i64,
    customer: String,
    trigger_event_id: String,
    started_at: i64,
    new: bool,
    /// Changed in this group (a step, or an event kept in its inbox).
    dirty: bool,
}

/// The runs a group has touched, by id and by customer, so an event finds
/// its customer's runs without a scan of the whole group's.
#[derive(Debug, Default)]
struct Working {
    runs: HashMap<String, WorkingRun>,
    of_customer: HashMap<String, Vec<String>>,
}

impl Working {
    fn contains_key(&self, run_id: &str) -> bool {
        self.runs.contains_key(run_id)
    }

    fn insert(&mut self, run_id: String, run: WorkingRun) {
        if !self.runs.contains_key(&run_id) {
            self.of_customer.entry(run.customer.clone()).or_default().push(run_id.clone());
        }
        self.runs.insert(run_id, run);
    }
}

/// What a group's evaluation reads: its customers (from the hot state or
/// the database, before its transaction) and the due timers.
#[derive(Debug, Default)]
pub struct Loaded {
    customers: HashMap<String, Customer>,
    /// Runs whose timer is due at the group's time.
    due: Vec<RunRow>,
    /// Events of an older version's queue to run (start-up catch-up only).
    pub(crate) queued: Vec<EventData>,
    /// Customers whose profile a workflow changed in this group.
    changed: std::collections::BTreeSet<String>,
}

impl Loaded {
    /// Whether there are timers left that this group could not take.
    pub fn timers_full(&self) -> bool {
        self.due.len() as i64 >= TIMERS_PER_GROUP
    }

    pub fn timers(&self) -> usize {
        self.due.len()
    }

    /// A customer of the group (one the group did not load starts empty).
    fn customer_mut(&mut self, customer: &str) -> &mut Customer {
        self.customers.entry(customer.to_string()).or_insert_with(|| Customer::new(0))
    }

    /// The profile updates a step made, so what follows in the group sees them
    /// (the store applies the same changes when it writes the step's actions).
    fn note_changes(&mut self, customer: &str, step: &Step) {
        for action in &step.actions {
            if let Action::UpdateProfile { changes, .. } = action {
                profile::apply_changes(&mut self.customer_mut(customer).profile, changes);
                self.changed.insert(customer.to_string());
            }
        }
    }
}

/// An event of the group as evaluation takes it: the core's view, and when
/// it was accepted.
#[derive(Debug, Clone)]
pub struct GroupEvent<'a> {
    pub data: EventData,
    pub received_at: i64,
    /// The profile attributes the source mapped from it (stored with it too;
    /// `None` for a queued event, whose attributes were merged when stored).
    pub profile: Option<&'a serde_json::Map<String, Value>>,
}

/// What a group whose commit is still under way left that the next group's
/// load must not read from the database (see `engine::Flight`): its
/// customers (their rows are not committed yet, so they must come from the
/// hot state, where that group's evaluation left them) and the payloads of
/// the events that started its waiting runs.
#[derive(Debug, Default)]
pub struct InFlight {
    pub customers: std::collections::HashSet<String>,
    pub payloads: HashMap<String, String>,
}

/// What the engine keeps between groups: the published versions, the
/// versions waiting runs are pinned to, the sources' slugs.
#[derive(Debug)]
pub struct Evaluator {
    published: Vec<Version>,
    published_at: Option<u64>,
    pinned: HashMap<(String, i64), Arc<Workflow>>,
    sources: HashMap<String, String>,
    counted: Counted,
    /// Step numbers: increasing across the process's life.
    seq: i64,
}

impl Default for Evaluator {
    fn default() -> Self {
        Evaluator {
            published: Vec::new(),
            published_at: None,
            pinned: HashMap::new(),
            sources: HashMap::new(),
            counted: Counted::default(),
            seq: store::now_ms() * 1000,
        }
    }
}

impl Evaluator {
    /// A step number no earlier step of any run has (for steps written
    /// outside evaluation, such as an archive's cancellations).
    pub fn next_seq(&mut self) -> i64 {
        self.seq += 1;
        self.seq
    }

    /// Whether the published versions loaded are those of `changes`.
    pub fn current(&self, changes: u64) -> bool {
        self.published_at == Some(changes)
    }

    /// Reloads the published versions when `changes` moved since the last load.
    pub async fn refresh(&mut self, db: &Db, changes: u64) -> anyhow::Result<()> {
        if self.published_at == Some(changes) {
            return Ok(());
        }
        let rows = runs::published_versions(db).await.context("Loading published workflows.")?;
        let mut published = Vec::with_capacity(rows.len());
        for row in rows {
            match serde_json::from_str::<Workflow>(&row.definition) {
                Ok(w) => published.push(Version {
                    key: Arc::from(row.workflow_id.as_str()),
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
        self.published = published;
        self.published_at = Some(changes);
        self.load_sources(db).await
    }

    async fn load_sources(&mut self, db: &Db) -> anyhow::Result<()> {
        self.sources = store::sources::list(db, None, 10_000)
            .await
            .context("Loading sources.")?
            .into_iter()
            .map(|s| {
                // A source made before the slug was reserved must not pass for
                // Nudge's own records: the core sees it by its id instead.
                if s.slug == eval::NUDGE_SOURCE {
                    tracing::warn!(source = %s.source_id, "A source has the reserved slug 'nudge': triggers limited to it no longer match, so it cannot pass for Nudge's own records. Create it again under another slug and delete this one.");
                    let id = s.source_id.clone();
                    (s.source_id, id)
                } else {
                    (s.source_id, s.slug)
                }
            })
            .collect();
        Ok(())
    }

    /// The core's view of a new event (its payload parsed once, at the edge).
    pub fn event_data(&self, e: &NewEvent) -> EventData {
        EventData {
            id: e.event_id.clone(),
            name: e.name.clone(),
            source: self.slug(&e.source_id),
            customer: e.customer_id.clone(),
            at: e.occurred_at,
            accepted_at: e.received_at,
            payload: e.parsed.clone(),
            offer_code: e.offer_code.clone(),
        }
    }

    fn slug(&self, source_id: &str) -> String {
        self.sources.get(source_id).cloned().unwrap_or_else(|| source_id.to_string())
    }

    /// Gathers what evaluating `events` (and `queued` ones) and, when
    /// `timers`, the timers due at `now` needs: each customer from the hot
    /// state, or for those it does not hold, a few queries for the whole
    /// group. What it takes out of `hot` goes back when the group commits;
    /// on an error the cache reads through from then on.
    #[allow(clippy::too_many_arguments)]
    pub async fn load(
        &mut self,
        db: &Db,
        hot: &mut Hot,
        events: &[&NewEvent],
        now: i64,
        queued: Vec<store::events::EventRow>,
        timers: bool,
        flight: Option<&InFlight>,
    ) -> anyhow::Result<Loaded> {
        let mut loaded = Loaded::default();
        let result = self.load_into(&mut loaded, db, hot, events, now, queued, timers, flight).await;
        match result {
            Ok(()) => Ok(loaded),
            Err(err) => {
                hot.lose();
                Err(err)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn load_into(
        &mut self,
        loaded: &mut Loaded,
        db: &Db,
        hot: &mut Hot,
        events: &[&NewEvent],
        now: i64,
        queued: Vec<store::events::EventRow>,
        timers: bool,
        flight: Option<&InFlight>,
    ) -> anyhow::Result<()> {
        // A source created since the last load: its slug is needed for triggers.
        let unknown = events.iter().map(|e| &e.source_id).chain(queued.iter().map(|e| &e.source_id));
        if unknown.into_iter().any(|s| s != eval::NUDGE_SOURCE && !self.sources.contains_key(s)) {
            self.load_sources(db).await?;
        }
        if timers {
            loaded.due = runs::due_runs(db, now, TIMERS_PER_GROUP).await.context("Reading due timers.")?;
        }
        for row in queued {
            match serde_json::from_str::<Value>(&row.payload) {
                Ok(payload) => loaded.queued.push(EventData {
                    id: row.event_id.clone(),
                    name: row.name.clone(),
                    source: self.slug(&row.source_id),
                    customer: row.customer_id.clone(),
                    at: row.occurred_at,
                    accepted_at: row.received_at,
                    payload,
                    offer_code: row.offer_code.clone(),
                }),
                Err(err) => tracing::warn!(event = %row.event_id, error = %err, "A queued event is not JSON; skipped."),
            }
        }
        let mut ids: Vec<String> = events
            .iter()
            .map(|e| e.customer_id.clone())
            .chain(loaded.queued.iter().map(|e| e.customer.clone()))
            .chain(loaded.due.iter().map(|r| r.customer_id.clone()))
            .collect();
        ids.sort();
        ids.dedup();
        let mut missing: Vec<String> = Vec::new();
        // Customers the database does not have: no events to count either.
        let mut new: Vec<String> = Vec::new();
        for id in ids {
            match hot.take(&id) {
                Some(c) => {
                    loaded.customers.insert(id, c);
                }
                None if hot.complete() => new.push(id),
                None => missing.push(id),
            }
        }
        if let Some(f) = flight {
            // Its rows are not committed yet: the caller waits for them and loads again.
            if let Some(id) = missing.iter().find(|id| f.customers.contains(*id)) {
                anyhow::bail!("customer {id} of the group still committing is not in the hot state");
            }
        }
        hot.misses += missing.len() as u64;
        for chunk in missing.chunks(LOOKUP_CHUNK) {
            let mut read: HashMap<String, Customer> = HashMap::new();
            for c in store::events::customers(db, chunk).await? {
                let profile = serde_json::from_str::<Value>(&c.attributes).unwrap_or_else(|_| serde_json::json!({}));
                let mut known = Customer::new(0);
                known.profile = profile;
                known.last_seen_at = Some(c.last_seen_at);
                read.insert(c.customer_id, known);
            }
            for id in chunk {
                if !read.contains_key(id) {
                    new.push(id.clone());
                }
            }
            for o in store::offers::recent_of_customers(db, chunk, now - OFFER_LOOKBACK_MS).await? {
                if let Some(c) = read.get_mut(&o.customer_id) {
                    c.offers.push(o);
                }
            }
            for r in runs::waiting_runs_of_many(db, chunk).await? {
                if let Some(c) = read.get_mut(&r.customer_id) {
                    c.waiting.push(r);
                }
            }
            for (workflow_id, customer, at) in runs::last_entered_of(db, chunk).await? {
                if let Some(c) = read.get_mut(&customer) {
                    let key = self.published.iter().find(|v| v.workflow_id == workflow_id).map(|v| v.key.clone());
                    c.entered.set(key.unwrap_or_else(|| Arc::from(workflow_id.as_str())), at);
                }
            }
            loaded.customers.extend(read);
        }
        // The versions the group's runs are pinned to, read once per process.
        let pins: Vec<(String, i64)> = loaded
            .customers
            .values()
            .flat_map(|c| &c.waiting)
            .map(|r| (r.workflow_id.clone(), r.version))
            .chain(loaded.due.iter().map(|r| (r.workflow_id.clone(), r.version)))
            .collect();
        for (workflow_id, version) in pins {
            if self.known(&workflow_id, version).is_none() {
                if let Some(text) = runs::version_definition(db, &workflow_id, version).await? {
                    match serde_json::from_str::<Workflow>(&text) {
                        Ok(w) => {
                            self.pinned.insert((workflow_id, version), Arc::new(w));
                        }
                        Err(err) => {
                            tracing::error!(workflow = %workflow_id, version, error = %err, "A pinned version cannot be read.")
                        }
                    }
                }
            }
        }
        self.fetch_trigger_payloads(loaded, db, events, flight).await?;
        self.count_windows();
        let shape = self.counted.version;
        for id in new {
            loaded.customers.insert(id, Customer::new(shape));
        }
        // Customers whose windows were counted for another shape (or never):
        // counted again from their events, one query per counted name.
        let stale: Vec<String> =
            loaded.customers.iter().filter(|(_, c)| c.windows_for != shape).map(|(id, _)| id.clone()).collect();
        if let Some(f) = flight {
            if let Some(id) = stale.iter().find(|id| f.customers.contains(*id)) {
                anyhow::bail!("the windows of customer {id}, of the group still committing, are to be counted again");
            }
        }
        for id in &stale {
            if let Some(c) = loaded.customers.get_mut(id) {
                c.windows.clear();
                c.windows_for = shape;
            }
        }
        for (event, (hours, paths)) in &self.counted.events {
            let since = aggregate::window_start(now, *hours);
            for chunk in stale.chunks(LOOKUP_CHUNK) {
                for (customer, received_at, payload) in runs::customers_events_since(db, chunk, event, since).await? {
                    let Some(c) = loaded.customers.get_mut(&customer) else { continue };
                    let payload = serde_json::from_str(&payload).unwrap_or(Value::Null);
                    c.windows.get_or_insert_with(event, || Window::new(paths)).add(received_at, &payload);
                }
            }
        }
        Ok(())
    }

    /// Whether a group's event can change this waiting run (see
    /// `eval::concerns`); a run of a version not loaded is looked at anyway.
    fn concerned(&self, run: &RunRow, name: &str, source: &str, at: i64) -> bool {
        self.known(&run.workflow_id, run.version).is_none_or(|w| eval::concerns(w, run.wake_at, name, source, at))
    }

    /// The hot state keeps waiting runs without their trigger event's
    /// payload (it would repeat the event in every run it started): read, in
    /// one query, the payloads of those an event of the group may advance.
    async fn fetch_trigger_payloads(
        &self,
        loaded: &mut Loaded,
        db: &Db,
        events: &[&NewEvent],
        flight: Option<&InFlight>,
    ) -> anyhow::Result<()> {
        let mut wanted: Vec<String> = Vec::new();
        let named = events
            .iter()
            .map(|e| (e.customer_id.as_str(), e.name.as_str(), self.slug(&e.source_id), e.received_at))
            .chain(
                loaded.queued.iter().map(|e| (e.customer.as_str(), e.name.as_str(), e.source.clone(), e.accepted())),
            );
        for (customer, name, source, at) in named {
            let Some(c) = loaded.customers.get(customer) else { continue };
            for r in c.waiting.iter().filter(|r| r.trigger_payload.is_none()) {
                if self.concerned(r, name, &source, at) {
                    wanted.push(r.trigger_event_id.clone());
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        wanted.sort();
        wanted.dedup();
        let mut payloads: HashMap<String, String> = HashMap::new();
        if let Some(f) = flight {
            // Events of the group still committing: not in the database yet.
            wanted.retain(|id| match f.payloads.get(id) {
                Some(p) => {
                    payloads.insert(id.clone(), p.clone());
                    false
                }
                None => true,
            });
        }
        for chunk in wanted.chunks(LOOKUP_CHUNK) {
            payloads.extend(store::events::payloads(db, chunk).await.context("Reading trigger events.")?);
        }
        for c in loaded.customers.values_mut() {
            for r in c.waiting.iter_mut().filter(|r| r.trigger_payload.is_none()) {
                r.trigger_payload = payloads.get(&r.trigger_event_id).cloned();
            }
        }
        Ok(())
    }

    /// The windows' shape over every version in play (published or pinned);
    /// its version moves when it changes.
    fn count_windows(&mut self) {
        let mut events: HashMap<String, (u32, Vec<String>)> = HashMap::new();
        for w in self.published.iter().map(|v| v.workflow.as_ref()).chain(self.pinned.values().map(Arc::as_ref)) {
            for operand in w.aggregates() {
                let (event, hours, path) = match operand {
                    Operand::CountInWindow { event, hours } => (event, hours, None),
                    Operand::SumInWindow { event, path, hours } => (event, hours, Some(path)),
                    Operand::Event { .. } | Operand::Profile { .. } | Operand::LastSeen => continue,
                };
                let (longest, paths) = events.entry(event).or_default();
                *longest = (*longest).max(hours);
                if let Some(path) = path.filter(|p| !paths.contains(p)) {
                    paths.push(path);
                }
            }
        }
        let events: HashMap<String, (u32, aggregate::Fields)> = events
            .into_iter()
            .map(|(event, (hours, mut paths))| {
                paths.sort();
                (event, (hours, aggregate::Fields::new(&paths)))
            })
            .collect();
        if events != self.counted.events {
            self.counted.events = events;
            self.counted.version += 1;
        }
    }

    /// A version's definition, if published or pinned (loaded by `load`).
    pub fn known(&self, workflow_id: &str, version: i64) -> Option<&Workflow> {
        self.published
            .iter()
            .find(|v| v.workflow_id == workflow_id && v.version == version)
            .map(|v| v.workflow.as_ref())
            .or_else(|| self.pinned.get(&(workflow_id.to_string(), version)).map(Arc::as_ref))
    }

    fn known_arc(&self, workflow_id: &str, version: i64) -> Option<Arc<Workflow>> {
        self.published
            .iter()
            .find(|v| v.workflow_id == workflow_id && v.version == version)
            .map(|v| v.workflow.clone())
            .or_else(|| self.pinned.get(&(workflow_id.to_string(), version)).cloned())
    }

    /// Whether runs of this workflow may advance now (not paused or archived).
    fn advancing(&self, workflow_id: &str) -> bool {
        self.published.iter().any(|v| v.workflow_id == workflow_id && v.active)
    }

    /// The evaluation context for one workflow at `now`.
    fn context(&self, loaded: &Loaded, customer: &str, workflow: &Workflow, now: i64) -> Context {
        let known = loaded.customers.get(customer);
        let profile = known.map_or_else(|| serde_json::json!({}), |k| k.profile.clone());
        let mut aggregates = Vec::new();
        for operand in workflow.aggregates() {
            let value = match &operand {
                Operand::LastSeen => known.and_then(|k| k.last_seen_at).map(Value::from),
                Operand::CountInWindow { event, hours } => {
                    let window = known.and_then(|k| k.windows.get(event));
                    Some(Value::from(window.map_or(0, |w| w.count(now, *hours))))
                }
                Operand::SumInWindow { event, path, hours } => {
                    let window = known.and_then(|k| k.windows.get(event));
                    Some(Value::from(window.map_or(0.0, |w| w.sum(now, *hours, path))))
                }
                Operand::Event { .. } | Operand::Profile { .. } => None,
            };
            if let Some(v) = value {
                aggregates.push((operand, v));
            }
        }
        Context { profile, aggregates, now, seed: seed() }
    }

    /// Evaluates the group: due timers at `now`, then `events` in order, each
    /// at its acceptance time. Pure CPU over what `load` read.
    pub fn evaluate(&mut self, mut loaded: Loaded, events: &[GroupEvent], now: i64) -> Evaluated {
        let mut batch = Batch::default();
        let mut working = Working::default();
        let due = std::mem::take(&mut loaded.due);
        let timers = due.len();
        for row in due {
            if !self.advancing(&row.workflow_id) {
                continue;
            }
            let Some(current) = to_working(&row) else {
                // Unreadable: failing it keeps it from being due forever.
                batch.broken.push((row.run_id.clone(), "the run's state cannot be read".into()));
                continue;
            };
            let Some(workflow) = self.known_arc(&row.workflow_id, row.version) else {
                batch.broken.push((row.run_id.clone(), "the workflow version it runs is gone".into()));
                continue;
            };
            let ctx = self.context(&loaded, &row.customer_id, &workflow, now);
            let step = eval::advance(&workflow, &current.state, Input::Timer, &ctx);
            if step.state != current.state {
                loaded.note_changes(&row.customer_id, &step);
                self.record(&mut batch, &mut working, current, step, now, None);
            }
        }
        // Workflows runs may start in (cloned once: recording a step borrows self).
        let active: Vec<Version> = self.published.iter().filter(|v| v.active).cloned().collect();
        let queued = std::mem::take(&mut loaded.queued);
        let queued: Vec<GroupEvent> =
            queued.into_iter().map(|data| GroupEvent { received_at: data.accepted(), data, profile: None }).collect();
        for event in queued.iter().chain(events) {
            if !queued.is_empty() {
                batch.events_done.push(event.data.id.clone());
            }
            self.evaluate_event(&mut batch, &mut working, &mut loaded, &active, event);
        }
        for customer in std::mem::take(&mut loaded.changed) {
            if let Some(known) = loaded.customers.get(&customer) {
                batch.profiles.push((customer, known.profile.to_string()));
            }
        }
        let runs_started = working.runs.values().filter(|w| w.new).count() as u64;
        let mut written: Vec<(RunWrite, Option<String>)> = Vec::new();
        for (run_id, w) in &working.runs {
            // Runs read from the database but left unchanged need no write.
            if !w.new && !w.dirty {
                continue;
            }
            let waiting_for = match (&w.state.at, w.state.status) {
                (Some(node), eval::RunStatus::Waiting) => {
                    Some(crate::workflow::describe::waiting_at(self.known(&w.state.workflow_id, w.version), node))
                }
                _ => None,
            };
            // A run that ended keeps no state: nothing reads it again (its
            // trace, offers, alerts and actions are rows of their own).
            let state = match w.state.status.is_final() {
                true => String::new(),
                false => match slim_state(&w.state) {
                    Ok(s) => s,
                    Err(err) => {
                        tracing::error!(run = %run_id, error = %err, "A run state cannot be serialised; the run fails.");
                        batch.broken.push((run_id.clone(), "its state cannot be serialised".into()));
                        continue;
                    }
                },
            };
            let run = RunWrite {
                run_id: run_id.clone(),
                workflow_id: w.state.workflow_id.clone(),
                version: w.version,
                customer_id: w.customer.clone(),
                status: w.state.status,
                at_node: w.state.at.clone(),
                wake_at: w.state.wake_at,
                state,
                trigger_event_id: w.trigger_event_id.clone(),
                started_at: w.started_at,
                new: w.new,
            };
            written.push((run, waiting_for));
        }
        let customers = self.leave(std::mem::take(&mut loaded.customers), &written, &batch, now);
        // New runs first: steps and actions refer to them.
        written.sort_by_key(|(r, _)| !r.new);
        let (runs, waiting_for): (Vec<RunWrite>, Vec<Option<String>>) = written.into_iter().unzip();
        batch.runs = runs;
        Evaluated { batch, waiting_for, timers, runs_started, customers }
    }

    /// The group's customers as its evaluation leaves them: their waiting
    /// runs as they now stand, windows and offers pruned to what can still
    /// count (the offers the commit issues are added by `settled`).
    fn leave(
        &self,
        mut customers: HashMap<String, Customer>,
        written: &[(RunWrite, Option<String>)],
        batch: &Batch,
        now: i64,
    ) -> HashMap<String, Customer> {
        let broken: std::collections::HashSet<&str> = batch.broken.iter().map(|(id, _)| id.as_str()).collect();
        let rewritten: std::collections::HashSet<&str> = written.iter().map(|(r, _)| r.run_id.as_str()).collect();
        for c in customers.values_mut() {
            // Runs the group left unchanged keep their row; changed ones get their new one below.
            c.waiting.retain(|r| !rewritten.contains(r.run_id.as_str()) && !broken.contains(r.run_id.as_str()));
            c.offers.retain(|o| o.created_at >= now - OFFER_LOOKBACK_MS);
            c.windows.retain(|event, w| match self.counted.events.get(event) {
                Some((hours, _)) => {
                    w.prune(now, *hours);
                    !w.is_empty()
                }
                None => false,
            });
        }
        for (r, _) in written {
            if r.status != eval::RunStatus::Waiting || broken.contains(r.run_id.as_str()) {
                continue;
            }
            let Some(c) = customers.get_mut(&r.customer_id) else { continue };
            c.waiting.push(RunRow {
                run_id: r.run_id.clone(),
                workflow_id: r.workflow_id.clone(),
                version: r.version,
                customer_id: r.customer_id.clone(),
                status: r.status.as_str().to_string(),
                at_node: r.at_node.clone(),
                wake_at: r.wake_at,
                state: r.state.clone(),
                trigger_event_id: r.trigger_event_id.clone(),
                started_at: r.started_at,
                updated_at: now,
                ended_at: None,
                // The cache keeps none; read again when an event may advance
                // it (`fetch_trigger_payloads`).
                trigger_payload: None,
            });
        }
        for c in customers.values_mut() {
            c.waiting.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        }
        customers
    }

    fn evaluate_event(
        &mut self,
        batch: &mut Batch,
        working: &mut Working,
        loaded: &mut Loaded,
        active: &[Version],
        event: &GroupEvent,
    ) {
        let at = event.received_at;
        // The profile as this event leaves it: what it maps, on top of what
        // the customer's earlier events and updates in the group left.
        let counted = self.counted.events.get(&event.data.name);
        let customer = loaded.customer_mut(&event.data.customer);
        if let Some(attributes) = event.profile.filter(|a| !a.is_empty()) {
            profile::merge_mapped(&mut customer.profile, attributes);
        }
        let event = &event.data;
        // Each event counts in its own windows (it is accepted before it is evaluated).
        if let Some((_, paths)) = counted {
            customer.windows.get_or_insert_with(&event.name, || Window::new(paths)).add(at, &event.payload);
        }
        let mut offers = std::mem::take(&mut customer.offers);
        // Waiting runs of this customer, from the cache or the database, and from this group.
        // Only those the event can change are parsed (and had their trigger payload read).
        let customer = loaded.customers.get(&event.customer);
        for r in customer.into_iter().flat_map(|c| &c.waiting) {
            if !working.contains_key(&r.run_id) && self.concerned(r, &event.name, &event.source, at) {
                if let Some(w) = to_working(r) {
                    working.insert(r.run_id.clone(), w);
                }
            }
        }
        self.redeem_carried(batch, &mut offers, event, at);
        loaded.customer_mut(&event.customer).offers = offers;
        let mut waiting: Vec<(String, i64, String)> = working
            .of_customer
            .get(&event.customer)
            .into_iter()
            .flatten()
            .filter_map(|id| working.runs.get(id).map(|w| (id, w)))
            .filter(|(_, w)| w.state.status == eval::RunStatus::Waiting)
            .map(|(id, w)| (id.clone(), w.version, w.state.workflow_id.clone()))
            .collect();
        waiting.sort();
        for (run_id, version, workflow_id) in waiting {
            let Some(workflow) = self.known_arc(&workflow_id, version) else { continue };
            let Some(current) = working.runs.get(&run_id).cloned() else { continue };
            let ctx = self.context(loaded, &event.customer, &workflow, at);
            // A paused workflow's runs keep the event for when it resumes.
            let step = if self.advancing(&workflow_id) {
                eval::advance(&workflow, &current.state, Input::Event(event), &ctx)
            } else {
                eval::hold(&workflow, &current.state, event, &ctx)
            };
            if step.state != current.state {
                loaded.note_changes(&event.customer, &step);
                self.record(batch, working, current, step, at, Some(at));
            }
        }
        // Runs this event starts.
        for v in active {
            // Most workflows do not listen to most events: skip them before
            // building a context (a profile copy, aggregates).
            if !v.workflow.listens_to(event) {
                continue;
            }
            let ctx = self.context(loaded, &event.customer, &v.workflow, at);
            if !v.workflow.triggered_by(event, &ctx) {
                continue;
            }
            let entered = &mut loaded.customer_mut(&event.customer).entered;
            let last = entered.get(&v.workflow_id);
            if !eval::may_enter(&v.workflow.settings, last, at) {
                continue;
            }
            entered.set(v.key.clone(), at);
            batch.entries.push((v.workflow_id.clone(), event.customer.clone(), at));
            let run_id = store::new_id();
            let step = eval::start(&v.workflow, &v.workflow_id, &run_id, event.clone(), &ctx);
            let fresh = WorkingRun {
                state: step.state.clone(),
                version: v.version,
                customer: event.customer.clone(),
                trigger_event_id: event.id.clone(),
                started_at: at,
                new: true,
                dirty: true,
            };
            loaded.note_changes(&event.customer, &step);
            self.record(batch, working, fresh, step, at, Some(at));
        }
        // What this customer's next event sees as "last seen", as the store keeps it.
        let c = loaded.customer_mut(&event.customer);
        c.last_seen_at = Some(c.last_seen_at.map_or(event.at, |seen| seen.max(event.at)));
    }

    /// Adds a step's outcome to the batch and the group's view of the run.
    fn record(
        &mut self,
        batch: &mut Batch,
        working: &mut Working,
        mut run: WorkingRun,
        step: Step,
        at: i64,
        caused_at: Option<i64>,
    ) {
        let run_id = step.state.run_id.clone();
        let workflow_id = step.state.workflow_id.clone();
        // Started by this step (a run started earlier in the group is in `working`).
        let starting = run.new && !working.contains_key(&run_id);
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
            // Only archiving cancels, outside evaluation.
            eval::RunStatus::Cancelled => None,
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
                at,
            });
        }
        for action in step.actions {
            let mut write = action_write(&run_id, &step.state.workflow_id, &run.customer, action);
            write.caused_at = caused_at;
            batch.actions.push(write);
        }
        run.state = step.state;
        run.dirty = true;
        working.insert(run_id, run);
    }

    /// Redeems the customer's offer code an event names (its source mapping's offer-code path: an order with its
    /// coupon), once; a used or expired code is refused, and the refusal is
    /// written into the offer's run trace with the reason.
    fn redeem_carried(&mut self, batch: &mut Batch, offers: &mut [OfferRow], event: &EventData, now: i64) {
        // Nudge's own record of an API redemption was redeemed already.
        if event.source == eval::NUDGE_SOURCE {
            return;
        }
        for offer in offers.iter_mut().filter(|o| crate::workflow::offer::redeems(event.offer_code.as_deref(), &o.code))
        {
            let state = CodeState {
                code: &offer.code,
                expires_at: offer.expires_at,
                redeemed_at: offer.redeemed_at,
                redeemed_by: offer.redeemed_by.as_deref(),
            };
            let refusal = crate::workflow::offer::redeemable(state, now)
                .err()
                .map(|r| format!("{} redeemed by {} {}: {}", offer.code, event.name, event.id, r.detail(&offer.code)));
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
                    batch.redemptions.push((offer.code.clone(), format!("event {}", event.id)));
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
}

/// A group's evaluation: the writes, and what the live feed says of its runs.
#[derive(Debug, Default)]
pub struct Evaluated {
    pub batch: Batch,
    /// For each of `batch.runs`, in order: what the run waits for, in words.
    pub waiting_for: Vec<Option<String>>,
    pub timers: usize,
    pub runs_started: u64,
    /// The group's customers as it leaves them (see `settled`).
    pub customers: HashMap<String, Customer>,
}

/// The group's customers as its commit left them, for the hot state: with
/// the offers it issued and the redemptions it made.
pub fn settled(evaluated: &mut Evaluated, committed: &runs::Committed) -> HashMap<String, Customer> {
    let performed: std::collections::HashSet<&str> = committed.performed.iter().map(String::as_str).collect();
    settle(evaluated, |key| performed.contains(key), &committed.redeemed, committed.at)
}

/// The group's customers as its commit will leave them if it does what
/// evaluation decided (every action performed, every redemption made):
/// kept while that commit is under way, so the next group is evaluated
/// meanwhile. `engine::Task::land` checks the commit did exactly that.
pub fn settled_ahead(evaluated: &mut Evaluated, at: i64) -> HashMap<String, Customer> {
    settle(evaluated, |_| true, &[], at)
}

fn settle(
    evaluated: &mut Evaluated,
    performed: impl Fn(&str) -> bool,
    redeemed: &[crate::model::Offer],
    at: i64,
) -> HashMap<String, Customer> {
    let mut customers = std::mem::take(&mut evaluated.customers);
    for a in evaluated.batch.actions.iter().filter(|a| performed(&a.action_key)) {
        if let (Effect::Offer { code, discount, value, expires_at }, Some(c)) =
            (&a.effect, customers.get_mut(&a.customer_id))
        {
            c.offers.push(OfferRow {
                code: code.clone(),
                action_key: a.action_key.clone(),
                workflow_id: a.workflow_id.clone(),
                run_id: a.run_id.clone(),
                customer_id: a.customer_id.clone(),
                discount: discount.clone(),
                value: *value,
                expires_at: *expires_at,
                redeemed_at: None,
                redeemed_by: None,
                created_at: at,
            });
        }
    }
    for r in redeemed {
        if let Some(o) = customers.get_mut(&r.customer_id).and_then(|c| c.offers.iter_mut().find(|o| o.code == r.code))
        {
            o.redeemed_at = r.redeemed_at;
            o.redeemed_by = r.redeemed_by.clone();
        }
    }
    customers
}

const IN_COLUMNS: [&str; 5] = ["run_id", "workflow_id", "status", "at", "wake_at"];
const TRIGGER_IN_COLUMNS: [&str; 3] = ["id", "customer", "payload"];

/// A run's state as stored: what the row's columns and the trigger event do
/// not already hold (about a third of the full JSON).
fn slim_state(state: &RunState) -> serde_json::Result<String> {
    let mut v = serde_json::to_value(state)?;
    if let Some(map) = v.as_object_mut() {
        for k in IN_COLUMNS {
            map.remove(k);
        }
        if map.get("inbox").and_then(Value::as_array).is_some_and(Vec::is_empty) {
            map.remove("inbox");
        }
        if let Some(trigger) = map.get_mut("trigger").and_then(Value::as_object_mut) {
            for k in TRIGGER_IN_COLUMNS {
                trigger.remove(k);
            }
        }
    }
    serde_json::to_string(&v)
}

/// The full state from a row: its JSON with what the columns hold put back
/// (a state written whole, before the JSON was slimmed, reads the same way).
fn full_state(row: &RunRow) -> Result<RunState, String> {
    let mut v: Value = serde_json::from_str(&row.state).map_err(|e| e.to_string())?;
    let map = v.as_object_mut().ok_or("the state is not a JSON object")?;
    map.insert("run_id".into(), Value::from(row.run_id.as_str()));
    map.insert("workflow_id".into(), Value::from(row.workflow_id.as_str()));
    map.insert("status".into(), Value::from(row.status.as_str()));
    map.insert("at".into(), row.at_node.as_deref().map_or(Value::Null, Value::from));
    map.insert("wake_at".into(), row.wake_at.map_or(Value::Null, Value::from));
    let trigger = map.get_mut("trigger").and_then(Value::as_object_mut).ok_or("the state has no trigger")?;
    trigger.insert("id".into(), Value::from(row.trigger_event_id.as_str()));
    trigger.insert("customer".into(), Value::from(row.customer_id.as_str()));
    trigger.entry("payload").or_insert(Value::Null);
    serde_json::from_value(v).map_err(|e| e.to_string())
}

fn to_working(row: &RunRow) -> Option<WorkingRun> {
    let mut state: RunState = match full_state(row) {
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
    Some(WorkingRun {
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
    // What the delivery worker sends, and the profile changes made; an offer
    // or an alert is its own row, so its action keeps no copy of it.
    let payload = match action {
        Action::CallWebhook { .. } | Action::UpdateProfile { .. } => serde_json::to_string(&action).unwrap_or_default(),
        Action::IssueOffer { .. } | Action::RaiseAlert { .. } => String::new(),
    };
    let (kind, effect, key, node) = match action {
        Action::IssueOffer { key, node, code, discount, value, expires_at } => {
            let discount = serde_json::to_value(&discount).ok().and_then(|v| v.as_str().map(String::from));
            let effect = Effect::Offer { code, discount: discount.unwrap_or_default(), value, expires_at };
            ("issue_offer", effect, key, node)
        }
        Action::RaiseAlert { key, node, severity, audience, message } => {
            let severity = serde_json::to_value(&severity).ok().and_then(|v| v.as_str().map(String::from));
            let effect =
                Effect::Alert { alert_id: store::new_id(), severity: severity.unwrap_or_default(), audience, message };
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(state: String, status: &str, at: Option<&str>, wake_at: Option<i64>) -> RunRow {
        RunRow {
            run_id: "r1".into(),
            workflow_id: "w1".into(),
            version: 1,
            customer_id: "ana".into(),
            status: status.into(),
            at_node: at.map(String::from),
            wake_at,
            state,
            trigger_event_id: "e1".into(),
            started_at: 5,
            updated_at: 5,
            ended_at: None,
            trigger_payload: Some(r#"{"cart":{"value":640}}"#.into()),
        }
    }

    #[test]
    fn a_stored_state_leaves_out_what_the_columns_hold_and_reads_back_whole() {
        let state = RunState {
            run_id: "r1".into(),
            workflow_id: "w1".into(),
            trigger: EventData {
                id: "e1".into(),
                name: "cart_updated".into(),
                source: "shop".into(),
                customer: "ana".into(),
                at: 1,
                accepted_at: 2,
                payload: json!({ "cart": { "value": 640 } }),
                offer_code: None,
            },
            status: eval::RunStatus::Waiting,
            at: Some("wait".into()),
            wake_at: Some(99),
            inbox: vec![],
            offer: None,
            error: None,
        };
        let slim = slim_state(&state).unwrap();
        for gone in ["r1", "w1", "e1", "ana", "waiting", "wait\"", "99", "640", "inbox"] {
            assert!(!slim.contains(gone), "{gone} is in {slim}");
        }
        let back = to_working(&row(slim, "waiting", Some("wait"), Some(99))).unwrap();
        assert_eq!(back.state, state);
        // A state stored whole by an earlier version reads the same.
        let mut whole = state.clone();
        whole.trigger.payload = Value::Null;
        let back = to_working(&row(serde_json::to_string(&whole).unwrap(), "waiting", Some("wait"), Some(99))).unwrap();
        assert_eq!(back.state, state);
    }
}
