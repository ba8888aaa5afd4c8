//! Data shapes shared by the pages, the server fns and the REST API.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a user or API key may do. Ordered: every role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read-only access.
    Viewer,
    /// Workflows and sources.
    Editor,
    /// Everything, including users and API keys.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Editor, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Viewer => "Viewer",
            Role::Editor => "Editor",
            Role::Admin => "Admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "viewer" => Ok(Role::Viewer),
            "editor" => Ok(Role::Editor),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role '{other}'; expected admin, editor or viewer")),
        }
    }
}

/// Who is calling: the answer of `GET /api/v1/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Me {
    /// `user` for a browser session, `api_key` for a bearer key.
    pub kind: String,
    /// The user's or the key's id.
    pub id: String,
    /// The user's email or the key's name.
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct User {
    pub user_id: String,
    pub email: String,
    pub role: Role,
    /// Unix milliseconds.
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ApiKey {
    pub api_key_id: String,
    pub name: String,
    pub role: Role,
    /// The first characters of the key, to recognise it; the rest is never stored.
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A newly created key: the only time the secret is visible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CreatedApiKey {
    pub api_key: ApiKey,
    /// The full key; send it as `Authorization: Bearer <key>`. Shown once.
    pub secret: String,
}

/// One page of a list, with the cursor of the next page when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Facts the dashboard shows about this installation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SystemStatus {
    pub version: String,
    pub database: String,
    pub users: i64,
    pub api_keys: i64,
}

pub use crate::ingest::mapping::{Mapping, ProfileField};

/// A sender of events (a shop, a bank, an app) with its webhook and mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Source {
    pub source_id: String,
    pub name: String,
    /// URL-safe and unique; the webhook is `POST /hooks/{slug}`.
    pub slug: String,
    pub enabled: bool,
    pub mapping: Mapping,
    /// The signing secret, masked (`whsec_…1a2b`); the full secret is shown only on creation and rotation.
    pub secret_hint: String,
    /// While set, the secret before the last rotation is still accepted, until this time.
    pub previous_secret_until: Option<i64>,
    pub accepted_count: i64,
    pub duplicate_count: i64,
    pub rejected_count: i64,
    pub last_event_at: Option<i64>,
    pub created_at: i64,
}

/// A source together with its full signing secret: only in the answers of
/// create and rotate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SourceWithSecret {
    pub source: Source,
    /// Sign each request with it: `Nudge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
    pub secret: String,
}

/// An accepted event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Event {
    /// Nudge's id (time-ordered).
    pub event_id: String,
    pub source_id: String,
    /// The sender's event id (the value at the mapped event-id path).
    pub external_id: String,
    pub name: String,
    pub customer_id: String,
    /// Unix milliseconds: the mapped timestamp, or the receive time.
    pub occurred_at: i64,
    pub received_at: i64,
    #[cfg_attr(feature = "ssr", schema(value_type = Object))]
    pub payload: serde_json::Value,
    /// The offer code this event redeems, read from the path the source's
    /// mapping names for it (absent when it names none or the event has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_code: Option<String>,
}

/// A customer's profile, built from the events that name them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Customer {
    pub customer_id: String,
    /// Attributes set by the sources' profile mappings.
    #[cfg_attr(feature = "ssr", schema(value_type = Object))]
    pub attributes: serde_json::Value,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
    pub event_count: i64,
}

/// A customer with the latest events of their timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CustomerDetail {
    pub customer: Customer,
    /// Newest first, at most 100.
    pub events: Vec<Event>,
    /// The customer's runs, offers and alerts, newest first, at most 50 each.
    #[serde(default)]
    pub runs: Vec<Run>,
    #[serde(default)]
    pub offers: Vec<Offer>,
    #[serde(default)]
    pub alerts: Vec<Alert>,
}

/// A received event that could not be mapped, kept for replay once the mapping is fixed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DeadLetter {
    pub dead_letter_id: String,
    pub source_id: String,
    pub received_at: i64,
    #[cfg_attr(feature = "ssr", schema(value_type = Object))]
    pub payload: serde_json::Value,
    /// Why it was rejected, naming the path that failed.
    pub reason: String,
    pub replayed_at: Option<i64>,
    /// The event it became when replayed.
    pub replayed_event_id: Option<String>,
}

/// Filters of the events explorer and `GET /api/v1/events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFilter {
    pub source: Option<String>,
    pub name: Option<String>,
    pub customer: Option<String>,
    /// Received at or after (unix ms).
    pub from: Option<i64>,
    /// Received before (unix ms).
    pub to: Option<i64>,
}

/// Where a workflow is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WorkflowStatus {
    /// Never published.
    Draft,
    /// A published version runs against incoming events.
    Active,
    /// Published, but not starting or advancing runs.
    Paused,
    /// Hidden from the list; never runs.
    Archived,
}

