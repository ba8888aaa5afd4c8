//! The live feed: what happens (events accepted, runs, offers, alerts, metric
//! ticks) fanned out to every subscribed browser or API client. A bounded
//! broadcast plus a bounded replay buffer: a client that reconnects with its
//! last message id gets what it missed; a slow client misses messages and is
//! told to resync, never slowing the writer or anyone else.

use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch};

/// One message: a topic (`events`, …), a sequence number for resuming, and
/// the whole object as JSON text, serialised once for every subscriber.
#[derive(Debug, Clone, Serialize)]
pub struct LiveMessage {
    pub seq: u64,
    pub topic: &'static str,
    pub data: Arc<str>,
}

/// Messages a subscriber may fall behind by before it must resync.
const BUFFER: usize = 4096;
/// Recent messages kept for clients that reconnect (`Last-Event-ID`).
const REPLAY: usize = 4096;
/// How long after the last subscriber left messages are still kept for replay:
/// a browser reconnecting after a short outage finds what it missed, while an
/// installation nobody watches pays nothing for the feed.
const KEEP_FOR_RECONNECT_MS: i64 = 60_000;

/// Where a reconnecting client resumes.
#[derive(Debug)]
pub enum Resume {
    /// These messages (oldest first) were missed; everything later comes live.
    Replay(Vec<LiveMessage>),
    /// Too far behind, or from before a restart: refetch, then follow.
    Resync,
}

pub use crate::model::{MetricCount as Count, MetricTick as Tick};

/// How often the counters' increases are sent, at most.
pub const TICK_MS: u64 = 1000;

#[derive(Debug)]
struct Inner {
    tx: broadcast::Sender<LiveMessage>,
    /// Counter increases not yet sent: (metric, workflow, key) → n.
    pending: Mutex<HashMap<(String, String, String), i64>>,
    /// Identifies this process's sequence: ids from an earlier run never match.
    epoch: String,
    ring: Mutex<Ring>,
    /// Unix ms when the last subscriber left (0: never had one).
    last_left_at: AtomicI64,
    /// Set when the server shuts down: open streams end, so their clients
    /// reconnect to whatever serves next instead of holding the shutdown up.
    closing: watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct Ring {
    seq: u64,
    recent: VecDeque<LiveMessage>,
}

#[derive(Debug, Clone)]
pub struct Live {
    inner: Arc<Inner>,
}

impl Default for Live {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(BUFFER);
        let epoch = format!("{:x}", crate::store::now_ms());
        Live {
            inner: Arc::new(Inner {
                tx,
                pending: Mutex::new(HashMap::new()),
                epoch,
                ring: Mutex::new(Ring::default()),
                last_left_at: AtomicI64::new(0),
                closing: watch::Sender::new(false),
            }),
        }
    }
}

/// A subscription with what its client missed.
pub struct Resumed {
    pub sub: Subscription,
    pub resume: Resume,
    /// Live messages up to this sequence number were replayed or came before.
    pub after: u64,
    /// The id of the position the subscription starts from.
    pub id: String,
}

/// A subscription: the receiver, and a guard to keep beside it.
pub struct Subscription {
    pub rx: broadcast::Receiver<LiveMessage>,
    pub guard: Leaving,
}

/// Dropped when a subscriber goes: starts the reconnect grace period.
pub struct Leaving(Live);

impl Drop for Leaving {
    fn drop(&mut self) {
        self.0.inner.last_left_at.store(crate::store::now_ms(), Ordering::Relaxed);
    }
}

impl Live {
    /// Whether anyone listens, or listened a moment ago and may reconnect:
    /// writers skip building messages otherwise.
    pub fn wanted(&self) -> bool {
        if self.inner.tx.receiver_count() > 0 {
            return true;
        }
        let left = self.inner.last_left_at.load(Ordering::Relaxed);
        left > 0 && crate::store::now_ms() - left < KEEP_FOR_RECONNECT_MS
    }

    /// Publishes to whoever listens, and keeps the message for replay.
    pub fn publish(&self, topic: &'static str, data: impl Serialize) {
        if !self.wanted() {
            return;
        }
        match serde_json::to_string(&data) {
            Ok(v) => {
                // Numbering, buffering and sending under one lock keeps the
                // replay buffer and the broadcast in the same order.
                let mut ring = self.inner.ring.lock().unwrap_or_else(|p| p.into_inner());
                ring.seq += 1;
                let msg = LiveMessage { seq: ring.seq, topic, data: Arc::from(v) };
                if ring.recent.len() == REPLAY {
                    ring.recent.pop_front();
                }
                ring.recent.push_back(msg.clone());
                let _ = self.inner.tx.send(msg);
            }
            Err(err) => tracing::warn!(topic, error = %err, "Live message not serialisable."),
        }
    }

    pub fn subscribe(&self) -> Subscription {
        Subscription { rx: self.inner.tx.subscribe(), guard: Leaving(self.clone()) }
    }

