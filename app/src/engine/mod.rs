//! The engine: the one owner of the hot path. Webhook requests, API
//! redemptions and due timers become groups; each group is evaluated by the
//! pure core and committed in one transaction — events, dedupe keys,
//! profiles, runs, steps, actions and their effects, rollups — and only then
//! answered. After a 202 the offer exists; there is no queue to lag behind.
//!
//! Customers fall in partitions (`partition`); one owner evaluates a
//! partition's events in acceptance order. On one node this task owns them
//! all, and acceptance time is the group's time on the engine's clock, so
//! events and timers are totally ordered: a timer due at T fires before any
//! event accepted at or after T, and after every event accepted before it.

pub mod clock;
pub mod counters;
pub mod evaluate;
pub mod hot;
pub mod live;
pub mod partition;

use crate::error::{AppError, AppResult};
use crate::store::events::{NewEvent, Write, Written};
use crate::store::group;
use crate::store::rollups::metric;
use crate::store::runs::{Batch, Committed, Effect};
use crate::store::{self, Db};
use crate::workflow::eval;
use crate::workflow::offer::{self, CodeState};
use clock::Clock;
use counters::Counters;
use evaluate::{Evaluated, Evaluator, GroupEvent};
use hot::Hot;
use live::Live;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Most writes one transaction takes; more wait for the next.
const MAX_GROUP: usize = 4096;
/// Events of an older version's queue (`work_item`) run per catch-up group.
const CATCH_UP: i64 = 256;

/// Wake-ups and turns between the parts of one process.
#[derive(Debug, Default)]
pub struct Signals {
    /// Webhook actions were committed for delivery.
    pub deliveries: tokio::sync::Notify,
    /// New webhook actions handed to this process's delivery worker.
    pub handover: Handover,
    /// Set by the checkpointer when the WAL has grown long: the engine
    /// restarts it between two groups (`Db::restart_wal`).
    pub wal_long: std::sync::atomic::AtomicBool,
    /// Set when actions fell due outside the engine (an editor's retry): the
    /// delivery worker leases at once rather than at its next round.
    pub due_now: std::sync::atomic::AtomicBool,
    /// Bumped when a workflow is published, paused, resumed or archived.
    pub workflows: AtomicU64,
    /// The writers of one SQLite file (the engine's group commit, the
    /// delivery worker) take turns here: a writer that finds SQLite's lock
    /// taken sleeps in steps of up to 100 ms, while a waiter here wakes the
    /// moment the other commit is done.
    write_turn: tokio::sync::Mutex<()>,
}

impl Signals {
    /// Waits for this process's turn to write to `db` (a no-op on Postgres,
    /// whose writers do not lock the whole database).
    pub async fn write_turn(&self, db: &Db) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match db {
            Db::Sqlite(_) => Some(self.write_turn.lock().await),
            Db::Postgres(_) => None,
        }
    }

    /// Tells the delivery worker that actions are due now.
    pub fn deliveries_due(&self) {
        self.due_now.store(true, Ordering::Relaxed);
        self.deliveries.notify_one();
    }

    /// Tells the engine to reload the published versions before its next group.
    pub fn workflows_changed(&self) {
        self.workflows.fetch_add(1, Ordering::Relaxed);
    }
}

/// Webhook actions the engine commits already leased to this process's
/// delivery worker, and hands over after the commit: the worker starts them
/// without a lease of its own (a second write beside every group). Should
/// the process die first, the lease runs out and a lease round takes them.
#[derive(Debug, Default)]
pub struct Handover {
    /// How long an action handed over is leased for (ms); 0 while no worker takes them.
    lease_ms: std::sync::atomic::AtomicI64,
    actions: std::sync::Mutex<Vec<store::runs::PendingAction>>,
}

/// Actions waiting to be taken beyond which new ones are left to lease rounds.
const HANDOVER_MAX: usize = 10_000;

impl Handover {
    /// The delivery worker takes actions from now on, each leased for `lease_ms`.
    pub fn open(&self, lease_ms: i64) {
        self.lease_ms.store(lease_ms.max(1), Ordering::Relaxed);
    }

    /// The lease to insert new webhook actions with, if they are to be handed over.
    fn lease_ms(&self) -> Option<i64> {
        let ms = self.lease_ms.load(Ordering::Relaxed);
        let room = self.actions.lock().map(|a| a.len() < HANDOVER_MAX).unwrap_or(false);
        (ms > 0 && room).then_some(ms)
    }

    fn push(&self, actions: impl IntoIterator<Item = store::runs::PendingAction>) {
        if let Ok(mut held) = self.actions.lock() {
            held.extend(actions);
        }
    }

    /// The actions handed over since the last call.
    pub fn take(&self) -> Vec<store::runs::PendingAction> {
        self.actions.lock().map(|mut a| std::mem::take(&mut *a)).unwrap_or_default()
    }
}

/// Where a webhook request waits for its writes' outcomes.
type IngestReply = oneshot::Sender<Result<Vec<Written>, ()>>;

/// Where the delivery worker waits for its attempts to be recorded.
type RecordReply = oneshot::Sender<AppResult<()>>;

enum Job {
    Ingest { writes: Vec<Write>, reply: IngestReply },
    Record { attempts: Vec<store::runs::Attempt>, reply: RecordReply },
    Redeem { code: String, by: String, reply: oneshot::Sender<AppResult<()>> },
    Archive { workflow_id: String, by: String, reply: oneshot::Sender<AppResult<usize>> },
    Tick { reply: oneshot::Sender<usize> },
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Ingest { writes, .. } => write!(f, "Ingest({} writes)", writes.len()),
            Job::Record { attempts, .. } => write!(f, "Record({} attempts)", attempts.len()),
            Job::Redeem { code, .. } => write!(f, "Redeem({code})"),
            Job::Archive { workflow_id, .. } => write!(f, "Archive({workflow_id})"),
            Job::Tick { .. } => f.write_str("Tick"),
        }
    }
}