impl WorkflowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowStatus::Draft => "draft",
            WorkflowStatus::Active => "active",
            WorkflowStatus::Paused => "paused",
            WorkflowStatus::Archived => "archived",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            WorkflowStatus::Draft => "Draft",
            WorkflowStatus::Active => "Active",
            WorkflowStatus::Paused => "Paused",
            WorkflowStatus::Archived => "Archived",
        }
    }
}

impl FromStr for WorkflowStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "draft" => Ok(WorkflowStatus::Draft),
            "active" => Ok(WorkflowStatus::Active),
            "paused" => Ok(WorkflowStatus::Paused),
            "archived" => Ok(WorkflowStatus::Archived),
            other => Err(format!("unknown status '{other}'; expected draft, active, paused or archived")),
        }
    }
}

/// A workflow in the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct WorkflowSummary {
    pub workflow_id: String,
    pub name: String,
    pub status: WorkflowStatus,
    /// The version that runs, once published.
    pub active_version: Option<i64>,
    pub latest_version: i64,
    /// The draft differs from the latest version.
    pub unpublished_changes: bool,
    pub created_by: String,
    pub created_at: i64,
    pub updated_by: String,
    pub updated_at: i64,
}

/// A workflow with its draft and what stops the draft from being published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct WorkflowDetail {
    #[serde(flatten)]
    pub summary: WorkflowSummary,
    /// The editable draft.
    pub draft: crate::workflow::Workflow,
    /// Send it back when saving: a save over a newer revision is refused (409).
    pub revision: i64,
    /// Validation problems of the draft; empty means it can be published.
    pub issues: Vec<crate::workflow::Issue>,
}

/// A published version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct WorkflowVersion {
    pub version: i64,
    pub published_by: String,
    pub published_at: i64,
    /// E.g. "Rolled back to version 2".
    pub note: Option<String>,
    pub definition: crate::workflow::Workflow,
}

/// A run of a workflow version for one customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Run {
    pub run_id: String,
    pub workflow_id: String,
    pub version: i64,
    pub customer_id: String,
    /// `waiting`, `completed`, `converted`, `failed` or `cancelled` (its
    /// workflow was archived while it waited): the core's run status.
    pub status: crate::workflow::eval::RunStatus,
    /// The node the run waits at.
    pub at_node: Option<String>,
    /// When its timer fires (unix ms).
    pub wake_at: Option<i64>,
    pub trigger_event_id: String,
    pub started_at: i64,
    pub updated_at: i64,
    pub ended_at: Option<i64>,
    /// The workflow's name (`None` if it is gone).
    #[serde(default)]
    pub workflow_name: Option<String>,
    /// While the run waits: what for, in words, from its version's node
    /// ("Waiting for goal: order completed with the code"); `wake_at` says until when.
    #[serde(default)]
    pub waiting_for: Option<String>,
    /// Its webhooks not delivered yet or failed: a run can be over while they are.
    #[serde(default)]
    pub action_health: ActionHealth,
}

/// A run's webhook deliveries that are not done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ActionHealth {
    /// Waiting for their first attempt.
    pub pending: i64,
    /// Pending again after a failed attempt.
    pub retrying: i64,
    /// Failed for good (an editor can retry them).
    pub failed: i64,
}

impl ActionHealth {
    /// True when a delivery failed, for good or for now (the runs filter `actions=failing`).
    pub fn failing(&self) -> bool {
        self.failed > 0 || self.retrying > 0
    }

    /// The runs list's badge, worst first: (words, tone), `None` when all is delivered.
    pub fn badge(&self) -> Option<(String, &'static str)> {
        let webhooks = |n: i64| if n == 1 { "webhook".to_string() } else { format!("{n} webhooks") };
        if self.failed > 0 {
            Some((format!("{} failed", webhooks(self.failed)), "danger"))
        } else if self.retrying > 0 {
            Some((format!("{} failing", webhooks(self.retrying)), "warn"))
        } else if self.pending > 0 {
            Some((format!("{} pending", webhooks(self.pending)), "off"))
        } else {
            None
        }
    }
}

/// One node a run passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RunStep {
    pub seq: i64,
    pub node: String,
    /// The output taken, or `waiting`, `completed`, `converted`, `failed`.
    pub outcome: String,
    pub detail: Option<String>,
    pub at: i64,
}

/// An action a run performed, with its delivery state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RunAction {
    pub action_key: String,
    pub node: String,
    pub kind: String,
    /// `pending` (a webhook not delivered yet), `done` or `failed`.
    pub status: crate::workflow::status::ActionStatus,
    /// Delivery attempts of a webhook (since its last retry); 0 for other kinds.
    pub attempts: i64,
    pub last_error: Option<String>,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: Run,
    pub steps: Vec<RunStep>,
    pub actions: Vec<RunAction>,
}

