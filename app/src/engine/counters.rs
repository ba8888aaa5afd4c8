//! The engine's own counters, kept in memory and rendered by `/metrics`:
//! events evaluated, runs started, actions performed by kind, events
//! quarantined, and each event's time from acceptance to commit.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Upper bounds of the latency buckets, in seconds.
pub const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Debug, Default, Clone)]
pub struct Histogram {
    pub counts: [u64; BUCKETS.len()],
    pub count: u64,
    pub sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[derive(Debug, Default, Clone)]
pub struct Figures {
    pub events: u64,
    pub timers: u64,
    pub runs_started: u64,
    /// Actions performed, by kind.
    pub actions: BTreeMap<String, u64>,
    /// Events stored without evaluation because evaluating them failed.
    pub quarantined: u64,
    /// Groups committed.
    pub groups: u64,
    /// Groups evaluated while the group before them committed.
    pub overlapped: u64,
    /// Groups evaluated again, one after another, because the group before
    /// them did not commit as evaluated (it failed, or held a duplicate).
    pub reevaluated: u64,
    /// Customers the hot state holds.
    pub hot_customers: u64,
    /// Customers read from the database because the hot state did not hold them.
    pub hot_misses: u64,
    /// From a group's acceptance to its commit.
    pub to_commit: Histogram,
}

#[derive(Debug, Default)]
pub struct Counters(Mutex<Figures>);

impl Counters {
    pub fn snapshot(&self) -> Figures {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut Figures)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }
}