/// Handle to the engine task.
#[derive(Clone, Debug)]
pub struct Engine {
    jobs: mpsc::Sender<Job>,
    pub counters: Arc<Counters>,
}

/// What the engine task works with.
#[derive(Debug, Clone)]
pub struct EngineParts {
    /// The hot path's own connection (see `Db::dedicated`).
    pub db: Db,
    /// Other connections, for what the engine reads while its connection
    /// commits the previous group.
    pub reads: Db,
    pub live: Live,
    pub signals: Arc<Signals>,
    pub clock: Arc<dyn Clock>,
    /// Customers the hot state keeps at most.
    pub hot_customers: usize,
}

impl Engine {
    /// Starts the engine on the current tokio runtime: it first runs what an
    /// older version left queued and the timers that fell due while the
    /// server was down, then takes groups.
    pub fn start(parts: EngineParts) -> Engine {
        // Bounded: when the database falls behind, senders wait (back-pressure).
        let (tx, rx) = mpsc::channel::<Job>(2048);
        let counters = Arc::new(Counters::default());
        let task = Task {
            // Complete once start-up finds no customer (`catch_up`).
            hot: Hot::new(parts.hot_customers, false),
            parts,
            counters: counters.clone(),
            evaluator: Evaluator::default(),
            last_now: 0,
            next_due: None,
            pending_redemption: None,
            flight: None,
        };
        tokio::spawn(task.run(rx));
        Engine { jobs: tx, counters }
    }

    async fn send(&self, job: Job) -> AppResult<()> {
        self.jobs.send(job).await.map_err(|_| {
            tracing::error!("The engine has stopped.");
            AppError::Internal
        })
    }

    /// Commits `writes` (with whatever else is waiting), evaluated, and
    /// returns their outcomes.
    pub async fn submit(&self, writes: Vec<Write>) -> AppResult<Vec<Written>> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Ingest { writes, reply }).await?;
        answer.await.map_err(|_| AppError::Internal)?.map_err(|()| AppError::Internal)
    }

    /// Records webhook attempts with the next group (one transaction for
    /// many, and no second writer to take turns with).
    pub async fn record(&self, attempts: Vec<store::runs::Attempt>) -> AppResult<()> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Record { attempts, reply }).await?;
        answer.await.map_err(|_| AppError::Internal)?
    }

    /// Redeems `code` once, recorded as `by`; the run waiting for it converts
    /// in the same transaction. A used or expired code is a 409 with the reason.
    pub async fn redeem(&self, code: &str, by: &str) -> AppResult<()> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Redeem { code: code.to_string(), by: by.to_string(), reply }).await?;
        answer.await.map_err(|_| AppError::Internal)?
    }

    /// Archives a workflow and cancels its waiting runs (each with the reason
    /// in its trace) in one transaction; returns how many runs it cancelled.
    pub async fn archive(&self, workflow_id: &str, by: &str) -> AppResult<usize> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Archive { workflow_id: workflow_id.to_string(), by: by.to_string(), reply }).await?;
        answer.await.map_err(|_| AppError::Internal)?
    }

    /// Fires the timers due on the engine's clock now and returns how many it
    /// looked at (tests, after moving a hand-set clock).
    pub async fn tick(&self) -> AppResult<usize> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Tick { reply }).await?;
        answer.await.map_err(|_| AppError::Internal)
    }
}

struct Task {
    parts: EngineParts,
    hot: Hot,
    counters: Arc<Counters>,
    evaluator: Evaluator,
    /// The last group's time: acceptance times never go back.
    last_now: i64,
    /// When the next timer is due, as far as this task knows (`None`: unknown, ask).
    next_due: Option<Option<i64>>,
    /// An API redemption the next commit writes (the core allowed it).
    pending_redemption: Option<(String, String)>,
    /// The group whose commit is under way while the next one is evaluated.
    flight: Option<Flight>,
}

/// A group evaluated and committing on the engine's connection, while the
/// engine evaluates the next one. Its customers are already back in the hot
/// state as the commit will leave them; its webhooks are answered when it lands.
struct Flight {
    commit: tokio::task::JoinHandle<Landed>,
    replies: Vec<(IngestReply, usize)>,
    recorded: Vec<RecordReply>,
    evaluated: Evaluated,
    view: evaluate::InFlight,
    /// The dedupe keys it claims, by source.
    keys: Keys,
    now: i64,
    started: Instant,
}

/// External event ids by source id.
type Keys = HashMap<String, std::collections::HashSet<String>>;

/// What a flight's commit gives back.
struct Landed {
    writes: Vec<Write>,
    batch: Batch,
    result: sqlx::Result<Option<group::GroupCommitted>>,
}