/// A unique, single-use discount code a run issued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Offer {
    pub code: String,
    pub workflow_id: String,
    pub run_id: String,
    pub customer_id: String,
    /// `percent`, `fixed_amount` or `free_shipping`.
    pub discount: String,
    pub value: f64,
    pub expires_at: i64,
    /// `active`, `redeemed` or `expired` (at the time of the answer).
    pub status: String,
    pub redeemed_at: Option<i64>,
    pub redeemed_by: Option<String>,
    pub created_at: i64,
}

/// An alert in the inbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Alert {
    pub alert_id: String,
    pub workflow_id: String,
    pub run_id: String,
    pub customer_id: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    pub audience: String,
    pub message: String,
    /// `open`, `acknowledged` or `resolved`: the core's alert status.
    pub status: crate::workflow::status::AlertStatus,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<i64>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<i64>,
    pub created_at: i64,
}

/// Engagement figures over a range (the dashboard's tiles).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Figures {
    pub events: i64,
    pub runs_started: i64,
    pub runs_converted: i64,
    pub offers_issued: i64,
    pub offers_redeemed: i64,
    pub alerts_raised: i64,
    /// Runs converted per run started (0 when none started).
    pub conversion_rate: f64,
    /// Median time from an event's arrival to the commit of the actions it caused.
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    /// Those times as a histogram: counts per bucket of `LATENCY_BOUNDS_MS`
    /// (upper bounds 1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 150, 250,
    /// 500, 1000, 2500, 5000, 10000 ms, then open), so live counts can move
    /// the quantiles between reads.
    #[serde(default)]
    pub latency_histogram: Vec<i64>,
}

/// Upper bounds (ms) of the latency histogram's buckets; the last is open.
pub const LATENCY_BOUNDS_MS: [i64; 20] =
    [1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 150, 250, 500, 1000, 2500, 5000, 10_000, i64::MAX];

/// What an installation has set up, for the dashboard's first steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Setup {
    /// A source exists.
    pub source: bool,
    /// A workflow has been published.
    pub workflow: bool,
    /// An event has been accepted.
    pub events: bool,
}

impl Setup {
    pub fn done(&self) -> bool {
        self.source && self.workflow && self.events
    }
}

/// A name and how often it occurred (top event names, sources, outputs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Ranked {
    pub name: String,
    /// The thing's id where the name is a label (a source's id).
    pub id: String,
    pub count: i64,
}

/// Offers issued and redeemed by one workflow in a range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct WorkflowOffers {
    pub workflow_id: String,
    pub name: String,
    pub issued: i64,
    pub redeemed: i64,
}

/// The dashboard: figures for a range and the range before it, open alerts,
/// top event names and sources, offers by workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct MetricsSummary {
    /// `1h`, `24h`, `7d` or `30d`.
    pub range: String,
    pub from: i64,
    pub to: i64,
    /// When the figures were read (unix ms): live counts after it add to them.
    pub at: i64,
    /// Only this workflow's figures (events are the installation's).
    pub workflow_id: Option<String>,
    pub current: Figures,
    pub previous: Figures,
    pub open_alerts: i64,
    pub top_events: Vec<Ranked>,
    pub top_sources: Vec<Ranked>,
    pub offers_by_workflow: Vec<WorkflowOffers>,
    /// Every source's and workflow's name by id: live counts carry ids.
    #[serde(default)]
    pub source_names: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub workflow_names: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub setup: Setup,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Point {
    /// The bucket's start (unix ms).
    pub t: i64,
    pub v: i64,
}

/// One counter over a range, in buckets of `step_ms` (every bucket present).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TimeSeries {
    pub metric: String,
    pub range: String,
    pub step_ms: i64,
    pub from: i64,
    pub to: i64,
    /// When the counts were read (unix ms).
    pub at: i64,
    pub points: Vec<Point>,
}

/// The metrics a time series can show.
pub const SERIES_METRICS: [&str; 8] = [
    "events",
    "runs_started",
    "runs_converted",
    "runs_completed",
    "offers_issued",
    "offers_redeemed",
    "alerts_raised",
    "webhooks",
];

/// A range's length, the rollup rows it reads (per minute or per hour) and
/// its chart's default bucket: `None` for an unknown range.
pub fn range_spec(range: &str) -> Option<(i64, i64, i64)> {
    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    match range {
        "1h" => Some((HOUR, MIN, MIN)),
        "24h" => Some((24 * HOUR, MIN, 15 * MIN)),
        "7d" => Some((7 * 24 * HOUR, HOUR, 2 * HOUR)),
        "30d" => Some((30 * 24 * HOUR, HOUR, 6 * HOUR)),
        _ => None,
    }
}

