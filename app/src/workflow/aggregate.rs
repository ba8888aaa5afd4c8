//! Counts and sums over a customer's recent events of one name: what a
//! window holds and how a field adds up, decided once for the engine, the
//! designer and the backtest alike.
//!
//! Windows count by the hour: each event adds to its acceptance hour's
//! counter, and a window of N hours holds the counters from the hour that
//! was N hours ago (whole) to now. So a window never misses an event of the
//! last N hours and may hold up to one hour more; the engine keeps a few
//! numbers per customer and hour instead of re-reading payloads.

use super::rules::as_number;
use crate::ingest::mapping::Path;
use serde_json::Value;
use std::sync::Arc;

pub const HOUR_MS: i64 = 3_600_000;

/// The hour (hours since the epoch) `at` (unix ms) falls in.
pub fn hour_of(at: i64) -> i64 {
    at.div_euclid(HOUR_MS)
}

/// The first hour a window of `hours` ending at `now` holds, whole.
pub fn first_hour(now: i64, hours: u32) -> i64 {
    hour_of(now - i64::from(hours) * HOUR_MS)
}

/// The first moment (unix ms) a window of `hours` ending at `now` holds.
pub fn window_start(now: i64, hours: u32) -> i64 {
    first_hour(now, hours) * HOUR_MS
}

/// The number at `path` in `payload` with the conditions' number rule
/// (numbers, numeric text, true as 1); anything else adds 0.
fn number_at(payload: &Value, path: &Path) -> f64 {
    path.get(payload).and_then(as_number).unwrap_or(0.0)
}

/// The sum of the number at `path` over `payloads`, with the conditions'
/// number rule (numbers, numeric text, true as 1); anything else adds 0.
pub fn sum_at<'a>(payloads: impl IntoIterator<Item = &'a Value>, path: &str) -> f64 {
    let Ok(path) = Path::parse(path) else { return 0.0 };
    payloads.into_iter().map(|p| number_at(p, &path)).sum()
}

/// The fields some window of an event name adds up, as written in the
/// conditions and parsed, once for every customer's window of that name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fields(Arc<[(String, Option<Path>)]>);

impl Fields {
    pub fn new(paths: &[String]) -> Fields {
        Fields(paths.iter().map(|p| (p.clone(), Path::parse(p).ok())).collect())
    }
}

/// A customer's events of one name, counted by the hour: what count and sum
/// conditions over that name read. Compact, as the engine keeps one per
/// customer and counted name: the hours in order, each with its count, and
/// the sums of the shared fields in one array (`fields.len()` per hour).
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    fields: Fields,
    /// (hour, events that hour), oldest first.
    hours: Vec<(i64, u64)>,
    sums: Vec<f64>,
}

impl Window {
    /// An empty window summing `fields`.
    pub fn new(fields: &Fields) -> Window {
        Window { fields: fields.clone(), hours: Vec::new(), sums: Vec::new() }
    }

    /// Counts an event accepted at `at`.
    pub fn add(&mut self, at: i64, payload: &Value) {
        let n = self.fields.0.len();
        let hour = hour_of(at);
        // Events come in acceptance order, so nearly always to the last hour.
        let i = match self.hours.iter().rposition(|(h, _)| *h <= hour) {
            Some(i) if self.hours[i].0 == hour => i,
            found => {
                let i = found.map_or(0, |i| i + 1);
                self.hours.insert(i, (hour, 0));
                self.sums.splice(i * n..i * n, std::iter::repeat_n(0.0, n));
                i
            }
        };
        self.hours[i].1 += 1;
        for (sum, (_, path)) in self.sums[i * n..(i + 1) * n].iter_mut().zip(self.fields.0.iter()) {
            if let Some(path) = path {
                *sum += number_at(payload, path);
            }
        }
    }

    /// The index of the first hour a window of `hours` ending at `now` holds.
    fn first_index(&self, now: i64, hours: u32) -> usize {
        let first = first_hour(now, hours);
        self.hours.partition_point(|(h, _)| *h < first)
    }

    /// How many events the window of `hours` ending at `now` holds.
    pub fn count(&self, now: i64, hours: u32) -> u64 {
        self.hours[self.first_index(now, hours)..].iter().map(|(_, c)| c).sum()
    }

    /// The sum of `path` over the window of `hours` ending at `now` (0 for a
    /// path this window does not add up).
    pub fn sum(&self, now: i64, hours: u32, path: &str) -> f64 {
        let n = self.fields.0.len();
        let Some(f) = self.fields.0.iter().position(|(p, _)| p == path) else { return 0.0 };
        (self.first_index(now, hours)..self.hours.len()).map(|i| self.sums[i * n + f]).sum()
    }

    /// Forgets the hours before the window of `hours` ending at `now`.
    pub fn prune(&mut self, now: i64, hours: u32) {
        let from = self.first_index(now, hours);
        if from > 0 {
            self.hours.drain(..from);
            self.sums.drain(..from * self.fields.0.len());
        }
        self.hours.shrink_to_fit();
        self.sums.shrink_to_fit();
    }

    /// Whether nothing is counted.
    pub fn is_empty(&self) -> bool {
        self.hours.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_sum_adds_numbers_and_numeric_text_with_the_conditions_rule() {
        let orders =
            [json!({"total": 10}), json!({"total": "2.5"}), json!({"total": true}), json!({"total": "n/a"}), json!({})];
        assert_eq!(sum_at(&orders, "$.total"), 13.5);
        assert_eq!(sum_at(&orders, "not a path ["), 0.0);
        assert_eq!(window_start(10 * HOUR_MS, 3), 7 * HOUR_MS);
        // A window starts at the top of the hour `hours` ago.
        assert_eq!(window_start(10 * HOUR_MS + 1_000, 3), 7 * HOUR_MS);
    }

    #[test]
    fn a_window_counts_and_sums_by_the_hour_with_the_same_number_rule() {
        let paths = vec!["$.total".to_string(), "$.items".to_string()];
        let mut w = Window::new(&Fields::new(&paths));
        let now = 100 * HOUR_MS + 30 * 60_000;
        // 25 h ago (outside a 24 h window), 24.2 h ago (its hour is whole in it), now.
        w.add(now - 25 * HOUR_MS, &json!({"total": 100}));
        w.add(now - 24 * HOUR_MS - 12 * 60_000, &json!({"total": "2.5", "items": 3}));
        w.add(now, &json!({"total": true}));
        assert_eq!(w.count(now, 24), 2);
        assert_eq!(w.sum(now, 24, "$.total"), 3.5);
        assert_eq!(w.sum(now, 24, "$.items"), 3.0);
        assert_eq!(w.sum(now, 24, "$.other"), 0.0);
        assert_eq!(w.count(now, 48), 3);
        // The hour-by-hour sum equals the payload rule's sum over the same events.
        let held = [json!({"total": "2.5", "items": 3}), json!({"total": true})];
        assert_eq!(w.sum(now, 24, "$.total"), sum_at(&held, "$.total"));
        // An event of an earlier hour arriving late (a restart's recount) goes in its place.
        w.add(now - 30 * HOUR_MS, &json!({"total": 7, "items": 1}));
        assert_eq!(w.count(now, 48), 4);
        assert_eq!(w.sum(now, 48, "$.items"), 4.0);
        assert_eq!(w.sum(now, 26, "$.total"), 103.5);
        w.prune(now, 24);
        assert_eq!(w.count(now, 48), 2);
        assert_eq!(w.sum(now, 48, "$.total"), 3.5);
        assert!(!w.is_empty());
        w.prune(now + 100 * HOUR_MS, 24);
        assert!(w.is_empty());
    }
}