impl Task {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        self.catch_up().await;
        loop {
            if self.parts.signals.wal_long.swap(false, Ordering::Relaxed) {
                self.restart_wal().await;
            }
            let wait = self.wait().await;
            let first = tokio::select! {
                biased;
                landed = async { self.flight.as_mut().map(|f| &mut f.commit).expect("guarded").await },
                    if self.flight.is_some() =>
                {
                    if let Some(flight) = self.flight.take() {
                        self.land(flight, landed, None).await;
                    }
                    continue;
                }
                job = jobs.recv() => match job {
                    Some(job) => Some(job),
                    None => {
                        self.drain().await;
                        return;
                    }
                },
                () = tokio::time::sleep(wait) => None,
            };
            let mut group: Vec<Job> = first.into_iter().collect();
            let mut size: usize = group.iter().map(job_size).sum();
            while size < MAX_GROUP && !group.is_empty() {
                match jobs.try_recv() {
                    Ok(job) => {
                        size += job_size(&job);
                        group.push(job);
                    }
                    Err(_) => break,
                }
            }
            // Overlapping a group with the commit before it pays when groups
            // follow each other; a lone group commits at once, without the
            // read that predicts its duplicates.
            let busy = self.flight.is_some() || !jobs.is_empty();
            let overlappable = group.iter().all(|j| matches!(j, Job::Ingest { .. } | Job::Record { .. }));
            if busy && !group.is_empty() && overlappable {
                let (mut ingest, mut records) = (Vec::new(), Vec::new());
                for job in group {
                    match job {
                        Job::Ingest { writes, reply } => ingest.push((writes, reply)),
                        Job::Record { attempts, reply } => records.push((attempts, reply)),
                        _ => {}
                    }
                }
                self.pipeline(ingest, records).await;
            } else {
                self.drain().await;
                self.process(group).await;
            }
        }
    }

    /// How long to sleep for a timer (at most a second, so a clock set by
    /// hand or a change made elsewhere is noticed).
    async fn wait(&mut self) -> Duration {
        // The flight's timers are not committed yet: read when it has landed.
        if self.next_due.is_none() && self.flight.is_none() {
            match store::runs::next_due(&self.parts.db).await {
                Ok(due) => self.next_due = Some(due),
                Err(err) => tracing::warn!(error = %err, "Reading the next timer failed."),
            }
        }
        match self.next_due.flatten() {
            Some(due) => Duration::from_millis((due - self.parts.clock.now()).clamp(0, 1000) as u64),
            None => Duration::from_secs(1),
        }
    }

    /// The group's acceptance time: the engine's clock, never going back.
    fn now(&mut self) -> i64 {
        self.last_now = self.parts.clock.now().max(self.last_now);
        self.last_now
    }

    async fn refresh(&mut self) -> anyhow::Result<()> {
        let changes = self.parts.signals.workflows.load(Ordering::Relaxed);
        self.evaluator.refresh(&self.parts.db, changes).await
    }

    /// Runs what an older version's queue still holds, oldest first, then
    /// the timers that fell due while the server was down.
    async fn catch_up(&mut self) {
        match store::events::has_customers(&self.parts.db).await {
            Ok(false) => self.hot = Hot::new(self.parts.hot_customers, true),
            Ok(true) => {}
            Err(err) => tracing::warn!(error = %err, "Counting customers failed; the hot state reads through."),
        }
        loop {
            if let Err(err) = self.refresh().await {
                tracing::error!(error = format!("{err:#}"), "The engine cannot load the workflows; retrying.");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            let queued = match store::runs::queued_events(&self.parts.db, CATCH_UP).await {
                Ok(q) => q,
                Err(err) => {
                    tracing::error!(error = %err, "Reading the queue an older version left failed; retrying.");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if queued.is_empty() {
                break;
            }
            let n = queued.len();
            let now = self.now();
            if let Err((err, _)) = self.commit(Vec::new(), now, queued).await {
                tracing::error!(error = format!("{err:#}"), "Catching up the queue failed; retrying.");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            tracing::info!(events = n, "Caught up events an older version had queued.");
        }
        self.fire_timers().await;
    }

    async fn process(&mut self, group: Vec<Job>) {
        if let Err(err) = self.refresh().await {
            tracing::error!(error = format!("{err:#}"), "The engine cannot load the workflows.");
        }
        let timers = self.fire_timers().await;
        let mut ingest: Vec<(Vec<Write>, IngestReply)> = Vec::new();
        let mut ticks = Vec::new();
        for job in group {
            match job {
                Job::Ingest { writes, reply } => ingest.push((writes, reply)),
                Job::Tick { reply } => ticks.push(reply),
                Job::Record { attempts, reply } => self.record_alone(attempts, vec![reply]).await,
                Job::Redeem { code, by, reply } => {
                    let _ = reply.send(self.redeem(&code, &by).await);
                }
                Job::Archive { workflow_id, by, reply } => {
                    let _ = reply.send(self.archive(&workflow_id, &by).await);
                }
            }
        }
        if !ingest.is_empty() {
            self.ingest(ingest).await;
        }
        for reply in ticks {
            let _ = reply.send(timers);
        }
    }

    /// Fires every timer due now, a group at a time; returns how many.
    async fn fire_timers(&mut self) -> usize {
        let mut fired = 0;
        loop {
            let now = self.now();
            if self.next_due.flatten().is_some_and(|due| due > now) {
                return fired;
            }
            match self.commit_timers(now).await {
                Ok((n, full)) => {
                    fired += n;
                    self.next_due = None;
                    if !full {
                        return fired;
                    }
                }
                Err(err) => {
                    tracing::error!(error = format!("{err:#}"), "Firing due timers failed; retrying soon.");
                    return fired;
                }
            }
        }
    }

    async fn commit_timers(&mut self, now: i64) -> anyhow::Result<(usize, bool)> {
        let loaded = self.evaluator.load(&self.parts.db, &mut self.hot, &[], now, Vec::new(), true, None).await?;
        if loaded.timers() == 0 {
            // Nothing taken from the hot state: a group without timers has no customers.
            return Ok((0, false));
        }
        let (n, full) = (loaded.timers(), loaded.timers_full());
        let lease = self.parts.signals.handover.lease_ms();
        let evaluator = &mut self.evaluator;
        let mut evaluated = None;
        let turn = self.parts.signals.write_turn(&self.parts.db).await;
        let result = group::commit(&self.parts.db, &[], now, |_| {
            // The batch goes into the transaction and comes back with it: no copy.
            let mut e = evaluator.evaluate(loaded, &[], now);
            e.batch.webhook_lease_ms = lease;
            let batch = std::mem::take(&mut e.batch);
            evaluated = Some(e);
            batch
        })
        .await;
        drop(turn);
        let (done, batch) = match result {
            Ok(r) => r,
            Err(err) => {
                self.hot.lose();
                return Err(err.into());
            }
        };
        let mut evaluated = evaluated.unwrap_or_default();
        evaluated.batch = batch;
        self.keep(&mut evaluated, &done.committed);
        self.counters.update(|c| c.timers += n as u64);
        self.after_commit(&[], &done, &evaluated);
        Ok((n, full))
    }

    /// Commits a group of webhook writes; one bad job must not fail its
    /// neighbours, so a failed group is retried job by job.
    async fn ingest(&mut self, jobs: Vec<(Vec<Write>, IngestReply)>) {
        let now = self.now();
        let (writes, replies) = flatten(jobs);
        self.ingest_flat(writes, replies, now).await;
    }

    async fn ingest_flat(&mut self, mut writes: Vec<Write>, replies: Vec<(IngestReply, usize)>, now: i64) {
        stamp(&mut writes, now);
        match self.commit(writes, now, Vec::new()).await {
            Ok(written) => answer(replies, written),
            Err((err, writes)) => self.retry(err, writes, replies, now).await,
        }
    }

    /// After a group's commit failed: its jobs one by one, or, for one job,
    /// its events stored without evaluation.
    async fn retry(&mut self, err: anyhow::Error, writes: Vec<Write>, replies: Vec<(IngestReply, usize)>, now: i64) {
        if replies.len() > 1 {
            tracing::warn!(
                error = format!("{err:#}"),
                jobs = replies.len(),
                "Group commit failed; retrying its jobs one by one."
            );
            let mut rest = writes.into_iter();
            for (reply, n) in replies {
                let own: Vec<Write> = rest.by_ref().take(n).collect();
                let _ = reply.send(self.ingest_alone(own, now).await);
            }
        } else {
            tracing::warn!(error = format!("{err:#}"), "Commit failed; trying without evaluation.");
            let outcome = self.quarantine(&writes, now).await;
            if let Some((reply, _)) = replies.into_iter().next() {
                let _ = reply.send(outcome);
            }
        }
    }

    /// Restarts the WAL from its beginning, with no commit under way.
    async fn restart_wal(&mut self) {
        self.drain().await;
        let turn = self.parts.signals.write_turn(&self.parts.db).await;
        let started = Instant::now();
        match self.parts.db.restart_wal().await {
            Ok(()) => tracing::debug!(ms = started.elapsed().as_millis() as u64, "WAL restarted."),
            Err(err) => tracing::warn!(error = %err, "Restarting the WAL failed; it is tried again when it grows."),
        }
        drop(turn);
    }

    /// Lands the flight, if one is under way.
    async fn drain(&mut self) {
        if let Some(mut flight) = self.flight.take() {
            let landed = (&mut flight.commit).await;
            self.land(flight, landed, None).await;
        }
    }

    /// Evaluates a group of webhook writes while the previous group commits,
    /// then sends it to commit once that one has landed. Whatever the
    /// previous commit did not do as evaluated (it failed, an event was a
    /// duplicate after all) sends this group down the serial path instead.
    async fn pipeline(
        &mut self,
        jobs: Vec<(Vec<Write>, IngestReply)>,
        records: Vec<(Vec<store::runs::Attempt>, RecordReply)>,
    ) {
        let now = self.now();
        let changes = self.parts.signals.workflows.load(Ordering::Relaxed);
        // Due (or unknown) timers and changed workflows are read from the
        // database, which must hold the flight first.
        let timers_due = self.next_due.is_none_or(|due| due.is_some_and(|d| d <= now));
        if timers_due || !self.evaluator.current(changes) || self.pending_redemption.is_some() {
            self.drain().await;
            let records = records.into_iter().map(|(attempts, reply)| Job::Record { attempts, reply });
            self.process(
                jobs.into_iter().map(|(writes, reply)| Job::Ingest { writes, reply }).chain(records).collect(),
            )
            .await;
            return;
        }
        let (attempts, recorded): (Vec<Vec<store::runs::Attempt>>, Vec<RecordReply>) = records.into_iter().unzip();
        let attempts: Vec<store::runs::Attempt> = attempts.into_iter().flatten().collect();
        let (mut writes, replies) = flatten(jobs);
        stamp(&mut writes, now);
        let predicted = match self.predict(&writes).await {
            Ok(p) => p,
            Err(err) => {
                tracing::warn!(error = %err, "Reading the group's dedupe keys failed; it commits after the one before.");
                self.drain().await;
                self.record_alone(attempts, recorded).await;
                return self.ingest_flat(writes, replies, now).await;
            }
        };
        let events = events_of(&writes);
        let view = self.flight.as_ref().map(|f| &f.view);
        let loaded = self.evaluator.load(&self.parts.reads, &mut self.hot, &events, now, Vec::new(), false, view).await;
        let loaded = match loaded {
            Ok(l) => l,
            Err(err) => {
                // Customers of the flight must be read after it lands (or the
                // read failed): the serial path, from the database.
                tracing::debug!(error = format!("{err:#}"), "A group waits for the commit before it.");
                self.drain().await;
                self.record_alone(attempts, recorded).await;
                return self.ingest_flat(writes, replies, now).await;
            }
        };
        let started = Instant::now();
        let fresh: Vec<GroupEvent> = writes
            .iter()
            .zip(&predicted)
            .filter_map(|(w, new)| match w {
                Write::Event(e) if *new => Some(GroupEvent {
                    data: self.evaluator.event_data(e),
                    received_at: e.received_at,
                    profile: Some(&e.profile),
                }),
                _ => None,
            })
            .collect();
        let mut evaluated = self.evaluator.evaluate(loaded, &fresh, now);
        drop(fresh);
        let view = in_flight(&writes, &evaluated);
        for (id, customer) in evaluate::settled_ahead(&mut evaluated, now) {
            self.hot.put(id, customer);
        }
        self.note_timers(&evaluated.batch);
        // This group's customers stand as its commit will leave them; the
        // one before must land as evaluated for that to hold.
        if let Some(mut before) = self.flight.take() {
            self.counters.update(|c| c.overlapped += 1);
            let landed = (&mut before.commit).await;
            if !self.land(before, landed, Some(&view.customers)).await {
                self.counters.update(|c| c.reevaluated += 1);
                self.record_alone(attempts, recorded).await;
                return self.ingest_flat(writes, replies, now).await;
            }
        }
        let mut keys: Keys = HashMap::new();
        for (w, new) in writes.iter().zip(&predicted) {
            if let (Write::Event(e), true) = (w, new) {
                keys.entry(e.source_id.clone()).or_default().insert(e.external_id.clone());
            }
        }
        let mut batch = std::mem::take(&mut evaluated.batch);
        batch.attempts = attempts;
        batch.webhook_lease_ms = self.parts.signals.handover.lease_ms();
        let (db, signals, accepted) = (self.parts.db.clone(), self.parts.signals.clone(), predicted);
        let commit = tokio::spawn(async move {
            let turn = signals.write_turn(&db).await;
            let result = group::commit_evaluated(&db, &writes, now, &batch, &accepted).await;
            drop(turn);
            Landed { writes, batch, result }
        });
        self.flight = Some(Flight { commit, replies, recorded, evaluated, view, keys, now, started });
    }

    /// Answers a flight's webhooks once its commit is done. Returns whether
    /// the hot state stands as the flight's evaluation left it; when the
    /// commit failed or did less than was evaluated, the flight's customers
    /// and `pending` ones (evaluated on top of it) are forgotten first, and a
    /// flight that wrote nothing goes down the serial path.
    async fn land(
        &mut self,
        flight: Flight,
        joined: Result<Landed, tokio::task::JoinError>,
        pending: Option<&std::collections::HashSet<String>>,
    ) -> bool {
        let Flight { replies, recorded, mut evaluated, view, now, started, .. } = flight;
        let forget = |hot: &mut Hot| hot.forget(view.customers.iter().chain(pending.into_iter().flatten()));
        let Landed { writes, batch, result } = match joined {
            Ok(landed) => landed,
            Err(err) => {
                // Nothing says whether it committed: no webhook of it is acknowledged.
                tracing::error!(error = %err, "A group's commit stopped; its webhooks are answered with an error.");
                forget(&mut self.hot);
                self.next_due = None;
                for (reply, _) in replies {
                    let _ = reply.send(Err(()));
                }
                for reply in recorded {
                    let _ = reply.send(Err(AppError::Internal));
                }
                return false;
            }
        };
        let mut batch = batch;
        let attempts = std::mem::take(&mut batch.attempts);
        evaluated.batch = batch;
        match result {
            Ok(Some(done)) => {
                let keys: std::collections::HashSet<&str> =
                    evaluated.batch.actions.iter().map(|a| a.action_key.as_str()).collect();
                let as_evaluated = done.committed.performed.len() == keys.len()
                    && done.committed.redeemed.len() == evaluated.batch.redemptions.len();
                if !as_evaluated {
                    tracing::info!(
                        "A group's commit skipped actions or redemptions already made; its customers are read again."
                    );
                    forget(&mut self.hot);
                    self.next_due = None;
                }
                self.counted(&done.written, started);
                self.after_commit(&writes, &done, &evaluated);
                answer(replies, done.written);
                for reply in recorded {
                    let _ = reply.send(Ok(()));
                }
                as_evaluated
            }
            Ok(None) => {
                tracing::info!("A group held a duplicate its prediction missed; it is evaluated again.");
                forget(&mut self.hot);
                self.next_due = None;
                self.record_alone(attempts, recorded).await;
                self.ingest_flat(writes, replies, now).await;
                false
            }
            Err(err) => {
                forget(&mut self.hot);
                self.next_due = None;
                self.record_alone(attempts, recorded).await;
                self.retry(anyhow::Error::new(err).context("Committing a group."), writes, replies, now).await;
                false
            }
        }
    }

    /// Counts a commit's events and the hot state's size.
    fn counted(&self, written: &[Written], started: Instant) {
        let accepted = written.iter().filter(|w| matches!(w, Written::Accepted { .. })).count() as u64;
        let seconds = started.elapsed().as_secs_f64();
        let (held, misses) = (self.hot.len() as u64, self.hot.misses);
        self.counters.update(|c| {
            c.events += accepted;
            c.groups += 1;
            for _ in 0..accepted {
                c.to_commit.observe(seconds);
            }
            c.hot_customers = held;
            c.hot_misses = misses;
        });
    }

    /// Moves the next timer earlier for the waiting runs `batch` writes.
    fn note_timers(&mut self, batch: &Batch) {
        for r in &batch.runs {
            if let Some(due) = r.wake_at.filter(|_| r.status == eval::RunStatus::Waiting) {
                self.next_due = match self.next_due {
                    Some(Some(d)) => Some(Some(d.min(due))),
                    Some(None) => Some(Some(due)),
                    None => None,
                };
            }
        }
    }

    /// Records webhook attempts in a transaction of their own (off the
    /// pipelined path, and after a group that held them failed).
    async fn record_alone(&mut self, attempts: Vec<store::runs::Attempt>, replies: Vec<RecordReply>) {
        if attempts.is_empty() && replies.is_empty() {
            return;
        }
        let now = self.now();
        let turn = self.parts.signals.write_turn(&self.parts.db).await;
        let result = store::runs::record_attempts(&self.parts.db, &attempts, now).await;
        drop(turn);
        if let Err(err) = &result {
            tracing::error!(error = %err, attempts = attempts.len(), "Recording webhook attempts failed.");
        }
        for reply in replies {
            let _ = reply.send(result.as_ref().map(|_| ()).map_err(|_| AppError::Internal));
        }
    }

    /// Which writes are new events: not repeated earlier in the group, not
    /// claimed by the flight, not in the database (read on other connections).
    async fn predict(&self, writes: &[Write]) -> sqlx::Result<Vec<bool>> {
        let mut by_source: HashMap<&str, Vec<&str>> = HashMap::new();
        for w in writes {
            if let Write::Event(e) = w {
                by_source.entry(e.source_id.as_str()).or_default().push(e.external_id.as_str());
            }
        }
        let mut seen: Keys = HashMap::new();
        for (source, ids) in &by_source {
            for chunk in ids.chunks(500) {
                let claimed = store::events::claimed(&self.parts.reads, source, chunk).await?;
                seen.entry((*source).to_string()).or_default().extend(claimed);
            }
        }
        let flying = self.flight.as_ref().map(|f| &f.keys);
        let held = |keys: Option<&Keys>, e: &NewEvent| {
            keys.and_then(|k| k.get(&e.source_id)).is_some_and(|ids| ids.contains(&e.external_id))
        };
        let mut first: std::collections::HashSet<(&str, &str)> = std::collections::HashSet::new();
        Ok(writes
            .iter()
            .map(|w| match w {
                Write::Event(e) => {
                    first.insert((e.source_id.as_str(), e.external_id.as_str()))
                        && !held(Some(&seen), e)
                        && !held(flying, e)
                }
                Write::DeadLetter(_) => false,
            })
            .collect())
    }

    async fn ingest_alone(&mut self, writes: Vec<Write>, now: i64) -> Result<Vec<Written>, ()> {
        match self.commit(writes, now, Vec::new()).await {
            Ok(written) => Ok(written),
            Err((err, writes)) => {
                tracing::warn!(error = format!("{err:#}"), "Commit failed; trying without evaluation.");
                self.quarantine(&writes, now).await
            }
        }
    }

    /// Stores events whose evaluation could not be committed, without it, so
    /// one event that fails every time does not block the ones behind it.
    async fn quarantine(&mut self, writes: &[Write], now: i64) -> Result<Vec<Written>, ()> {
        let turn = self.parts.signals.write_turn(&self.parts.db).await;
        let result = group::commit(&self.parts.db, writes, now, |_| Batch::default()).await;
        drop(turn);
        match result {
            Ok((done, _)) => {
                let ids: Vec<&str> = done
                    .written
                    .iter()
                    .filter_map(|w| match w {
                        Written::Accepted { event_id } => Some(event_id.as_str()),
                        _ => None,
                    })
                    .collect();
                tracing::error!(events = ?ids, "Events stored without evaluation: evaluating them could not be committed.");
                self.counters.update(|c| c.quarantined += ids.len() as u64);
                announce_events(&self.parts.live, writes, &done.written);
                Ok(done.written)
            }
            Err(err) => {
                tracing::error!(error = %err, writes = writes.len(), "Commit failed; nothing in it was acknowledged.");
                Err(())
            }
        }
    }

    /// Loads, evaluates and commits one group: `writes` from requests, or
    /// `queued` events of an older version's queue. On failure the writes
    /// come back for a retry.
    async fn commit(
        &mut self,
        writes: Vec<Write>,
        now: i64,
        queued: Vec<store::events::EventRow>,
    ) -> Result<Vec<Written>, (anyhow::Error, Vec<Write>)> {
        let started = Instant::now();
        let events = events_of(&writes);
        let timers = match self.next_due {
            Some(Some(due)) => due <= now,
            Some(None) => false,
            None => true,
        };
        let loaded = match self.evaluator.load(&self.parts.db, &mut self.hot, &events, now, queued, timers, None).await
        {
            Ok(l) => l,
            Err(err) => return Err((err, writes)),
        };
        let redemption = self.pending_redemption.take();
        let lease = self.parts.signals.handover.lease_ms();
        let evaluator = &mut self.evaluator;
        let mut evaluated = None;
        let turn = self.parts.signals.write_turn(&self.parts.db).await;
        let result = group::commit(&self.parts.db, &writes, now, |written| {
            let fresh: Vec<GroupEvent> = writes
                .iter()
                .zip(written)
                .filter_map(|(w, outcome)| match (w, outcome) {
                    (Write::Event(e), Written::Accepted { .. }) => Some(GroupEvent {
                        data: evaluator.event_data(e),
                        received_at: e.received_at,
                        profile: Some(&e.profile),
                    }),
                    _ => None,
                })
                .collect();
            let mut e = evaluator.evaluate(loaded, &fresh, now);
            e.batch.redemptions.extend(redemption);
            e.batch.webhook_lease_ms = lease;
            let batch = std::mem::take(&mut e.batch);
            evaluated = Some(e);
            batch
        })
        .await;
        drop(turn);
        match result {
            Ok((done, batch)) => {
                let mut evaluated = evaluated.unwrap_or_default();
                evaluated.batch = batch;
                self.keep(&mut evaluated, &done.committed);
                self.counted(&done.written, started);
                self.after_commit(&writes, &done, &evaluated);
                Ok(done.written)
            }
            Err(err) => {
                // The group's customers were taken out of the hot state and
                // the database still has them as they were: read them again.
                self.hot.lose();
                Err((anyhow::Error::new(err).context("Committing a group."), writes))
            }
        }
    }

    /// Puts the group's customers back in the hot state as the commit left them.
    fn keep(&mut self, evaluated: &mut Evaluated, committed: &store::runs::Committed) {
        for (id, customer) in evaluate::settled(evaluated, committed) {
            self.hot.put(id, customer);
        }
        let (held, misses) = (self.hot.len() as u64, self.hot.misses);
        self.counters.update(|c| {
            c.hot_customers = held;
            c.hot_misses = misses;
        });
    }

    /// Redeems a code through the API: the core decides; Nudge's record of
    /// the redemption is an event of the customer's, evaluated like any
    /// other, so the run waiting for the code converts in the same commit.
    async fn redeem(&mut self, code: &str, by: &str) -> AppResult<()> {
        let now = self.now();
        let row = store::offers::offer(&self.parts.db, code)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("No offer '{code}'.")))?;
        let state = CodeState {
            code: &row.code,
            expires_at: row.expires_at,
            redeemed_at: row.redeemed_at,
            redeemed_by: row.redeemed_by.as_deref(),
        };
        offer::redeemable(state, now).map_err(|r| AppError::Conflict(format!("{}.", r.detail(&row.code))))?;
        let payload = serde_json::json!({ "code": row.code, "redeemed_by": by, "workflow_id": row.workflow_id });
        let event = NewEvent {
            event_id: store::new_id(),
            source_id: eval::NUDGE_SOURCE.into(),
            external_id: format!("redeem:{}", row.code),
            name: eval::OFFER_REDEEMED.into(),
            customer_id: row.customer_id.clone(),
            occurred_at: now,
            received_at: now,
            payload: payload.to_string(),
            parsed: payload,
            profile: serde_json::Map::new(),
            offer_code: Some(row.code.clone()),
            replay_of: None,
        };
        self.pending_redemption = Some((row.code.clone(), by.to_string()));
        let result = self.commit(vec![Write::Event(event)], now, Vec::new()).await;
        match result {
            Ok(_) => {
                tracing::info!(code = %row.code, customer = %row.customer_id, "Offer redeemed.");
                Ok(())
            }
            Err((err, _)) => {
                tracing::error!(error = format!("{err:#}"), code = %row.code, "A redemption could not be committed.");
                Err(AppError::Internal)
            }
        }
    }

    /// Archives `workflow_id` and ends its waiting runs as the core says, in
    /// one transaction: after the answer no run of it waits, and its timers
    /// are gone with them.
    async fn archive(&mut self, workflow_id: &str, by: &str) -> AppResult<usize> {
        let now = self.now();
        let ending = eval::archived(by);
        let seq = self.evaluator.next_seq();
        let db = &self.parts.db;
        let turn = self.parts.signals.write_turn(db).await;
        let result: sqlx::Result<Option<Vec<store::runs::EndedRun>>> = async {
            let mut tx = group::Tx::begin(db).await?;
            let status = crate::model::WorkflowStatus::Archived.as_str();
            if !store::workflows::set_status_in(&mut tx, workflow_id, status, by, now).await? {
                return Ok(None);
            }
            let ended = store::runs::end_waiting(&mut tx, workflow_id, &ending, seq, now).await?;
            tx.commit().await?;
            Ok(Some(ended))
        }
        .await;
        drop(turn);
        let ended = result?.ok_or_else(|| AppError::NotFound(format!("No workflow '{workflow_id}'.")))?;
        self.hot.end_runs_of(workflow_id);
        self.parts.signals.workflows_changed();
        // The events of this group evaluated after the archive must not start
        // runs in it: the published versions are reloaded now, not at the next group.
        if let Err(err) = self.refresh().await {
            tracing::error!(error = format!("{err:#}"), "The engine cannot reload the workflows after an archive.");
        }
        self.next_due = None;
        let live = &self.parts.live;
        if live.wanted() {
            for r in &ended {
                live.publish(
                    "runs",
                    crate::model::Run {
                        run_id: r.run_id.clone(),
                        workflow_id: workflow_id.to_string(),
                        version: r.version,
                        customer_id: r.customer_id.clone(),
                        status: ending.status,
                        at_node: r.at_node.clone(),
                        wake_at: None,
                        trigger_event_id: r.trigger_event_id.clone(),
                        started_at: r.started_at,
                        updated_at: now,
                        ended_at: Some(now),
                        workflow_name: None,
                        waiting_for: None,
                        action_health: Default::default(),
                    },
                );
            }
        }
        Ok(ended.len())
    }

    /// Tells the delivery worker, the counters and the live feed what a
    /// commit did, from what the commit holds: no reads, one serialisation
    /// per message.
    fn after_commit(&mut self, writes: &[Write], done: &group::GroupCommitted, evaluated: &Evaluated) {
        let committed = &done.committed;
        let batch = &evaluated.batch;
        if committed.webhooks > 0 {
            if batch.webhook_lease_ms.is_some() {
                let performed: std::collections::HashSet<&str> =
                    committed.performed.iter().map(String::as_str).collect();
                let handed = batch
                    .actions
                    .iter()
                    .filter(|a| matches!(a.effect, Effect::Webhook) && performed.contains(a.action_key.as_str()))
                    .map(|a| store::runs::PendingAction {
                        action_key: a.action_key.clone(),
                        run_id: a.run_id.clone(),
                        payload: a.payload.clone(),
                        attempts: 0,
                    });
                self.parts.signals.handover.push(handed);
            }
            self.parts.signals.deliveries.notify_one();
        }
        // The earliest new timer, so the engine wakes for it.
        self.note_timers(batch);
        let performed: std::collections::HashSet<&str> = committed.performed.iter().map(String::as_str).collect();
        let kinds: Vec<&str> =
            batch.actions.iter().filter(|a| performed.contains(a.action_key.as_str())).map(|a| a.kind).collect();
        self.counters.update(|c| {
            c.runs_started += evaluated.runs_started;
            for kind in &kinds {
                *c.actions.entry((*kind).to_string()).or_default() += 1;
            }
        });
        let live = &self.parts.live;
        if !live.wanted() {
            return;
        }
        announce_events(live, writes, &done.written);
        announce_work(live, batch, &evaluated.waiting_for, committed);
        live.count(committed.tally.totals());
    }
}

/// The events among a group's writes.
fn events_of(writes: &[Write]) -> Vec<&NewEvent> {
    writes
        .iter()
        .filter_map(|w| match w {
            Write::Event(e) => Some(e),
            Write::DeadLetter(_) => None,
        })
        .collect()
}

/// A group's writes in one list, and each job's reply with its count of them.
fn flatten(jobs: Vec<(Vec<Write>, IngestReply)>) -> (Vec<Write>, Vec<(IngestReply, usize)>) {
    let mut all = Vec::with_capacity(jobs.iter().map(|(w, _)| w.len()).sum());
    let mut replies = Vec::with_capacity(jobs.len());
    for (writes, reply) in jobs {
        replies.push((reply, writes.len()));
        all.extend(writes);
    }
    (all, replies)
}

/// Gives each job its writes' outcomes, in order.
fn answer(replies: Vec<(IngestReply, usize)>, written: Vec<Written>) {
    let mut outcomes = written.into_iter();
    for (reply, n) in replies {
        let _ = reply.send(Ok(outcomes.by_ref().take(n).collect()));
    }
}

/// What the next group must not read from the database while this one
/// commits: its customers, and the payloads of the events that start its
/// waiting runs.
fn in_flight(writes: &[Write], evaluated: &Evaluated) -> evaluate::InFlight {
    let events: HashMap<&str, &str> = writes
        .iter()
        .filter_map(|w| match w {
            Write::Event(e) => Some((e.event_id.as_str(), e.payload.as_str())),
            Write::DeadLetter(_) => None,
        })
        .collect();
    let payloads = evaluated
        .batch
        .runs
        .iter()
        .filter(|r| r.new && r.status == eval::RunStatus::Waiting)
        .filter_map(|r| events.get(r.trigger_event_id.as_str()).map(|p| (r.trigger_event_id.clone(), (*p).to_string())))
        .collect();
    evaluate::InFlight { customers: evaluated.customers.keys().cloned().collect(), payloads }
}

fn job_size(job: &Job) -> usize {
    match job {
        Job::Ingest { writes, .. } => writes.len(),
        Job::Record { attempts, .. } => attempts.len(),
        Job::Redeem { .. } | Job::Archive { .. } | Job::Tick { .. } => 1,
    }
}

/// Events are accepted at the group's time (the sender's time stays
/// `occurred_at`), so acceptance order is the order evaluation sees.
fn stamp(writes: &mut [Write], now: i64) {
    for w in writes {
        match w {
            Write::Event(e) => e.received_at = now,
            Write::DeadLetter(d) => d.received_at = now,
        }
    }
}

/// Tells live subscribers about the events a group accepted: whole objects,
/// so pages update without a refetch.
fn announce_events(live: &Live, writes: &[Write], written: &[Written]) {
    let mut accepted = 0;
    let mut names: HashMap<&str, i64> = HashMap::new();
    let mut sources: HashMap<&str, i64> = HashMap::new();
    for (w, outcome) in writes.iter().zip(written) {
        if let (Write::Event(e), Written::Accepted { .. }) = (w, outcome) {
            accepted += 1;
            *names.entry(e.name.as_str()).or_default() += 1;
            *sources.entry(e.source_id.as_str()).or_default() += 1;
            live.publish(
                "events",
                crate::model::Event {
                    event_id: e.event_id.clone(),
                    source_id: e.source_id.clone(),
                    external_id: e.external_id.clone(),
                    name: e.name.clone(),
                    customer_id: e.customer_id.clone(),
                    occurred_at: e.occurred_at,
                    received_at: e.received_at,
                    payload: e.parsed.clone(),
                    offer_code: e.offer_code.clone(),
                },
            );
        }
    }
    let counts = std::iter::once((metric::EVENTS, "", "", accepted))
        .filter(|c| c.3 > 0)
        .chain(names.into_iter().map(|(k, n)| (metric::EVENT_NAME, "", k, n)))
        .chain(sources.into_iter().map(|(k, n)| (metric::EVENT_SOURCE, "", k, n)));
    live.count(counts);
}

/// Tells live subscribers what evaluation did: runs as they now stand,
/// offers issued and redeemed, alerts raised.
fn announce_work(live: &Live, batch: &Batch, waiting_for: &[Option<String>], committed: &Committed) {
    for (r, waiting_for) in batch.runs.iter().zip(waiting_for) {
        let ended = r.status.is_final();
        live.publish(
            "runs",
            crate::model::Run {
                run_id: r.run_id.clone(),
                workflow_id: r.workflow_id.clone(),
                version: r.version,
                customer_id: r.customer_id.clone(),
                status: r.status,
                at_node: r.at_node.clone(),
                wake_at: r.wake_at,
                trigger_event_id: r.trigger_event_id.clone(),
                started_at: r.started_at,
                updated_at: committed.at,
                ended_at: ended.then_some(committed.at),
                // The name and the webhooks' health are read with the run
                // (pages refetch on this message); the stream stays cheap.
                workflow_name: None,
                waiting_for: waiting_for.clone(),
                action_health: Default::default(),
            },
        );
    }
    let performed: std::collections::HashSet<&str> = committed.performed.iter().map(String::as_str).collect();
    for a in batch.actions.iter().filter(|a| performed.contains(a.action_key.as_str())) {
        match &a.effect {
            Effect::Offer { code, discount, value, expires_at } => live.publish(
                "offers",
                crate::model::Offer {
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
                crate::model::Alert {
                    alert_id: alert_id.clone(),
                    workflow_id: a.workflow_id.clone(),
                    run_id: a.run_id.clone(),
                    customer_id: a.customer_id.clone(),
                    severity: severity.clone(),
                    audience: audience.clone(),
                    message: message.clone(),
                    status: crate::workflow::status::AlertStatus::Open,
                    acknowledged_by: None,
                    acknowledged_at: None,
                    resolved_by: None,
                    resolved_at: None,
                    created_at: committed.at,
                },
            ),
            Effect::Profile { .. } | Effect::Webhook => {}
        }
    }
    for r in &committed.redeemed {
        live.publish("offers", r);
    }
}