pub const RANGES: [&str; 4] = ["1h", "24h", "7d", "30d"];

/// The `q`-quantile (0..1) of a latency histogram given as counts per bucket
/// with these upper bounds, interpolated within its bucket; `None` when empty.
pub fn histogram_quantile(counts: &[i64], bounds: &[i64], q: f64) -> Option<f64> {
    let total: i64 = counts.iter().sum();
    if total <= 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut seen = 0i64;
    for (i, &n) in counts.iter().enumerate() {
        if n > 0 && (seen + n) as f64 >= rank {
            let lower = if i == 0 { 0 } else { bounds[i - 1] } as f64;
            // The open last bucket reports its lower bound: no made-up tail.
            let upper = bounds.get(i).copied().filter(|b| *b != i64::MAX).map_or(lower, |b| b as f64);
            let within = ((rank - seen as f64) / n as f64).clamp(0.0, 1.0);
            return Some(lower + (upper - lower) * within);
        }
        seen += n;
    }
    None
}

/// Runs through one node of a workflow version: entered, waiting there now,
/// how they left (by output), and where the node sits among the branches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FunnelStep {
    pub node: String,
    /// The node's kind, for people (`Wait for event`, …).
    pub kind: String,
    pub entered: i64,
    pub waiting: i64,
    /// Every outcome runs left by (outputs, `converted`, `completed`, `failed`), most first.
    pub exits: Vec<Ranked>,
    /// Branch depth: one more under each node with several outputs.
    #[serde(default)]
    pub depth: u32,
    /// The node and output this node is drawn under (none for the trigger).
    #[serde(default)]
    pub via_node: Option<String>,
    #[serde(default)]
    pub via_output: Option<String>,
    /// Each output of the node, taken or not, and where it leads.
    #[serde(default)]
    pub branches: Vec<crate::workflow::funnel::FunnelBranch>,
    /// Runs that reached the goal here.
    #[serde(default)]
    pub converted: i64,
    /// Runs that ended here without converting (their path stops here, the
    /// goal was missed, or they failed): the only drop-off.
    #[serde(default)]
    pub left: i64,
}

/// A workflow version's funnel over a range: entered → each branch → converted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Funnel {
    pub workflow_id: String,
    pub version: i64,
    pub range: String,
    pub entered: i64,
    pub converted: i64,
    /// Depth first from the trigger, each node under the output that leads to it.
    pub steps: Vec<FunnelStep>,
}

#[cfg(test)]
mod metric_tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_histogram_interpolated_within_a_bucket() {
        let bounds = [1, 2, 5, 10, i64::MAX];
        assert_eq!(histogram_quantile(&[0, 0, 0, 0, 0], &bounds, 0.5), None);
        // 10 events between 2 and 5 ms: the median is halfway.
        assert_eq!(histogram_quantile(&[0, 0, 10, 0, 0], &bounds, 0.5), Some(3.5));
        // 90 fast, 10 slow: p50 in the first bucket, p95 in the 5–10 ms one.
        let p95 = histogram_quantile(&[90, 0, 0, 10, 0], &bounds, 0.95).unwrap();
        assert!((p95 - 7.5).abs() < 1e-9, "{p95}");
        assert!(histogram_quantile(&[90, 0, 0, 10, 0], &bounds, 0.5).unwrap() <= 1.0);
        // The open bucket reports its floor.
        assert_eq!(histogram_quantile(&[0, 0, 0, 0, 3], &bounds, 0.99), Some(10.0));
        assert_eq!(range_spec("24h"), Some((86_400_000, 60_000, 900_000)));
        assert_eq!(range_spec("2w"), None);
    }
}

/// In live `metrics` messages only: open alerts worked (acknowledged or resolved), as −1 each.
pub const OPEN_ALERTS_DELTA: &str = "open_alerts";

/// One counter's increase since the last live `metrics` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct MetricCount {
    pub metric: String,
    /// Empty for the installation's total.
    pub workflow_id: String,
    pub key: String,
    pub n: i64,
}

/// The live `metrics` message: what the counters gained since the last one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct MetricTick {
    pub at: i64,
    pub counts: Vec<MetricCount>,
}

impl MetricTick {
    /// The increase of `metric` (un-keyed) for `workflow` ("" = the total).
    pub fn gain(&self, metric: &str, workflow: &str) -> i64 {
        self.counts
            .iter()
            .filter(|c| c.metric == metric && c.workflow_id == workflow && c.key.is_empty())
            .map(|c| c.n)
            .sum()
    }
}
