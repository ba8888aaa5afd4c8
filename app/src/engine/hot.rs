//! The engine's hot state: for each customer seen lately, what evaluation
//! reads — the profile, waiting runs, last entries, recent offers and hourly
//! window counters — as the database holds it after the last commit.
//!
//! Bounded (least recently used customers go first); a customer not here is
//! read from the database, unless the cache is *complete*: it has held every
//! customer the database has since start-up (a fresh install, and nothing
//! evicted or lost since), so a customer not here is new and costs no read.
//! The database stays the truth: a failed commit or an eviction only costs
//! reads, never a wrong answer.

use crate::store::offers::OfferRow;
use crate::store::runs::RunRow;
use crate::workflow::aggregate::Window;
use lru::LruCache;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;

/// Customers kept when the configuration does not say.
pub const DEFAULT_CUSTOMERS: usize = 1_000_000;

/// What evaluation knows of one customer.
#[derive(Debug, Clone)]
pub struct Customer {
    pub profile: Value,
    /// `None` for a customer never seen before.
    pub last_seen_at: Option<i64>,
    /// Runs waiting for an event or a timer, by run id, as stored (their
    /// state as JSON text: a parsed state takes a few times the memory).
    pub waiting: Vec<RunRow>,
    /// When the customer last entered each workflow.
    pub entered: Entered,
    /// Offers issued in the lookback (the ones an event can redeem).
    pub offers: Vec<OfferRow>,
    /// Events of each counted name, by the hour.
    pub windows: Windows,
    /// The windows' shape (see `evaluate::Counted`) they were counted for.
    pub windows_for: u64,
}

impl Customer {
    /// A customer the database does not have yet.
    pub fn new(windows_for: u64) -> Customer {
        Customer {
            profile: Value::Object(serde_json::Map::new()),
            last_seen_at: None,
            waiting: Vec::new(),
            entered: Entered::default(),
            offers: Vec::new(),
            windows: Windows::default(),
            windows_for,
        }
    }
}

/// A customer's windows by event name: one or two, in a vector (a hash map
/// of so few costs several times its entries).
#[derive(Debug, Clone, Default)]
pub struct Windows(Vec<(Box<str>, Window)>);

impl Windows {
    pub fn get(&self, event: &str) -> Option<&Window> {
        self.0.iter().find(|(name, _)| &**name == event).map(|(_, w)| w)
    }

    /// The window of `event`, made with `new` when there is none.
    pub fn get_or_insert_with(&mut self, event: &str, new: impl FnOnce() -> Window) -> &mut Window {
        let i = match self.0.iter().position(|(name, _)| &**name == event) {
            Some(i) => i,
            None => {
                self.0.push((event.into(), new()));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut Window) -> bool) {
        self.0.retain_mut(|(name, w)| keep(name, w));
        self.0.shrink_to_fit();
    }

    pub fn clear(&mut self) {
        self.0 = Vec::new();
    }
}

/// When a customer last entered each workflow: a few entries, their ids
/// shared with the published versions (a map per customer would cost more
/// than the entries).
#[derive(Debug, Clone, Default)]
pub struct Entered(Vec<(Arc<str>, i64)>);

impl Entered {
    pub fn get(&self, workflow_id: &str) -> Option<i64> {
        self.0.iter().find(|(id, _)| &**id == workflow_id).map(|(_, at)| *at)
    }

    pub fn set(&mut self, workflow_id: Arc<str>, at: i64) {
        match self.0.iter_mut().find(|(id, _)| *id == workflow_id) {
            Some((_, last)) => *last = at,
            None => self.0.push((workflow_id, at)),
        }
    }
}

/// A waiting run as the cache keeps it: what its stored row holds, without
/// what the key or the status already say (its customer, `waiting`) or what
/// is read when needed (the trigger payload); its ids as 16 bytes, its
/// workflow and node names shared with the other runs.
#[derive(Debug)]
struct KeptRun {
    run_id: Key,
    workflow_id: Arc<str>,
    version: i64,
    at_node: Option<Arc<str>>,
    wake_at: Option<i64>,
    state: Box<str>,
    trigger_event_id: Key,
    started_at: i64,
    updated_at: i64,
}

/// One of Nudge's ids in 16 bytes, or any other text as it is.
#[derive(Debug)]
enum Key {
    Uuid([u8; 16]),
    Text(Box<str>),
}

impl Key {
    fn new(text: String) -> Key {
        match crate::store::id::bytes(&text) {
            Some(b) => Key::Uuid(b),
            None => Key::Text(text.into_boxed_str()),
        }
    }

