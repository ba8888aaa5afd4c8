//! Where an action stands in the ledger (pending delivery, done, failed), as
//! the executor records it and the API and pages read it: one enum, not strings.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The `kind` the ledger records for a webhook call: the only action that is
/// delivered later (and so can be pending, fail, or be retried).
pub const WEBHOOK_KIND: &str = "call_webhook";

/// An action's state in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// A webhook not delivered yet: due for its first attempt, or retrying after failed ones.
    Pending,
    /// Performed (offers, alerts, profile changes at once; a webhook once delivered).
    Done,
    /// A webhook that failed for good (attempts used up, or an error not worth retrying).
    Failed,
}

impl ActionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Pending => "pending",
            ActionStatus::Done => "done",
            ActionStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ActionStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(ActionStatus::Pending),
            "done" => Ok(ActionStatus::Done),
            "failed" => Ok(ActionStatus::Failed),
            other => Err(format!("unknown action status '{other}'; expected pending, done or failed")),
        }
    }
}

/// Where a raised alert stands: open until someone acknowledges it, then
/// resolved. The store's updates guard the same transitions, so two people
/// clicking at once cannot both move it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Open,
    Acknowledged,
    Resolved,
}

impl AlertStatus {
    pub const ALL: [AlertStatus; 3] = [AlertStatus::Open, AlertStatus::Acknowledged, AlertStatus::Resolved];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Resolved => "resolved",
        }
    }

    /// Only an open alert can be acknowledged.
    pub fn may_acknowledge(self) -> bool {
        self == AlertStatus::Open
    }

    /// Any alert not resolved yet can be resolved (acknowledged or not).
    pub fn may_resolve(self) -> bool {
        self != AlertStatus::Resolved
    }
}

impl fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AlertStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AlertStatus::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown alert status '{s}'; expected open, acknowledged or resolved"))
    }
}

/// How one action reads for people, from its kind, status, attempts and
/// last error: (words, tone), the tone being `ok`, `warn`, `danger` or `off`.
pub fn action_state(kind: &str, status: ActionStatus, attempts: i64, failing: bool) -> (&'static str, &'static str) {
    let delivery = kind == WEBHOOK_KIND;
    match status {
        ActionStatus::Done if delivery => ("delivered", "ok"),
        ActionStatus::Done => ("done", "ok"),
        ActionStatus::Pending if failing || attempts > 0 => ("retrying", "warn"),
        ActionStatus::Pending => ("pending", "off"),
        ActionStatus::Failed => ("failed", "danger"),
    }
}

/// The attempts column: the attempts a webhook made; nothing for actions
/// that are performed in the run's own step and never delivered.
pub fn attempts_text(kind: &str, attempts: i64) -> String {
    if kind == WEBHOOK_KIND {
        attempts.to_string()
    } else {
        "—".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_is_acknowledged_only_when_open_and_resolved_once() {
        use AlertStatus::*;
        assert_eq!([Open, Acknowledged, Resolved].map(AlertStatus::may_acknowledge), [true, false, false]);
        assert_eq!([Open, Acknowledged, Resolved].map(AlertStatus::may_resolve), [true, true, false]);
        for a in AlertStatus::ALL {
            assert_eq!(a.as_str().parse::<AlertStatus>(), Ok(a));
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        assert!("closed".parse::<AlertStatus>().is_err());
    }

    #[test]
    fn action_states_read_as_delivery_words_and_non_deliveries_have_no_attempts() {
        for s in [ActionStatus::Pending, ActionStatus::Done, ActionStatus::Failed] {
            assert_eq!(s.as_str().parse::<ActionStatus>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
        }
        assert!("sent".parse::<ActionStatus>().is_err());
        assert_eq!(action_state(WEBHOOK_KIND, ActionStatus::Done, 1, false), ("delivered", "ok"));
        assert_eq!(action_state("issue_offer", ActionStatus::Done, 0, false), ("done", "ok"));
        assert_eq!(action_state(WEBHOOK_KIND, ActionStatus::Pending, 0, false), ("pending", "off"));
        assert_eq!(action_state(WEBHOOK_KIND, ActionStatus::Pending, 1, true), ("retrying", "warn"));
        assert_eq!(action_state(WEBHOOK_KIND, ActionStatus::Failed, 2, true), ("failed", "danger"));
        assert_eq!(attempts_text("issue_offer", 0), "—");
        assert_eq!(attempts_text(WEBHOOK_KIND, 2), "2");
    }
}
