//! The workflow graph: nodes (what the marketer configured), edges between
//! named output ports, and settings. Serialised as versioned JSON.

use super::rules::RuleGroup;
use serde::{Deserialize, Serialize};

/// The JSON schema version written by this code; older versions stay readable.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Workflow {
    pub schema_version: u32,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    #[serde(default)]
    pub settings: Settings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Node {
    /// Unique within the workflow, stable across versions (used by diffs and traces).
    pub id: String,
    /// Where the node sits on the canvas.
    #[serde(default)]
    pub x: f64,
    #[serde(default)]
    pub y: f64,
    #[serde(flatten)]
    pub kind: NodeKind,
}

/// A connection from one node's output port to another node's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Edge {
    pub from: String,
    /// The output port: `next`, `yes`/`no`, `received`/`timed_out`, a split branch's label.
    pub port: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "policy")]
pub enum ReEntry {
    /// A customer goes through the workflow at most once.
    Once,
    /// Again only after this many hours since their last entry.
    AfterHours { hours: u32 },
    /// Every matching event starts a run.
    EveryTime,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Settings {
    pub re_entry: ReEntry,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { re_entry: ReEntry::Once }
    }
}

fn default_audience() -> String {
    "Customer service".into()
}

/// A length of time as the marketer wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Span {
    pub amount: u32,
    pub unit: Unit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Minutes,
    Hours,
    Days,
}

impl Span {
    pub fn week() -> Span {
        Span { amount: 7, unit: Unit::Days }
    }