    fn into_text(self) -> String {
        match self {
            Key::Uuid(b) => crate::store::id::text(b),
            Key::Text(t) => t.into(),
        }
    }
}

/// The one shared copy of a name (workflow ids, node names: a few hundred).
fn shared(names: &mut HashSet<Arc<str>>, name: &str) -> Arc<str> {
    match names.get(name) {
        Some(n) => n.clone(),
        None => {
            let n: Arc<str> = Arc::from(name);
            names.insert(n.clone());
            n
        }
    }
}

/// A customer as the cache keeps it: the profile as JSON text (a parsed
/// object costs several times its text), waiting runs compact, offers in a
/// slice of their size, the rest as evaluation uses it.
#[derive(Debug)]
struct Kept {
    profile: Box<str>,
    /// Exactly as long as it is (collected in place from the rows, a vector
    /// would keep their larger allocation).
    waiting: Box<[KeptRun]>,
    last_seen_at: Option<i64>,
    entered: Entered,
    offers: Box<[OfferRow]>,
    windows: Windows,
    windows_for: u64,
}

impl Kept {
    fn new(customer: Customer, names: &mut HashSet<Arc<str>>) -> Kept {
        let Customer { profile, last_seen_at, waiting, mut entered, offers, windows, windows_for } = customer;
        let profile = match profile {
            Value::Object(m) if m.is_empty() => Box::from(""),
            p => p.to_string().into_boxed_str(),
        };
        let waiting = waiting
            .into_iter()
            .map(|r| KeptRun {
                run_id: Key::new(r.run_id),
                workflow_id: shared(names, &r.workflow_id),
                version: r.version,
                at_node: r.at_node.map(|n| shared(names, &n)),
                wake_at: r.wake_at,
                state: r.state.into_boxed_str(),
                trigger_event_id: Key::new(r.trigger_event_id),
                started_at: r.started_at,
                updated_at: r.updated_at,
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        entered.0.shrink_to_fit();
        Kept { profile, waiting, last_seen_at, entered, offers: offers.into_boxed_slice(), windows, windows_for }
    }

    fn into_customer(self, customer_id: &str) -> Customer {
        let profile = match &*self.profile {
            "" => Value::Object(serde_json::Map::new()),
            text => serde_json::from_str(text).unwrap_or_else(|_| Value::Object(serde_json::Map::new())),
        };
        let waiting = self
            .waiting
            .into_vec()
            .into_iter()
            .map(|r| RunRow {
                run_id: r.run_id.into_text(),
                workflow_id: r.workflow_id.to_string(),
                version: r.version,
                customer_id: customer_id.to_string(),
                status: crate::workflow::eval::RunStatus::Waiting.as_str().to_string(),
                at_node: r.at_node.map(|n| n.to_string()),
                wake_at: r.wake_at,
                state: r.state.into(),
                trigger_event_id: r.trigger_event_id.into_text(),
                started_at: r.started_at,
                updated_at: r.updated_at,
                ended_at: None,
                trigger_payload: None,
            })
            .collect();
        Customer {
            profile,
            last_seen_at: self.last_seen_at,
            waiting,
            entered: self.entered,
            offers: self.offers.into_vec(),
            windows: self.windows,
            windows_for: self.windows_for,
        }
    }
}

/// The cache itself.
#[derive(Debug)]
pub struct Hot {
    /// Unbounded for the crate, bounded by `put`: a bounded one allocates
    /// its table for the whole capacity at once (36 MB for a million).
    customers: LruCache<Box<str>, Kept>,
    capacity: usize,
    /// The workflow ids and node names the kept runs share.
    names: HashSet<Arc<str>>,
    complete: bool,
    /// Customers read from the database since start-up.
    pub misses: u64,
}

impl Hot {
    /// A cache of at most `capacity` customers; `complete` when the database
    /// has no customer yet.
    pub fn new(capacity: usize, complete: bool) -> Hot {
        Hot { customers: LruCache::unbounded(), capacity: capacity.max(1), names: HashSet::new(), complete, misses: 0 }
    }

    /// Takes a customer out for a group (it comes back with `put` once the
    /// group commits).
    pub fn take(&mut self, customer: &str) -> Option<Customer> {
        self.customers.pop(customer).map(|k| k.into_customer(customer))
    }

    /// Whether a customer not here is one the database does not have.
    pub fn complete(&self) -> bool {
        self.complete
    }

    /// Keeps a customer as a commit left it; the least recently used one
    /// goes when the cache is full.
    pub fn put(&mut self, customer: String, state: Customer) {
        self.customers.put(customer.into_boxed_str(), Kept::new(state, &mut self.names));
        while self.customers.len() > self.capacity {
            self.customers.pop_lru();
            self.complete = false;
        }
    }

    /// Forgets what was taken out or changed outside evaluation: customers not
    /// here are read from the database from now on.
    pub fn lose(&mut self) {
        self.complete = false;
    }

    /// Drops these customers (kept ahead of a commit that did not land as
    /// evaluated): they and those not here are read from the database.
    pub fn forget<'a>(&mut self, customers: impl Iterator<Item = &'a String>) {
        for c in customers {
            self.customers.pop(c.as_str());
        }
        self.complete = false;
    }

    /// Drops the waiting runs of `workflow_id` (archived: its runs ended).
    pub fn end_runs_of(&mut self, workflow_id: &str) {
        for (_, c) in self.customers.iter_mut() {
            if c.waiting.iter().any(|r| &*r.workflow_id == workflow_id) {
                let mut left = std::mem::take(&mut c.waiting).into_vec();
                left.retain(|r| &*r.workflow_id != workflow_id);
                c.waiting = left.into_boxed_slice();
            }
        }
    }

    /// Customers held.
    pub fn len(&self) -> usize {
        self.customers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.customers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eviction_or_a_loss_makes_the_cache_read_through() {
        let mut hot = Hot::new(2, true);
        hot.put("ana".into(), Customer::new(0));
        hot.put("bo".into(), Customer::new(0));
        // Putting a customer back is no eviction.
        let ana = hot.take("ana").unwrap();
        hot.put("ana".into(), ana);
        assert!(hot.complete());
        hot.put("cy".into(), Customer::new(0));
        assert!(!hot.complete(), "bo was evicted: a miss may be a known customer");
        assert_eq!(hot.len(), 2);
        assert!(hot.take("bo").is_none());
        // The profile comes back as it went in.
        let mut dee = Customer::new(0);
        dee.profile = serde_json::json!({ "tier": "gold", "orders": 3 });
        hot.put("dee".into(), dee);
        assert_eq!(hot.take("dee").unwrap().profile, serde_json::json!({ "tier": "gold", "orders": 3 }));
        hot.put("eve".into(), Customer::new(0));
        assert_eq!(hot.take("eve").unwrap().profile, serde_json::json!({}));
        let mut hot = Hot::new(2, true);
        hot.lose();
        assert!(!hot.complete());
    }

    #[test]
    fn waiting_runs_come_back_as_their_stored_rows_and_end_with_their_workflow() {
        let row = |run: &str, workflow: &str| RunRow {
            run_id: run.into(),
            workflow_id: workflow.into(),
            version: 3,
            customer_id: "ana".into(),
            status: "waiting".into(),
            at_node: Some("wait_checkout".into()),
            wake_at: Some(1_800),
            state: r#"{"trigger":{"name":"cart_updated"}}"#.into(),
            trigger_event_id: "e1".into(),
            started_at: 1_000,
            updated_at: 1_200,
            ended_at: None,
            trigger_payload: Some(r#"{"cart":{}}"#.into()),
        };
        let mut hot = Hot::new(10, true);
        let mut ana = Customer::new(0);
        ana.waiting = vec![row("r1", "w1"), row("r2", "w2")];
        hot.put("ana".into(), ana);
        let back = hot.take("ana").unwrap();
        let expected = RunRow { trigger_payload: None, ..row("r1", "w1") };
        assert_eq!(format!("{:?}", back.waiting[0]), format!("{expected:?}"), "the payload is read again when needed");
        assert_eq!(back.waiting[1].workflow_id, "w2");
        hot.put("ana".into(), back);
        hot.end_runs_of("w1");
        let left = hot.take("ana").unwrap();
        assert_eq!(left.waiting.len(), 1);
        assert_eq!(left.waiting[0].run_id, "r2");
        // Nudge's own ids are kept in 16 bytes and come back as their text.
        let (run, event) = (crate::store::new_id(), crate::store::new_id());
        let mut bo = Customer::new(0);
        bo.waiting = vec![RunRow { trigger_event_id: event.clone(), ..row(&run, "w1") }];
        hot.put("bo".into(), bo);
        let bo = hot.take("bo").unwrap();
        assert_eq!((bo.waiting[0].run_id.as_str(), bo.waiting[0].trigger_event_id.as_str()), (&*run, &*event));
        assert_eq!(bo.waiting[0].at_node.as_deref(), Some("wait_checkout"));
    }
}
