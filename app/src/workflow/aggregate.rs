//! Counts and sums over a customer's recent events of one name: what a
//! window holds and how a field adds up, decided once for the engine, the
//! designer and the backtest alike.

use super::rules::as_number;
use crate::ingest::mapping::Path;
use serde_json::Value;

const HOUR_MS: i64 = 3_600_000;

/// The first moment (unix ms) a window of `hours` ending at `now` holds.
pub fn window_start(now: i64, hours: u32) -> i64 {
    now - i64::from(hours) * HOUR_MS
}

/// The sum of the number at `path` over `payloads`, with the conditions'
/// number rule (numbers, numeric text, true as 1); anything else adds 0.
pub fn sum_at<'a>(payloads: impl IntoIterator<Item = &'a Value>, path: &str) -> f64 {
    let Ok(path) = Path::parse(path) else { return 0.0 };
    payloads.into_iter().filter_map(|p| path.get(p).and_then(as_number)).sum()
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
    }
}