    pub fn millis(self) -> i64 {
        let unit = match self.unit {
            Unit::Minutes => 60_000,
            Unit::Hours => 3_600_000,
            Unit::Days => 86_400_000,
        };
        i64::from(self.amount) * unit
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DiscountKind {
    Percent,
    FixedAmount,
    FreeShipping,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SplitBranch {
    pub label: String,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum ProfileChange {
    Set { attribute: String, value: String },
    Unset { attribute: String },
    AddTag { tag: String },
    RemoveTag { tag: String },
}

/// Every kind of node, closed: the executor matches it exhaustively, so a new
/// kind cannot compile without its behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeKind {
    /// Starts a run: events of this name from these sources (empty: any source), passing the filter.
    Trigger {
        #[serde(default)]
        sources: Vec<String>,
        event: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filter: Option<RuleGroup>,
    },
    /// Outputs `yes` or `no`.
    Condition {
        rules: RuleGroup,
    },
    /// Waits a span, or until a time of day (`HH:MM`, UTC).
    Delay {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        span: Option<Span>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_time_of_day: Option<String>,
    },
    /// Outputs `received` or `timed_out`. Events of any of these names for the
    /// same customer (and the same value of `correlate_field`, if set) that
    /// arrive after the trigger count, even before the wait is reached.
    WaitForEvent {
        events: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        correlate_field: Option<String>,
        timeout: Span,
    },
    /// A/B/n: one output per branch label, chosen deterministically per customer.
    Split {
        branches: Vec<SplitBranch>,
    },
    /// Issues a unique, single-use discount code.
    Offer {
        discount: DiscountKind,
        value: f64,
        code_prefix: String,
        valid_for: Span,
    },
    /// Raises an alert in the inbox, for a team (the audience).
    Alert {
        severity: Severity,
        message: String,
        #[serde(default = "default_audience")]
        audience: String,
    },
    /// Calls an outside system.
    Webhook {
        method: String,
        url: String,
        #[serde(default)]
        headers: Vec<(String, String)>,
        #[serde(default)]
        body: String,
    },
    UpdateProfile {
        changes: Vec<ProfileChange>,
    },
    /// Ends the run as converted when this event arrives within the window
    /// (optionally only when it redeems the run's offer code: the code at its
    /// source mapping's offer-code path, or an API redemption); otherwise the
    /// run completes unconverted.
    Goal {
        event: String,
        #[serde(default)]
        match_offer_code: bool,
        #[serde(default = "Span::week")]
        within: Span,
    },
}

impl NodeKind {
    /// The output ports this kind has; an empty list ends the path.
    pub fn ports(&self) -> Vec<String> {
        match self {
            NodeKind::Condition { .. } => vec!["yes".into(), "no".into()],
            NodeKind::WaitForEvent { .. } => vec!["received".into(), "timed_out".into()],
            NodeKind::Split { branches } => branches.iter().map(|b| b.label.clone()).collect(),
            NodeKind::Goal { .. } => Vec::new(),
            NodeKind::Trigger { .. }
            | NodeKind::Delay { .. }
            | NodeKind::Offer { .. }
            | NodeKind::Alert { .. }
            | NodeKind::Webhook { .. }
            | NodeKind::UpdateProfile { .. } => vec!["next".into()],
        }
    }

    /// A short name for people.
    pub fn label(&self) -> &'static str {
        match self {
            NodeKind::Trigger { .. } => "Trigger",
            NodeKind::Condition { .. } => "Condition",
            NodeKind::Delay { .. } => "Delay",
            NodeKind::WaitForEvent { .. } => "Wait for event",
            NodeKind::Split { .. } => "Split",
            NodeKind::Offer { .. } => "Offer",
            NodeKind::Alert { .. } => "Alert",
            NodeKind::Webhook { .. } => "Webhook",
            NodeKind::UpdateProfile { .. } => "Update profile",
            NodeKind::Goal { .. } => "Goal",
        }
    }
}

impl Workflow {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Where `port` of node `from` leads, if connected.
    pub fn next(&self, from: &str, port: &str) -> Option<&str> {
        self.edges.iter().find(|e| e.from == from && e.port == port).map(|e| e.to.as_str())
    }
}

/// The `type` names of every node kind, in the designer's palette order.
pub const KINDS: [&str; 10] =
    ["trigger", "condition", "delay", "wait_for_event", "split", "offer", "alert", "webhook", "update_profile", "goal"];

impl NodeKind {
    /// The `type` name of this kind, as in the JSON.
    pub fn type_name(&self) -> &'static str {
        match self {
            NodeKind::Trigger { .. } => "trigger",
            NodeKind::Condition { .. } => "condition",
            NodeKind::Delay { .. } => "delay",
            NodeKind::WaitForEvent { .. } => "wait_for_event",
            NodeKind::Split { .. } => "split",
            NodeKind::Offer { .. } => "offer",
            NodeKind::Alert { .. } => "alert",
            NodeKind::Webhook { .. } => "webhook",
            NodeKind::UpdateProfile { .. } => "update_profile",
            NodeKind::Goal { .. } => "goal",
        }
    }

    /// A new node of a kind as the palette drops it: sensible defaults, with
    /// the fields only the marketer can know left empty (validation asks for them).
    pub fn blank(type_name: &str) -> Option<NodeKind> {
        use super::rules::{Join, RuleGroup};
        let minutes = |amount| Span { amount, unit: Unit::Minutes };
        Some(match type_name {
            "trigger" => NodeKind::Trigger { sources: Vec::new(), event: String::new(), filter: None },
            "condition" => NodeKind::Condition { rules: RuleGroup { join: Join::All, items: Vec::new() } },
            "delay" => NodeKind::Delay { span: Some(minutes(30)), until_time_of_day: None },
            "wait_for_event" => {
                NodeKind::WaitForEvent { events: Vec::new(), correlate_field: None, timeout: minutes(30) }
            }
            "split" => NodeKind::Split {
                branches: vec![
                    SplitBranch { label: "A".into(), weight: 50 },
                    SplitBranch { label: "B".into(), weight: 50 },
                ],
            },
            "offer" => NodeKind::Offer {
                discount: DiscountKind::Percent,
                value: 10.0,
                code_prefix: "OFFER".into(),
                valid_for: Span { amount: 24, unit: Unit::Hours },
            },
            "alert" => {
                NodeKind::Alert { severity: Severity::Warning, message: String::new(), audience: default_audience() }
            }
            "webhook" => NodeKind::Webhook {
                method: "POST".into(),
                url: String::new(),
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: String::new(),
            },
            "update_profile" => NodeKind::UpdateProfile { changes: Vec::new() },
            "goal" => NodeKind::Goal { event: String::new(), match_offer_code: false, within: Span::week() },
            _ => return None,
        })
    }
}