    /// Subscribes and says what a client whose last message was `last_id`
    /// missed (`None`: a new client, nothing). Subscribing and reading the
    /// buffer under one lock leaves no gap and no repeat: live messages up
    /// to `after` are the caller's to drop.
    pub fn resume(&self, last_id: Option<&str>) -> Resumed {
        let ring = self.inner.ring.lock().unwrap_or_else(|p| p.into_inner());
        let sub = self.subscribe();
        let after = ring.seq;
        let resume = match last_id.map(|id| self.parse_id(id)) {
            None => Resume::Replay(Vec::new()),
            Some(Some(last)) if last >= ring.seq => Resume::Replay(Vec::new()),
            Some(Some(last)) => match ring.recent.front() {
                // Everything after `last` is still buffered.
                Some(first) if first.seq <= last + 1 => {
                    Resume::Replay(ring.recent.iter().filter(|m| m.seq > last).cloned().collect())
                }
                _ => Resume::Resync,
            },
            Some(None) => Resume::Resync,
        };
        Resumed { sub, resume, after, id: format!("{}-{after}", self.inner.epoch) }
    }

    /// The SSE id of a message: `<epoch>-<seq>`.
    pub fn id_of(&self, msg: &LiveMessage) -> String {
        format!("{}-{}", self.inner.epoch, msg.seq)
    }

    /// The sequence number of an id from this process, if it is one.
    pub fn parse_id(&self, id: &str) -> Option<u64> {
        let (epoch, seq) = id.trim().split_once('-')?;
        if epoch != self.inner.epoch {
            return None;
        }
        seq.parse().ok()
    }

    /// The id a client that has seen everything so far would send back.
    pub fn current_id(&self) -> String {
        let ring = self.inner.ring.lock().unwrap_or_else(|p| p.into_inner());
        format!("{}-{}", self.inner.epoch, ring.seq)
    }

    /// Adds committed counts to the next `metrics` tick (if anyone listens).
    pub fn count<'a, 'b>(&self, counts: impl IntoIterator<Item = (&'a str, &'b str, &'b str, i64)>) {
        if !self.wanted() {
            return;
        }
        let mut pending = self.inner.pending.lock().unwrap_or_else(|p| p.into_inner());
        for (metric, workflow, key, n) in counts {
            *pending.entry((metric.to_string(), workflow.to_string(), key.to_string())).or_default() += n;
        }
    }

    /// Sends what the counters gained since the last tick, if anything.
    pub fn tick(&self) {
        let counts: Vec<Count> = {
            let mut pending = self.inner.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.drain().map(|((metric, workflow_id, key), n)| Count { metric, workflow_id, key, n }).collect()
        };
        if !counts.is_empty() {
            self.publish("metrics", Tick { at: crate::store::now_ms(), counts });
        }
    }

    /// Ends every open stream (see [`Live::closed`]); for the server's shutdown.
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Resolves once [`Live::close`] has been called (at once if it has).
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    /// Ticks every `TICK_MS` for as long as the process runs.
    pub fn start_ticker(&self) {
        let live = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_millis(TICK_MS));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                live.tick();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconnecting_client_gets_exactly_what_it_missed_or_is_told_to_resync() {
        let live = Live::default();
        let first = live.subscribe();
        for i in 0..5 {
            live.publish("events", i);
        }
        let id = live.current_id();
        live.publish("runs", "a");
        live.publish("events", "b");
        let resumed = live.resume(Some(&id));
        assert_eq!(resumed.after, 7);
        let Resume::Replay(missed) = resumed.resume else { panic!("expected a replay") };
        assert_eq!(missed.iter().map(|m| m.topic).collect::<Vec<_>>(), ["runs", "events"]);
        assert_eq!(&*missed[1].data, r#""b""#);
        // Up to date: nothing to replay.
        let resume = live.resume(Some(&live.current_id())).resume;
        assert!(matches!(resume, Resume::Replay(m) if m.is_empty()));
        // From another process (a restart), or garbage: resync.
        assert!(matches!(live.resume(Some("18c0ffee-3")).resume, Resume::Resync));
        assert!(matches!(live.resume(Some("nonsense")).resume, Resume::Resync));
        // Further behind than the buffer holds: resync.
        for i in 0..REPLAY {
            live.publish("events", i);
        }
        assert!(matches!(live.resume(Some(&id)).resume, Resume::Resync));
        drop(first);
    }

    #[tokio::test]
    async fn closing_ends_streams_opened_before_and_after() {
        let live = Live::default();
        let before = live.closed();
        live.close();
        tokio::time::timeout(std::time::Duration::from_secs(5), before).await.expect("an open stream ends on close");
        tokio::time::timeout(std::time::Duration::from_secs(5), live.closed())
            .await
            .expect("a stream opened while closing ends at once");
    }

    #[test]
    fn nothing_is_built_when_nobody_listens_but_a_short_outage_is_covered() {
        let live = Live::default();
        live.publish("events", 1);
        assert_eq!(live.current_id(), format!("{}-0", live.inner.epoch), "no listener, no message");
        let sub = live.subscribe();
        drop(sub);
        // The listener just left: it may come back, so messages are kept.
        assert!(live.wanted());
        live.publish("events", 2);
        assert_eq!(live.current_id(), format!("{}-1", live.inner.epoch));
    }
}
