//! The live feed: what happens (events accepted, later runs, offers, alerts)
//! fanned out to every subscribed browser or API client. A bounded broadcast:
//! a slow subscriber misses messages and is told to resync, never slowing the
//! writer or anyone else.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::broadcast;

/// One message: a topic (`events`, …), a sequence id for resuming, and the whole object.
#[derive(Debug, Clone, Serialize)]
pub struct LiveMessage {
    pub id: u64,
    pub topic: &'static str,
    pub data: Arc<serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct Live {
    tx: broadcast::Sender<LiveMessage>,
    seq: Arc<AtomicU64>,
}

/// Messages a subscriber may fall behind by before it must resync.
const BUFFER: usize = 4096;

impl Default for Live {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(BUFFER);
        Live { tx, seq: Arc::new(AtomicU64::new(0)) }
    }
}

impl Live {
    /// Publishes to whoever listens now; with no listener it costs almost nothing.
    pub fn publish(&self, topic: &'static str, data: impl Serialize) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        match serde_json::to_value(data) {
            Ok(v) => {
                let id = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
                let _ = self.tx.send(LiveMessage { id, topic, data: Arc::new(v) });
            }
            Err(err) => tracing::warn!(topic, error = %err, "Live message not serialisable."),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveMessage> {
        self.tx.subscribe()
    }

    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}
