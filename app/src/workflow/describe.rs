//! A node in a marketer's words, for the places that name one outside the
//! canvas: what a run waits for ("Waiting for goal: order completed with the code").

use super::model::{Node, NodeKind, Span, Unit, Workflow};

/// An event name as words: `order_completed` → `order completed`.
pub fn event_words(name: &str) -> String {
    name.trim().replace('_', " ")
}

/// `30 minutes`, `1 day`.
pub fn span_words(s: &Span) -> String {
    let unit = match (s.unit, s.amount) {
        (Unit::Minutes, 1) => "minute",
        (Unit::Minutes, _) => "minutes",
        (Unit::Hours, 1) => "hour",
        (Unit::Hours, _) => "hours",
        (Unit::Days, 1) => "day",
        (Unit::Days, _) => "days",
    };
    format!("{} {unit}", s.amount)
}

/// What a run parked at a node of this kind waits for. Runs wait only at
/// delays, waits and goals; any other kind reads as where the run is.
pub fn waiting_for(kind: &NodeKind) -> String {
    match kind {
        NodeKind::Goal { event, match_offer_code, .. } => {
            format!("Waiting for goal: {}{}", event_words(event), if *match_offer_code { " with the code" } else { "" })
        }
        NodeKind::WaitForEvent { events, .. } => {
            let names: Vec<String> = events.iter().filter(|e| !e.trim().is_empty()).map(|e| event_words(e)).collect();
            if names.is_empty() {
                "Waiting for an event".into()
            } else {
                format!("Waiting for {}", names.join(" or "))
            }
        }
        NodeKind::Delay { span: Some(s), .. } => format!("Waiting out a delay of {}", span_words(s)),
        NodeKind::Delay { until_time_of_day: Some(t), .. } => format!("Waiting out a delay until {t} UTC"),
        NodeKind::Delay { .. } => "Waiting out a delay".into(),
        other => format!("At {}", other.label().to_lowercase()),
    }
}

/// What a run waiting at `node_id` of this version waits for; the bare id
/// when the version no longer has that node.
pub fn waiting_at(workflow: Option<&Workflow>, node_id: &str) -> String {
    match workflow.and_then(|w| w.node(node_id)) {
        Some(Node { kind, .. }) => waiting_for(kind),
        None => format!("Waiting at {node_id}"),
    }
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM` UTC, computed without a clock crate.
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::templates::abandoned_cart;

    #[test]
    fn a_waiting_run_says_what_it_waits_for_in_words() {
        let w = abandoned_cart();
        assert_eq!(waiting_at(Some(&w), "converted"), "Waiting for goal: order completed with the code");
        assert_eq!(waiting_at(Some(&w), "wait_checkout"), "Waiting for checkout started or order completed");
        assert_eq!(waiting_at(Some(&w), "gone"), "Waiting at gone");
        assert_eq!(waiting_at(None, "converted"), "Waiting at converted");
        let delay = NodeKind::Delay { span: Some(Span { amount: 1, unit: Unit::Hours }), until_time_of_day: None };
        assert_eq!(waiting_for(&delay), "Waiting out a delay of 1 hour");
        let at_nine = NodeKind::Delay { span: None, until_time_of_day: Some("09:00".into()) };
        assert_eq!(waiting_for(&at_nine), "Waiting out a delay until 09:00 UTC");
        assert_eq!(waiting_for(&NodeKind::blank("wait_for_event").unwrap()), "Waiting for an event");
        assert_eq!(waiting_for(&NodeKind::blank("webhook").unwrap()), "At webhook");
    }
}
