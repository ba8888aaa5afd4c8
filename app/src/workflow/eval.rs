//! Evaluation: given a workflow, a run's state, an input (the triggering event,
//! a later event, or a timer), the customer's profile, the time and a random
//! seed, return the next state and the actions to perform. Pure and
//! deterministic: the executor persists what this returns and performs the
//! actions; tests and the designer's backtest call it directly.

use super::model::*;
use super::rules::{Facts, Operand, RuleGroup, RuleItem};
use super::validate::END;
use crate::ingest::mapping::Path;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How many nodes one step may pass before the run is failed (a guard against
/// loops in a workflow that skipped validation).
const STEP_BUDGET: usize = 256;
/// How many later events a run keeps for waits and goals it has not reached yet.
pub const INBOX_LIMIT: usize = 32;

/// An event as evaluation sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventData {
    /// Nudge's id of the event.
    pub id: String,
    pub name: String,
    /// The source's slug.
    pub source: String,
    /// The customer's external id.
    pub customer: String,
    /// When it happened (unix ms), as the sender says.
    pub at: i64,
    /// When Nudge accepted it (unix ms): what waits and goals judge by. (0 in
    /// states written before it was kept: `accepted` falls back to `at`.)
    #[serde(default)]
    pub accepted_at: i64,
    pub payload: Value,
    /// The offer code the event redeems: read at the path its source's mapping
    /// names, or Nudge's own record of an API redemption. Nothing else in a
    /// payload redeems.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_code: Option<String>,
}

impl EventData {
    /// When Nudge accepted the event (the sender's time for old states).
    pub fn accepted(&self) -> i64 {
        if self.accepted_at > 0 {
            self.accepted_at
        } else {
            self.at
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Parked at a delay, wait or goal until an event or its timer.
    Waiting,
    Completed,
    Converted,
    Failed,
    /// Ended from outside: its workflow was archived while it waited.
    Cancelled,
}

impl RunStatus {
    pub fn is_final(self) -> bool {
        self != RunStatus::Waiting
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Waiting => "waiting",
            RunStatus::Completed => "completed",
            RunStatus::Converted => "converted",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Every status, in the order people read them (filters, metrics).
    pub const ALL: [RunStatus; 5] =
        [RunStatus::Waiting, RunStatus::Completed, RunStatus::Converted, RunStatus::Failed, RunStatus::Cancelled];
}

impl std::str::FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunStatus::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = RunStatus::ALL.iter().map(|r| r.as_str()).collect();
            format!("unknown run status '{s}'; expected {}", names.join(", "))
        })
    }
}

/// How a waiting run ends when its workflow is archived: the status, the
/// trace step's outcome and its reason. The engine applies it to every run
/// the workflow still has waiting, in the transaction that archives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    pub status: RunStatus,
    pub outcome: &'static str,
    pub detail: String,
}

pub fn archived(by: &str) -> Ending {
    Ending {
        status: RunStatus::Cancelled,
        outcome: "cancelled",
        detail: format!("The workflow was archived by {by}; the run will not go on."),
    }
}

/// A discount code this run issued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssuedOffer {
    pub node: String,
    pub code: String,
    pub expires_at: i64,
}

/// Everything the executor persists about a run between steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub run_id: String,
    pub workflow_id: String,
    pub trigger: EventData,
    pub status: RunStatus,
    /// The node the run waits at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// When the waiting node's timer fires (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_at: Option<i64>,
    /// Events for this customer that arrived after the trigger and that a wait or
    /// goal not reached yet may need: this is what makes waits race-free.
    #[serde(default)]
    pub inbox: Vec<EventData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<IssuedOffer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What woke the run.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// A later event of the run's customer.
    Event(&'a EventData),
    /// The run's timer (ignored until `wake_at`).
    Timer,
}

/// What evaluation may look at besides the run: the customer's profile, the
/// values of the aggregates the workflow uses (see [`Workflow::aggregates`]),
/// the time and a random seed (for offer codes).
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub profile: Value,
    pub aggregates: Vec<(Operand, Value)>,
    /// Event time, never processing time: for an event, when it was accepted
    /// (its group was made durable); for a timer, when the engine looks (the
    /// timer then acts at its own due time, however late that look is).
    pub now: i64,
    pub seed: u64,
}

/// A side effect for the executor. `key` is derived from (run, node): the
/// executor's unique constraint on it makes every effect happen once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    IssueOffer { key: String, node: String, code: String, discount: DiscountKind, value: f64, expires_at: i64 },
    RaiseAlert { key: String, node: String, severity: Severity, audience: String, message: String },
    CallWebhook { key: String, node: String, method: String, url: String, headers: Vec<(String, String)>, body: String },
    UpdateProfile { key: String, node: String, changes: Vec<ProfileChange> },
}

impl Action {
    pub fn key(&self) -> &str {
        match self {
            Action::IssueOffer { key, .. }
            | Action::RaiseAlert { key, .. }
            | Action::CallWebhook { key, .. }
            | Action::UpdateProfile { key, .. } => key,
        }
    }
}

/// One node passed in a step, for the run's trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub node: String,
    /// The output taken (`next`, `yes`, a branch label…), or `waiting`,
    /// `converted`, `completed`, `failed`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The result of a step: the state to persist, the effects to perform, the trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub state: RunState,
    pub actions: Vec<Action>,
    pub trace: Vec<Trace>,
}

/// How one step moves a run through the funnel at one node: whether it
/// entered the node, and the output it left by (none while it waits there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelMove<'a> {
    pub node: &'a str,
    pub entered: bool,
    pub left_by: Option<&'a str>,
}

impl Step {
    /// The step's funnel moves. A node is entered when the run arrives, not
    /// when it resumes where it waited (`resumed_at`, the node the run waited
    /// at before this step); it is left by the output taken. The end marker
    /// and redemption notes are not nodes a run passes.
    pub fn funnel(&self, resumed_at: Option<&str>) -> Vec<FunnelMove<'_>> {
        self.trace
            .iter()
            .enumerate()
            .filter(|(_, t)| t.node != END && t.outcome != "redeemed")
            .map(|(i, t)| FunnelMove {
                node: &t.node,
                entered: !(i == 0 && resumed_at == Some(t.node.as_str())),
                left_by: (t.outcome != "waiting").then_some(t.outcome.as_str()),
            })
            .collect()
    }
}

struct RunFacts<'a> {
    event: &'a Value,
    profile: &'a Value,
    aggregates: &'a [(Operand, Value)],
}

impl Facts for RunFacts<'_> {
    fn event(&self) -> &Value {
        self.event
    }
    fn profile(&self) -> &Value {
        self.profile
    }
    fn aggregate(&self, operand: &Operand) -> Option<Value> {
        self.aggregates.iter().find(|(o, _)| o == operand).map(|(_, v)| v.clone())
    }
}

impl Workflow {
    pub fn trigger(&self) -> Option<&Node> {
        self.nodes.iter().find(|n| matches!(n.kind, NodeKind::Trigger { .. }))
    }

    /// Whether `event` starts a run of this workflow (source, name and filter).
    /// Whether the event is of the trigger's name and source: the cheap part
    /// of `triggered_by`, which needs no context (profile, aggregates).
    pub fn listens_to(&self, event: &EventData) -> bool {
        matches!(self.trigger(), Some(Node { kind: NodeKind::Trigger { sources, event: name, .. }, .. })
            if *name == event.name && (sources.is_empty() || sources.contains(&event.source)))
    }

    pub fn triggered_by(&self, event: &EventData, ctx: &Context) -> bool {
        let Some(Node { kind: NodeKind::Trigger { filter, .. }, .. }) = self.trigger() else {
            return false;
        };
        self.listens_to(event)
            && filter.as_ref().is_none_or(|f| {
                f.eval(&RunFacts { event: &event.payload, profile: &ctx.profile, aggregates: &ctx.aggregates })
            })
    }

    /// The aggregate operands the workflow's rules use, for the executor to compute.
    pub fn aggregates(&self) -> Vec<Operand> {
        fn collect(group: &RuleGroup, out: &mut Vec<Operand>) {
            for item in &group.items {
                match item {
                    RuleItem::Group(g) => collect(g, out),
                    RuleItem::Rule(r) => {
                        let aggregate = !matches!(r.operand, Operand::Event { .. } | Operand::Profile { .. });
                        if aggregate && !out.contains(&r.operand) {
                            out.push(r.operand.clone());
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        for n in &self.nodes {
            match &n.kind {
                NodeKind::Trigger { filter: Some(f), .. } => collect(f, &mut out),
                NodeKind::Condition { rules } => collect(rules, &mut out),
                _ => {}
            }
        }
        out
    }

    /// Event names a run may wait for (waits and goals): the only ones its inbox keeps.
    fn awaited(&self, name: &str) -> bool {
        self.nodes.iter().any(|n| match &n.kind {
            NodeKind::WaitForEvent { events, .. } => events.iter().any(|e| e == name),
            NodeKind::Goal { event, .. } => event == name,
            _ => false,
        })
    }
}

/// Whether a customer may enter again, given when they last entered.
pub fn may_enter(settings: &Settings, last_entered_at: Option<i64>, now: i64) -> bool {
    match (&settings.re_entry, last_entered_at) {
        (_, None) | (ReEntry::EveryTime, _) => true,
        (ReEntry::Once, Some(_)) => false,
        (ReEntry::AfterHours { hours }, Some(last)) => now - last >= i64::from(*hours) * 3_600_000,
    }
}

/// Starts a run on its triggering event and runs it until it waits or ends.
pub fn start(workflow: &Workflow, workflow_id: &str, run_id: &str, trigger: EventData, ctx: &Context) -> Step {
    let state = RunState {
        run_id: run_id.to_string(),
        workflow_id: workflow_id.to_string(),
        trigger,
        status: RunStatus::Waiting,
        at: None,
        wake_at: None,
        inbox: Vec::new(),
        offer: None,
        error: None,
    };
    let mut run = Runner::new(workflow, state, ctx);
    match workflow.trigger() {
        Some(t) => run.walk(&t.id, Entry::Arrive),
        None => run.fail(None, "the workflow has no trigger"),
    }
    run.finish()
}

/// Continues a waiting run with a later event or its timer.
pub fn advance(workflow: &Workflow, state: &RunState, input: Input<'_>, ctx: &Context) -> Step {
    let mut run = Runner::new(workflow, state.clone(), ctx);
    if state.status.is_final() {
        return run.finish();
    }
    let Some(at) = state.at.clone() else {
        run.fail(None, "the run waits nowhere");
        return run.finish();
    };
    let Some(node) = workflow.node(&at) else {
        run.fail(Some(&at), "the node the run waits at is not in its workflow version");
        return run.finish();
    };
    match input {
        Input::Timer => {
            if let Some(due) = state.wake_at.filter(|due| ctx.now >= *due) {
                // A timer looked at late acts at its due time: an offer's expiry,
                // the next wait's deadline are what they would have been on time.
                run.now = due;
                run.walk(&node.id, Entry::TimerFired);
            }
        }
        Input::Event(event) => {
            // A deadline that passed before this event was accepted wins: fire
            // the timer (at its due time) first, then offer the event to
            // wherever the run waits now. One accepted before the deadline
            // wins over the timeout, however late either is looked at.
            if let Some(due) = state.wake_at.filter(|due| ctx.now >= *due) {
                run.now = due;
                run.walk(&node.id, Entry::TimerFired);
                run.now = ctx.now;
            }
            let waiting_at = match (&run.state.status, &run.state.at) {
                (RunStatus::Waiting, Some(at)) => workflow.node(at),
                _ => None,
            };
            let Some(node) = waiting_at else { return run.finish() };
            if run.matches_waiting(node, event) {
                run.walk(&node.id, Entry::Received(event));
            } else if let Some(goal) = run.goal_reached_early(event) {
                // The customer converted while the run waited elsewhere: the
                // goal ends the run, and nothing on the way to it happens.
                let detail = format!("{} {} while waiting at {}", event.name, event.id, node.id);
                run.end(&goal, RunStatus::Converted, Some(detail));
            } else {
                run.keep(event);
            }
        }
    }
    run.finish()
}

/// Whether an event named `name` from `source`, accepted at `now`, can
/// change a run of `workflow` waiting with its timer at `wake_at` (by
/// `advance` or `hold`): its deadline has passed, the workflow waits for
/// or counts that event somewhere, or it is Nudge's record of a redemption.
/// Any other event leaves the run as it is, so the engine need not load it.
pub fn concerns(workflow: &Workflow, wake_at: Option<i64>, name: &str, source: &str, now: i64) -> bool {
    wake_at.is_some_and(|due| now >= due)
        || workflow.awaited(name)
        || (name == OFFER_REDEEMED && source == NUDGE_SOURCE)
}

/// Keeps an event for a run that may not advance now (its workflow is
/// paused): it waits in the inbox, so a checkout during the pause still
/// counts once the workflow resumes.
pub fn hold(workflow: &Workflow, state: &RunState, event: &EventData, ctx: &Context) -> Step {
    let mut run = Runner::new(workflow, state.clone(), ctx);
    if !state.status.is_final() {
        run.keep(event);
    }
    run.finish()
}

/// The event name Nudge records when an offer is redeemed through the API
/// (source `nudge`); a goal that requires the run's code counts it too.
pub const OFFER_REDEEMED: &str = "offer_redeemed";
/// The source of the events Nudge records itself.
pub const NUDGE_SOURCE: &str = "nudge";

/// How the runner enters a node.
enum Entry<'e> {
    /// Reached by following an edge (or the trigger at start).
    Arrive,
    /// The node's timer is due.
    TimerFired,
    /// The event the node waits for arrived.
    Received(&'e EventData),
}

struct Runner<'w> {
    workflow: &'w Workflow,
    state: RunState,
    ctx: &'w Context,
    /// The step's time: `ctx.now`, or a timer's due time while it fires.
    now: i64,
    profile: Value,
    actions: Vec<Action>,
    trace: Vec<Trace>,
}

impl<'w> Runner<'w> {
    fn new(workflow: &'w Workflow, state: RunState, ctx: &'w Context) -> Self {
        Runner {
            workflow,
            state,
            ctx,
            now: ctx.now,
            profile: ctx.profile.clone(),
            actions: Vec::new(),
            trace: Vec::new(),
        }
    }

    fn finish(self) -> Step {
        Step { state: self.state, actions: self.actions, trace: self.trace }
    }

    fn record(&mut self, node: &str, outcome: &str, detail: Option<String>) {
        self.trace.push(Trace { node: node.to_string(), outcome: outcome.to_string(), detail });
    }

    fn fail(&mut self, node: Option<&str>, why: &str) {
        self.state.status = RunStatus::Failed;
        self.state.wake_at = None;
        self.state.error = Some(why.to_string());
        self.record(node.unwrap_or(END), "failed", Some(why.to_string()));
    }

    fn park(&mut self, node: &str, wake_at: i64, detail: String) {
        self.state.status = RunStatus::Waiting;
        self.state.at = Some(node.to_string());
        self.state.wake_at = Some(wake_at);
        self.record(node, "waiting", Some(detail));
    }

    fn end(&mut self, node: &str, status: RunStatus, detail: Option<String>) {
        self.state.status = status;
        self.state.at = None;
        self.state.wake_at = None;
        self.state.inbox.clear();
        self.record(node, status.as_str(), detail);
    }

    fn key(&self, node: &str) -> String {
        format!("{}:{node}", self.state.run_id)
    }

    /// Runs from `first` until the run waits or ends.
    fn walk(&mut self, first: &str, mut entry: Entry<'_>) {
        let workflow = self.workflow;
        let mut id = first.to_string();
        for _ in 0..STEP_BUDGET {
            let Some(node) = workflow.node(&id) else {
                self.fail(Some(&id), "an edge leads to a node that does not exist");
                return;
            };
            let Some(port) = self.visit(node, entry) else { return };
            match workflow.next(&node.id, &port) {
                Some(next) if next != END => {
                    id = next.to_string();
                    entry = Entry::Arrive;
                }
                _ => {
                    self.end(END, RunStatus::Completed, None);
                    return;
                }
            }
        }
        self.fail(Some(&id), "the run passed too many nodes in one step; does the workflow loop?");
    }

    /// Performs one node; returns the output port to follow, or `None` when the run waits or ended.
    fn visit(&mut self, node: &Node, entry: Entry<'_>) -> Option<String> {
        let id = node.id.as_str();
        let now = self.now;
        let port = match (&node.kind, entry) {
            (NodeKind::Trigger { event, .. }, _) => {
                self.record(id, "next", Some(format!("{event} from {}", self.state.trigger.source)));
                return Some("next".into());
            }
            (NodeKind::Condition { rules }, _) => {
                let facts = RunFacts {
                    event: &self.state.trigger.payload,
                    profile: &self.profile,
                    aggregates: &self.ctx.aggregates,
                };
                if rules.eval(&facts) { "yes" } else { "no" }.to_string()
            }
            (NodeKind::Delay { span, until_time_of_day }, Entry::Arrive) => {
                let due = match (span, until_time_of_day.as_deref().and_then(time_of_day)) {
                    (Some(span), _) => now + span.millis(),
                    (None, Some(minute_of_day)) => next_time_of_day(now, minute_of_day),
                    (None, None) => {
                        self.fail(Some(id), "the delay has neither a duration nor a time of day");
                        return None;
                    }
                };
                self.park(id, due, "delay".into());
                return None;
            }
            (NodeKind::Delay { .. }, _) => "next".into(),
            (NodeKind::WaitForEvent { events, timeout, .. }, Entry::Arrive) => match self.take_from_inbox(node) {
                Some(found) => {
                    self.record(id, "received", Some(format!("{} {} (arrived earlier)", found.name, found.id)));
                    return Some("received".into());
                }
                None => {
                    self.park(id, now + timeout.millis(), format!("for {}", events.join(" or ")));
                    return None;
                }
            },
            (NodeKind::WaitForEvent { .. }, Entry::Received(e)) => {
                self.record(id, "received", Some(format!("{} {}", e.name, e.id)));
                return Some("received".into());
            }
            (NodeKind::WaitForEvent { .. }, Entry::TimerFired) => match self.take_from_inbox_before_deadline(node) {
                Some(found) => {
                    self.record(id, "received", Some(format!("{} {} (kept while paused)", found.name, found.id)));
                    return Some("received".into());
                }
                None => "timed_out".into(),
            },
            (NodeKind::Split { branches }, _) => {
                let key = [self.state.workflow_id.as_str(), id, self.state.trigger.customer.as_str()];
                match pick_branch(branches, fnv1a(&key)) {
                    Some(label) => label.to_string(),
                    None => {
                        self.fail(Some(id), "the split has no branch with a weight");
                        return None;
                    }
                }
            }
            (NodeKind::Offer { discount, value, code_prefix, valid_for }, _) => {
                let code = offer_code(code_prefix, self.ctx.seed, &self.key(id));
                let expires_at = now + valid_for.millis();
                self.actions.push(Action::IssueOffer {
                    key: self.key(id),
                    node: id.to_string(),
                    code: code.clone(),
                    discount: discount.clone(),
                    value: *value,
                    expires_at,
                });
                self.state.offer = Some(IssuedOffer { node: id.to_string(), code: code.clone(), expires_at });
                self.record(id, "next", Some(code));
                return Some("next".into());
            }
            (NodeKind::Alert { severity, message, audience }, _) => {
                let message = self.render(message, Mode::Text);
                self.actions.push(Action::RaiseAlert {
                    key: self.key(id),
                    node: id.to_string(),
                    severity: severity.clone(),
                    audience: audience.clone(),
                    message,
                });
                "next".into()
            }
            (NodeKind::Webhook { method, url, headers, body }, _) => {
                let action = Action::CallWebhook {
                    key: self.key(id),
                    node: id.to_string(),
                    method: method.clone(),
                    url: self.render(url, Mode::Url),
                    headers: headers.iter().map(|(k, v)| (k.clone(), self.render(v, Mode::Header))).collect(),
                    body: self.render(body, Mode::Json),
                };
                self.actions.push(action);
                "next".into()
            }
            (NodeKind::UpdateProfile { changes }, _) => {
                let changes: Vec<ProfileChange> = changes
                    .iter()
                    .map(|c| match c {
                        ProfileChange::Set { attribute, value } => {
                            ProfileChange::Set { attribute: attribute.clone(), value: self.render(value, Mode::Text) }
                        }
                        other => other.clone(),
                    })
                    .collect();
                super::profile::apply_changes(&mut self.profile, &changes);
                self.actions.push(Action::UpdateProfile { key: self.key(id), node: id.to_string(), changes });
                "next".into()
            }
            (NodeKind::Goal { event, within, .. }, Entry::Arrive) => {
                match self.take_from_inbox(node) {
                    Some(found) => self.end(id, RunStatus::Converted, Some(format!("{event} {}", found.id))),
                    None => self.park(id, now + within.millis(), format!("for {event}")),
                }
                return None;
            }
            (NodeKind::Goal { event, .. }, Entry::Received(e)) => {
                self.end(id, RunStatus::Converted, Some(format!("{event} {}", e.id)));
                return None;
            }
            (NodeKind::Goal { event, .. }, Entry::TimerFired) => {
                match self.take_from_inbox_before_deadline(node) {
                    Some(found) => {
                        self.end(id, RunStatus::Converted, Some(format!("{event} {} (kept while paused)", found.id)))
                    }
                    None => self.end(id, RunStatus::Completed, Some("the goal was not reached in time".into())),
                }
                return None;
            }
        };
        self.record(id, &port, None);
        Some(port)
    }

    /// Keeps `event` in the inbox if some wait or goal of the workflow may want it.
    fn keep(&mut self, event: &EventData) {
        if self.workflow.awaited(&event.name) || self.is_redemption(event) {
            self.state.inbox.push(event.clone());
            if self.state.inbox.len() > INBOX_LIMIT {
                self.state.inbox.remove(0);
            }
        }
    }

    /// A goal of the workflow, other than where the run waits, that `event` reaches.
    fn goal_reached_early(&self, event: &EventData) -> Option<String> {
        let at = self.state.at.as_deref();
        self.workflow
            .nodes
            .iter()
            .filter(|n| matches!(n.kind, NodeKind::Goal { .. }) && Some(n.id.as_str()) != at)
            .find(|n| self.matches_waiting(n, event))
            .map(|n| n.id.clone())
    }

    /// Nudge's own record of this run's code redeemed through the API.
    fn is_redemption(&self, event: &EventData) -> bool {
        event.name == OFFER_REDEEMED && event.source == NUDGE_SOURCE && self.carries_offer_code(event)
    }

    /// Whether `event` is what the waiting `node` waits for.
    fn matches_waiting(&self, node: &Node, event: &EventData) -> bool {
        match &node.kind {
            NodeKind::WaitForEvent { events, correlate_field, .. } => {
                events.contains(&event.name) && self.correlates(correlate_field.as_deref(), event)
            }
            NodeKind::Goal { event: name, match_offer_code: false, .. } => *name == event.name,
            NodeKind::Goal { event: name, match_offer_code: true, .. } => {
                (*name == event.name || self.is_redemption(event)) && self.carries_offer_code(event)
            }
            _ => false,
        }
    }

    /// Removes and returns the first inbox event `node` waits for.
    fn take_from_inbox(&mut self, node: &Node) -> Option<EventData> {
        let index = self.state.inbox.iter().position(|e| self.matches_waiting(node, e))?;
        Some(self.state.inbox.remove(index))
    }

    /// Like `take_from_inbox`, for a timer: only an event that happened before
    /// the deadline (kept while the workflow was paused) still counts.
    fn take_from_inbox_before_deadline(&mut self, node: &Node) -> Option<EventData> {
        let due = self.state.wake_at.unwrap_or(i64::MAX);
        let index = self.state.inbox.iter().position(|e| e.accepted() < due && self.matches_waiting(node, e))?;
        Some(self.state.inbox.remove(index))
    }

    /// Same value at `field` as the trigger; a trigger without the field matches on the name alone.
    fn correlates(&self, field: Option<&str>, event: &EventData) -> bool {
        let Some(path) = field.filter(|f| !f.trim().is_empty()).and_then(|f| Path::parse(f).ok()) else {
            return true;
        };
        match path.get(&self.state.trigger.payload).filter(|v| !v.is_null()) {
            None => true,
            Some(expected) => path.get(&event.payload).is_some_and(|v| scalar_text(v) == scalar_text(expected)),
        }
    }

    fn carries_offer_code(&self, event: &EventData) -> bool {
        // An expired code converts nothing (the redemption is refused too).
        self.state
            .offer
            .as_ref()
            .is_some_and(|o| o.expires_at > self.now && super::offer::redeems(event.offer_code.as_deref(), &o.code))
    }

    fn render(&self, template: &str, mode: Mode) -> String {
        render(template, &self.state, &self.profile, mode)
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Where a rendered template goes, which decides how values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Text,
    /// Strings escaped for use inside a JSON string; numbers, objects and lists as JSON.
    Json,
    /// Values percent-encoded, so they cannot add path segments or parameters.
    Url,
    /// Line breaks removed, so a value cannot add a header.
    Header,
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Fills `{{event.…}}` (the trigger's payload), `{{customer.id}}`,
/// `{{customer.…}}` (profile attributes), `{{offer.code}}`,
/// `{{offer.expires_at}}` and `{{run.id}}`. Unknown or missing values render
/// empty; `mode` says how values are escaped.
pub fn render(template: &str, run: &RunState, profile: &Value, mode: Mode) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let var = after[..end].trim();
        let value = lookup(var, run, profile);
        match (value, mode) {
            (None | Some(Value::Null), _) => {}
            (Some(Value::String(s)), Mode::Json) => {
                let quoted = Value::String(s).to_string();
                out.push_str(&quoted[1..quoted.len() - 1]);
            }
            (Some(v), Mode::Url) => out.push_str(&percent_encode(&scalar_text(&v))),
            (Some(v), Mode::Header) => out.extend(scalar_text(&v).chars().filter(|c| !matches!(c, '\r' | '\n' | '\0'))),
            // NUL is no text (and Postgres refuses it in a text column).
            (Some(v), _) => out.extend(scalar_text(&v).chars().filter(|c| *c != '\0')),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn lookup(var: &str, run: &RunState, profile: &Value) -> Option<Value> {
    let (root, path) = var.split_once('.').unwrap_or((var, ""));
    let in_value = |v: &Value| Path::parse(path).ok().and_then(|p| p.get(v).cloned());
    match (root, path) {
        ("event", _) => in_value(&run.trigger.payload),
        ("customer", "id") => Some(Value::String(run.trigger.customer.clone())),
        ("customer", _) => in_value(profile),
        ("offer", "code") => run.offer.as_ref().map(|o| Value::String(o.code.clone())),
        ("offer", "expires_at") => run.offer.as_ref().map(|o| Value::from(o.expires_at)),
        ("run", "id") => Some(Value::String(run.run_id.clone())),
        _ => None,
    }
}

/// `HH:MM` as minutes after midnight.
fn time_of_day(text: &str) -> Option<i64> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some(h * 60 + m)
}

/// The first moment strictly after `now` at `minute_of_day` (UTC).
fn next_time_of_day(now: i64, minute_of_day: i64) -> i64 {
    const DAY: i64 = 86_400_000;
    let candidate = now - now.rem_euclid(DAY) + minute_of_day * 60_000;
    if candidate > now {
        candidate
    } else {
        candidate + DAY
    }
}

/// 64-bit FNV-1a over parts separated by a zero byte: stable across
/// platforms and releases, so a customer keeps their split branch.
pub fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            // A zero byte between parts: xor with 0, then multiply.
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        for byte in part.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// The branch for a hash, in proportion to the weights.
pub fn pick_branch(branches: &[SplitBranch], hash: u64) -> Option<&str> {
    let total: u64 = branches.iter().map(|b| u64::from(b.weight)).sum();
    if total == 0 {
        return None;
    }
    let mut point = hash % total;
    for b in branches {
        let w = u64::from(b.weight);
        if point < w {
            return Some(&b.label);
        }
        point -= w;
    }
    None
}

/// SplitMix64: a good 64-bit mixer, enough to spread a random seed.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Letters and digits that cannot be misread (no 0/O or 1/I).
const CODE_ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// `PREFIX-XXXXXXXXXX`: ten symbols (50 bits) drawn from the seed and the
/// action key. The executor passes a fresh random seed, so codes cannot be
/// guessed; the same seed gives the same code, so tests can predict them.
pub fn offer_code(prefix: &str, seed: u64, key: &str) -> String {
    let mut bits = splitmix(seed ^ fnv1a(&[key]));
    let mut code = String::with_capacity(prefix.len() + 11);
    code.push_str(&prefix.to_ascii_uppercase());
    code.push('-');
    for _ in 0..10 {
        code.push(char::from(CODE_ALPHABET[(bits & 31) as usize]));
        bits >>= 5;
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::rules::{Join, Op, Rule, ValueType};
    use crate::workflow::templates;
    use serde_json::json;

    const MIN: i64 = 60_000;
    const T0: i64 = 1_800_000_000_000;

    fn event(id: &str, name: &str, customer: &str, payload: Value) -> EventData {
        EventData {
            id: id.into(),
            name: name.into(),
            source: "shop".into(),
            customer: customer.into(),
            at: T0,
            accepted_at: T0,
            payload,
            offer_code: None,
        }
    }

    fn ctx(now: i64) -> Context {
        Context { profile: json!({ "email": "ana@example.com" }), aggregates: vec![], now, seed: 42 }
    }

    fn cart(id: &str, value: f64) -> EventData {
        event(&format!("e-{id}"), "cart_updated", "ana", json!({ "cart": { "id": id, "value": value } }))
    }

    fn outcomes(step: &Step) -> Vec<(String, String)> {
        step.trace.iter().map(|t| (t.node.clone(), t.outcome.clone())).collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn abandoned_cart_checkout_before_the_timeout_issues_nothing() {
        let w = templates::abandoned_cart();
        let started = start(&w, "wf", "run1", cart("c1", 80.0), &ctx(T0));
        assert_eq!(started.state.status, RunStatus::Waiting);
        assert_eq!(started.state.at.as_deref(), Some("wait_checkout"));
        assert_eq!(started.state.wake_at, Some(T0 + 30 * MIN));
        assert!(started.actions.is_empty());

        let other_cart = event("e2", "checkout_started", "ana", json!({ "cart": { "id": "c9" } }));
        let still = advance(&w, &started.state, Input::Event(&other_cart), &ctx(T0 + MIN));
        assert_eq!(still.state.status, RunStatus::Waiting, "another cart's checkout does not count");

        let checkout = event("e3", "checkout_started", "ana", json!({ "cart": { "id": "c1" } }));
        let done = advance(&w, &still.state, Input::Event(&checkout), &ctx(T0 + 10 * MIN));
        assert_eq!(done.state.status, RunStatus::Completed);
        assert!(done.actions.is_empty());
        assert_eq!(outcomes(&done), pairs(&[("wait_checkout", "received"), ("end", "completed")]));
        let late = advance(&w, &done.state, Input::Timer, &ctx(T0 + 31 * MIN));
        assert_eq!(late.state, done.state, "a finished run ignores its old timer");
        assert!(late.actions.is_empty() && late.trace.is_empty());
    }

    #[test]
    fn an_event_a_waiting_run_is_not_concerned_by_leaves_it_unchanged() {
        let names = ["cart_updated", "checkout_started", "order_completed", "page_viewed", OFFER_REDEEMED];
        for template in templates::templates() {
            let w = template.workflow;
            let Some(trigger) = w.trigger() else { continue };
            let NodeKind::Trigger { event: name, .. } = &trigger.kind else { continue };
            let first = event("e1", name, "ana", json!({ "cart": { "id": "c1", "value": 640 }, "amount": 9000 }));
            let started = start(&w, "wf", "run1", first, &ctx(T0));
            if started.state.status != RunStatus::Waiting {
                continue;
            }
            for name in names {
                for source in ["shop", NUDGE_SOURCE] {
                    for now in [T0 + MIN, T0 + 10 * 24 * 60 * MIN] {
                        let mut e = event("e2", name, "ana", json!({ "cart": { "id": "c1" } }));
                        e.source = source.into();
                        e.accepted_at = now;
                        if concerns(&w, started.state.wake_at, name, source, now) {
                            continue;
                        }
                        let advanced = advance(&w, &started.state, Input::Event(&e), &ctx(now));
                        assert_eq!(advanced.state, started.state, "{}: {name} from {source}", template.name);
                        assert!(advanced.trace.is_empty() && advanced.actions.is_empty());
                        let held = hold(&w, &started.state, &e, &ctx(now));
                        assert_eq!(held.state, started.state, "{}: {name} held", template.name);
                    }
                }
            }
            let late = started.state.wake_at.map(|due| due + 1);
            if let Some(late) = late {
                assert!(concerns(&w, started.state.wake_at, "page_viewed", "shop", late), "a due deadline concerns");
            }
        }
    }

    #[test]
    fn funnel_counts_arrivals_not_resumptions_and_exits_by_output() {
        let w = templates::abandoned_cart();
        let mv =
            |node: &'static str, entered: bool, left_by: Option<&'static str>| FunnelMove { node, entered, left_by };
        let started = start(&w, "wf", "run1", cart("c1", 80.0), &ctx(T0));
        assert_eq!(
            started.funnel(None),
            vec![mv("trigger", true, Some("next")), mv("wait_checkout", true, None)],
            "a run arriving at a wait enters it and does not leave"
        );
        let checkout = event("e3", "checkout_started", "ana", json!({ "cart": { "id": "c1" } }));
        let done = advance(&w, &started.state, Input::Event(&checkout), &ctx(T0 + MIN));
        assert_eq!(
            done.funnel(Some("wait_checkout")),
            vec![mv("wait_checkout", false, Some("received"))],
            "resuming leaves the wait without entering it again; the end marker is no node"
        );
    }

    #[test]
    fn abandoned_cart_without_checkout_offers_alerts_and_converts_on_redemption() {
        let w = templates::abandoned_cart();
        let started = start(&w, "wf", "run1", cart("c1", 640.0), &ctx(T0));
        let early = advance(&w, &started.state, Input::Timer, &ctx(T0 + 29 * MIN));
        assert_eq!(early.state, started.state, "a timer before its time changes nothing");

        let fired = advance(&w, &started.state, Input::Timer, &ctx(T0 + 30 * MIN));
        assert_eq!(
            outcomes(&fired),
            pairs(&[
                ("wait_checkout", "timed_out"),
                ("big_cart", "yes"),
                ("alert_service", "next"),
                ("worth_offer", "yes"),
                ("offer", "next"),
                ("converted", "waiting"),
            ])
        );
        let code = offer_code("CART", 42, "run1:offer");
        assert_eq!(
            fired.actions,
            vec![
                Action::RaiseAlert {
                    key: "run1:alert_service".into(),
                    node: "alert_service".into(),
                    severity: Severity::Warning,
                    audience: "Customer service".into(),
                    message: "Cart c1 worth 640.0 abandoned by ana@example.com".into(),
                },
                Action::IssueOffer {
                    key: "run1:offer".into(),
                    node: "offer".into(),
                    code: code.clone(),
                    discount: DiscountKind::Percent,
                    value: 10.0,
                    expires_at: T0 + 30 * MIN + 24 * 60 * MIN,
                },
            ]
        );
        assert_eq!(fired.state.at.as_deref(), Some("converted"));
        assert_eq!(fired.state.wake_at, Some(T0 + 30 * MIN + 24 * 60 * MIN));

        let without_code = event("e4", "order_completed", "ana", json!({ "order": "o1" }));
        let waiting = advance(&w, &fired.state, Input::Event(&without_code), &ctx(T0 + 40 * MIN));
        assert_eq!(waiting.state.status, RunStatus::Waiting, "the goal wants the offer's code");

        // The code somewhere in the payload is not a redemption: only the
        // event's own offer code (the source mapping's path) is.
        let carried = event("e5", "order_completed", "ana", json!({ "order": { "coupons": [code.clone()] } }));
        let still = advance(&w, &waiting.state, Input::Event(&carried), &ctx(T0 + 45 * MIN));
        assert_eq!(still.state.status, RunStatus::Waiting, "a code in an arbitrary field redeems nothing");

        let mut redeemed = event("e5", "order_completed", "ana", json!({ "order": { "coupon": "x" } }));
        redeemed.offer_code = Some(code.to_lowercase());
        let converted = advance(&w, &waiting.state, Input::Event(&redeemed), &ctx(T0 + 50 * MIN));
        assert_eq!(converted.state.status, RunStatus::Converted);
        assert_eq!(converted.state.at, None);
        assert!(converted.actions.is_empty());
    }

    #[test]
    fn an_expired_code_converts_nothing_and_an_api_redemption_converts_like_the_goal_event() {
        let w = templates::abandoned_cart();
        let started = start(&w, "wf", "run1", cart("c1", 640.0), &ctx(T0));
        let fired = advance(&w, &started.state, Input::Timer, &ctx(T0 + 30 * MIN));
        let code = fired.state.offer.as_ref().map(|o| o.code.clone()).unwrap_or_default();
        let expires = fired.state.offer.as_ref().map_or(0, |o| o.expires_at);

        // The order carries the code, but after the offer expired (the goal's
        // window is the same 24 hours, so move the goal's deadline out of the way).
        let mut late_state = fired.state.clone();
        late_state.wake_at = Some(expires + 60 * MIN);
        let mut order = event("e5", "order_completed", "ana", json!({}));
        order.offer_code = Some(code.clone());
        let late = advance(&w, &late_state, Input::Event(&order), &ctx(expires + MIN));
        assert_eq!(late.state.status, RunStatus::Waiting, "an expired code is no conversion");

        // Nudge's record of an API redemption converts the run at the goal.
        let mut api = event("e6", OFFER_REDEEMED, "ana", json!({ "code": code, "by": "shop backend" }));
        api.source = NUDGE_SOURCE.into();
        api.offer_code = Some(code.clone());
        let converted = advance(&w, &fired.state, Input::Event(&api), &ctx(T0 + 40 * MIN));
        assert_eq!(converted.state.status, RunStatus::Converted);
        // From a sender's source the same name is just an event.
        let mut forged = api.clone();
        forged.source = "shop".into();
        let not = advance(&w, &fired.state, Input::Event(&forged), &ctx(T0 + 40 * MIN));
        assert_eq!(not.state.status, RunStatus::Waiting);
    }

    #[test]
    fn a_goal_reached_while_waiting_elsewhere_converts_the_run_and_skips_the_rest() {
        let mut w = templates::abandoned_cart();
        // A goal that needs no code: any order converts.
        for n in &mut w.nodes {
            if let NodeKind::Goal { match_offer_code, .. } = &mut n.kind {
                *match_offer_code = false;
            }
        }
        // The wait listens for checkouts only, so an order is the goal's.
        for n in &mut w.nodes {
            if let NodeKind::WaitForEvent { events, .. } = &mut n.kind {
                *events = vec!["checkout_started".into()];
            }
        }
        let started = start(&w, "wf", "run1", cart("c1", 640.0), &ctx(T0));
        let order = event("e2", "order_completed", "ana", json!({ "order": "o1" }));
        let step = advance(&w, &started.state, Input::Event(&order), &ctx(T0 + 5 * MIN));
        assert_eq!(step.state.status, RunStatus::Converted);
        assert!(step.actions.is_empty(), "no alert, no offer for a customer who bought");
        assert_eq!(step.trace.len(), 1);
        assert_eq!((step.trace[0].node.as_str(), step.trace[0].outcome.as_str()), ("converted", "converted"));
        assert!(step.trace[0].detail.as_deref().unwrap_or("").contains("while waiting at wait_checkout"));
    }

    #[test]
    fn an_event_held_while_the_workflow_was_paused_counts_when_it_resumes() {
        let w = templates::abandoned_cart();
        let started = start(&w, "wf", "run1", cart("c1", 640.0), &ctx(T0));
        let mut checkout = event("e2", "checkout_started", "ana", json!({ "cart": { "id": "c1" } }));
        checkout.accepted_at = T0 + 10 * MIN;
        let held = hold(&w, &started.state, &checkout, &ctx(T0 + 10 * MIN));
        assert_eq!(held.state.status, RunStatus::Waiting);
        assert!(held.actions.is_empty() && held.trace.is_empty());
        assert_eq!(held.state.inbox.len(), 1);
        // Resumed after the deadline: the checkout came in time, so no offer.
        let resumed = advance(&w, &held.state, Input::Timer, &ctx(T0 + 2 * 60 * MIN));
        assert_eq!(resumed.state.status, RunStatus::Completed);
        assert!(resumed.actions.is_empty());
        assert_eq!(resumed.trace[0].outcome, "received");
        // A checkout accepted after the deadline does not count, whatever
        // time its sender wrote on it.
        let mut late = checkout.clone();
        late.accepted_at = T0 + 45 * MIN;
        late.at = T0 + MIN;
        let held = hold(&w, &started.state, &late, &ctx(T0 + 45 * MIN));
        let resumed = advance(&w, &held.state, Input::Timer, &ctx(T0 + 2 * 60 * MIN));
        assert_eq!(resumed.trace[0].outcome, "timed_out");
        assert!(!resumed.actions.is_empty());
    }

    #[test]
    fn a_small_abandoned_cart_gets_a_reminder_webhook_with_json_safe_values() {
        let w = templates::abandoned_cart();
        let mut c = ctx(T0);
        c.profile = json!({ "email": "o\"neil@example.com" });
        let started = start(&w, "wf", "run7", cart("c\"2", 20.0), &c);
        c.now = T0 + 30 * MIN;
        let fired = advance(&w, &started.state, Input::Timer, &c);
        assert_eq!(fired.state.status, RunStatus::Completed);
        let [Action::CallWebhook { key, method, url, headers, body, .. }] = fired.actions.as_slice() else {
            panic!("one webhook expected: {:?}", fired.actions);
        };
        assert_eq!((key.as_str(), method.as_str()), ("run7:reminder", "POST"));
        assert_eq!(url, "https://crm.example.com/cart-reminders");
        assert_eq!(headers, &vec![("Content-Type".to_string(), "application/json".to_string())]);
        let parsed: Value = serde_json::from_str(body).unwrap();
        assert_eq!(parsed, json!({ "customer": "ana", "email": "o\"neil@example.com", "cart": "c\"2" }));

        let run = &fired.state;
        let profile = json!({ "city": "Oslo & Bergen", "note": "a\r\nX-Evil: 1" });
        assert_eq!(
            render("https://x.example/c/{{customer.city}}?r={{run.id}}", run, &profile, Mode::Url),
            "https://x.example/c/Oslo%20%26%20Bergen?r=run7"
        );
        assert_eq!(render("{{customer.note}}", run, &profile, Mode::Header), "aX-Evil: 1");
        assert_eq!(
            render("{{event.cart}} {{nope.x}} {{event.missing}}|", run, &profile, Mode::Json),
            r#"{"id":"c\"2","value":20.0}  |"#
        );
    }

    /// trigger → delay 10 min → wait 30 min for checkout of the same cart → goal.
    fn delayed_wait() -> Workflow {
        let mut w = templates::abandoned_cart();
        w.nodes.push(Node {
            id: "pause".into(),
            x: 0.0,
            y: 0.0,
            kind: NodeKind::Delay { span: Some(Span { amount: 10, unit: Unit::Minutes }), until_time_of_day: None },
        });
        w.edges.retain(|e| e.from != "trigger");
        w.edges.push(Edge { from: "trigger".into(), port: "next".into(), to: "pause".into() });
        w.edges.push(Edge { from: "pause".into(), port: "next".into(), to: "wait_checkout".into() });
        assert_eq!(crate::workflow::validate(&w), vec![]);
        w
    }

    #[test]
    fn the_wait_is_race_free_an_event_before_it_is_reached_still_counts() {
        let w = delayed_wait();
        let started = start(&w, "wf", "r", cart("c1", 80.0), &ctx(T0));
        assert_eq!(started.state.at.as_deref(), Some("pause"));

        let noise = event("e2", "page_viewed", "ana", json!({}));
        let wrong_cart = event("e3", "order_completed", "ana", json!({ "cart": { "id": "c2" } }));
        let checkout = event("e4", "order_completed", "ana", json!({ "cart": { "id": "c1" } }));
        let mut state = started.state;
        for e in [&noise, &wrong_cart, &checkout] {
            state = advance(&w, &state, Input::Event(e), &ctx(T0 + 2 * MIN)).state;
        }
        assert_eq!(state.status, RunStatus::Waiting);
        assert_eq!(state.inbox.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["e3", "e4"], "only awaited names");

        let after_delay = advance(&w, &state, Input::Timer, &ctx(T0 + 10 * MIN));
        assert_eq!(after_delay.state.status, RunStatus::Completed);
        assert!(after_delay.actions.is_empty(), "the checkout during the delay counted: no offer");
        assert_eq!(after_delay.trace[1].outcome, "received");
        assert!(after_delay.trace[1].detail.as_deref().is_some_and(|d| d.contains("e4")));

        // Without the checkout, the wait starts when it is reached, not at the trigger.
        let quiet = start(&w, "wf", "q", cart("c1", 80.0), &ctx(T0));
        let waiting = advance(&w, &quiet.state, Input::Timer, &ctx(T0 + 10 * MIN));
        assert_eq!(waiting.state.at.as_deref(), Some("wait_checkout"));
        assert_eq!(waiting.state.wake_at, Some(T0 + 40 * MIN));
        assert_eq!(waiting.state.inbox.len(), 0);
    }

    #[test]
    fn a_checkout_accepted_before_the_deadline_wins_and_a_late_timer_acts_at_its_due_time() {
        let w = templates::abandoned_cart();
        let started = start(&w, "wf", "r", cart("c1", 80.0), &ctx(T0));
        let deadline = T0 + 30 * MIN;
        // Accepted 1 ms before the deadline: the checkout wins over the timeout.
        let mut checkout = event("e2", "checkout_started", "ana", json!({ "cart": { "id": "c1" } }));
        checkout.accepted_at = deadline - 1;
        let won = advance(&w, &started.state, Input::Event(&checkout), &ctx(deadline - 1));
        assert_eq!(won.state.status, RunStatus::Completed);
        assert!(won.actions.is_empty(), "{:?}", won.actions);
        // Accepted at the deadline: the timeout was first.
        let lost = advance(&w, &started.state, Input::Event(&checkout), &ctx(deadline));
        assert_eq!(lost.trace[0].outcome, "timed_out");

        // A timer looked at 15 minutes late acts at its due time.
        let late = advance(&w, &started.state, Input::Timer, &ctx(deadline + 15 * MIN));
        let Some(Action::IssueOffer { expires_at, .. }) = late.actions.first() else { panic!("{:?}", late.actions) };
        assert_eq!(*expires_at, deadline + 24 * 60 * MIN, "the code is valid 24 hours from the deadline");
        assert_eq!(late.state.wake_at, Some(deadline + 24 * 60 * MIN), "so is the goal's window");
        // Not yet due: nothing happens.
        let early = advance(&w, &started.state, Input::Timer, &ctx(deadline - 1));
        assert_eq!(early.state, started.state);
    }

    #[test]
    fn an_event_after_the_deadline_does_not_count_even_before_the_timer_fired() {
        let w = templates::abandoned_cart();
        let started = start(&w, "wf", "r", cart("c1", 80.0), &ctx(T0));
        let late = event("e9", "order_completed", "ana", json!({ "cart": { "id": "c1" } }));
        let step = advance(&w, &started.state, Input::Event(&late), &ctx(T0 + 31 * MIN));
        assert_eq!(step.trace[0], Trace { node: "wait_checkout".into(), outcome: "timed_out".into(), detail: None });
        assert!(matches!(step.actions.as_slice(), [Action::IssueOffer { .. }]), "{:?}", step.actions);
        assert_eq!(step.state.at.as_deref(), Some("converted"), "the late order was no redemption of the new code");
        assert_eq!(step.state.status, RunStatus::Waiting);
    }

    #[test]
    fn the_inbox_keeps_only_the_latest_events() {
        let w = delayed_wait();
        let mut state = start(&w, "wf", "r", cart("c1", 80.0), &ctx(T0)).state;
        for i in 0..(INBOX_LIMIT + 5) {
            let e = event(&format!("x{i}"), "checkout_started", "ana", json!({ "cart": { "id": "other" } }));
            state = advance(&w, &state, Input::Event(&e), &ctx(T0 + MIN)).state;
        }
        assert_eq!(state.inbox.len(), INBOX_LIMIT);
        assert_eq!(state.inbox[0].id, "x5");
    }

    fn split_workflow(weights: [u32; 2]) -> Workflow {
        let node = |id: &str, kind| Node { id: id.into(), x: 0.0, y: 0.0, kind };
        let edge = |from: &str, port: &str, to: &str| Edge { from: from.into(), port: port.into(), to: to.into() };
        Workflow {
            schema_version: 1,
            settings: Settings::default(),
            nodes: vec![
                node("t", NodeKind::Trigger { sources: vec![], event: "signed_up".into(), filter: None }),
                node(
                    "ab",
                    NodeKind::Split {
                        branches: vec![
                            SplitBranch { label: "A".into(), weight: weights[0] },
                            SplitBranch { label: "B".into(), weight: weights[1] },
                        ],
                    },
                ),
                node(
                    "tag",
                    NodeKind::UpdateProfile { changes: vec![ProfileChange::AddTag { tag: "variant-b".into() }] },
                ),
            ],
            edges: vec![
                edge("t", "next", "ab"),
                edge("ab", "A", END),
                edge("ab", "B", "tag"),
                edge("tag", "next", END),
            ],
        }
    }

    #[test]
    fn the_split_is_deterministic_per_customer_and_follows_the_weights() {
        let w = split_workflow([20, 80]);
        let branch = |customer: &str, run: &str, seed: u64| {
            let mut c = ctx(T0);
            c.seed = seed;
            let e = event("e", "signed_up", customer, json!({}));
            start(&w, "wf", run, e, &c).trace[1].outcome.clone()
        };
        for i in 0..50 {
            let customer = format!("customer-{i}");
            let first = branch(&customer, "r1", 1);
            assert_eq!(branch(&customer, "r2", 999), first, "same customer, same branch");
        }
        let b = (0..10_000).filter(|i| branch(&format!("c{i}"), "r", 0) == "B").count();
        assert!((7_600..8_400).contains(&b), "80 % expected on B, got {b} of 10000");
        assert_eq!(fnv1a(&["a", "bc"]), fnv1a(&["a", "bc"]));
        assert_ne!(fnv1a(&["a", "bc"]), fnv1a(&["ab", "c"]), "parts are separated");
        assert_eq!(fnv1a(&[""]), 0xcbf2_9ce4_8422_2325, "the FNV-1a offset basis");
        assert_eq!(pick_branch(&[SplitBranch { label: "A".into(), weight: 0 }], 5), None);
    }

    #[test]
    fn profile_updates_are_actions_and_later_conditions_see_them() {
        let mut w = split_workflow([0, 1]);
        w.nodes.retain(|n| n.id != "tag");
        w.nodes.push(Node {
            id: "tag".into(),
            x: 0.0,
            y: 0.0,
            kind: NodeKind::UpdateProfile {
                changes: vec![
                    ProfileChange::Set { attribute: "plan".into(), value: "trial from {{event.campaign}}".into() },
                    ProfileChange::Unset { attribute: "email".into() },
                    ProfileChange::AddTag { tag: "variant-b".into() },
                ],
            },
        });
        let has_plan = RuleGroup {
            join: Join::All,
            items: vec![RuleItem::Rule(Rule {
                operand: Operand::Profile { attribute: "plan".into() },
                op: Op::StartsWith,
                value_type: ValueType::String,
                value: json!("trial"),
            })],
        };
        w.nodes.push(Node { id: "check".into(), x: 0.0, y: 0.0, kind: NodeKind::Condition { rules: has_plan } });
        w.edges.retain(|e| e.from != "tag");
        w.edges.push(Edge { from: "tag".into(), port: "next".into(), to: "check".into() });
        w.edges.push(Edge { from: "check".into(), port: "yes".into(), to: END.into() });
        w.edges.push(Edge { from: "check".into(), port: "no".into(), to: END.into() });
        assert_eq!(crate::workflow::validate(&w), vec![]);

        let step = start(&w, "wf", "r", event("e", "signed_up", "ana", json!({ "campaign": "spring" })), &ctx(T0));
        assert_eq!(
            step.actions,
            vec![Action::UpdateProfile {
                key: "r:tag".into(),
                node: "tag".into(),
                changes: vec![
                    ProfileChange::Set { attribute: "plan".into(), value: "trial from spring".into() },
                    ProfileChange::Unset { attribute: "email".into() },
                    ProfileChange::AddTag { tag: "variant-b".into() },
                ],
            }]
        );
        assert_eq!(step.trace.last().map(|t| t.outcome.as_str()), Some("completed"));
        assert!(step.trace.iter().any(|t| t.node == "check" && t.outcome == "yes"), "{:?}", step.trace);

        let mut profile = json!({ "tags": ["vip"] });
        super::super::profile::apply_changes(
            &mut profile,
            &[ProfileChange::AddTag { tag: "vip".into() }, ProfileChange::RemoveTag { tag: "vip".into() }],
        );
        assert_eq!(profile, json!({ "tags": [] }));
    }

    #[test]
    fn high_value_transactions_trigger_an_advisor_alert_and_a_tailored_offer() {
        let w = templates::high_value_transaction();
        let small = event("e1", "transaction_completed", "bob", json!({ "amount": 9_999.99, "currency": "EUR" }));
        let big = event("e2", "transaction_completed", "bob", json!({ "amount": "12500", "currency": "EUR" }));
        let c = ctx(T0);
        assert!(!w.triggered_by(&small, &c));
        assert!(w.triggered_by(&big, &c));
        assert!(!w.triggered_by(&EventData { name: "transaction_failed".into(), ..big.clone() }, &c));

        let step = start(&w, "bank", "r", big, &c);
        assert_eq!(step.actions.len(), 2);
        assert!(matches!(&step.actions[0], Action::RaiseAlert { audience, message, severity: Severity::Info, .. }
            if audience == "Advisors" && message == "bob moved 12500 EUR: call them within a day"));
        assert!(matches!(&step.actions[1], Action::IssueOffer { code, value, .. }
            if code.starts_with("PRIORITY-") && code.len() == 19 && *value == 25.0));
        assert_eq!(step.state.at.as_deref(), Some("accepted"));

        let expired = advance(&w, &step.state, Input::Timer, &ctx(T0 + 14 * 24 * 60 * MIN));
        assert_eq!(expired.state.status, RunStatus::Completed, "no acceptance within 14 days");
    }

    #[test]
    fn low_inventory_alerts_and_calls_the_erp() {
        let w = templates::low_inventory();
        let e = event("e", "inventory_updated", "sku-1", json!({ "sku": "TEE-M", "store": "Oslo", "stock": 3 }));
        assert!(w.triggered_by(&e, &ctx(T0)));
        let step = start(&w, "inv", "r", e, &ctx(T0));
        assert_eq!(step.state.status, RunStatus::Completed);
        let kinds: Vec<&str> = step.actions.iter().map(Action::key).collect();
        assert_eq!(kinds, ["r:alert_buyer", "r:reorder"]);
        let Action::CallWebhook { body, .. } = &step.actions[1] else { panic!("webhook expected") };
        assert_eq!(body, r#"{"sku":"TEE-M","store":"Oslo","stock":"3"}"#);
    }

    #[test]
    fn triggers_check_sources_and_re_entry_policies_are_honoured() {
        let mut w = templates::low_inventory();
        if let NodeKind::Trigger { sources, .. } = &mut w.nodes[0].kind {
            sources.push("warehouse".into());
        }
        let e = event("e", "inventory_updated", "sku-1", json!({ "stock": 1 }));
        assert!(!w.triggered_by(&e, &ctx(T0)), "from 'shop', not 'warehouse'");
        assert!(w.triggered_by(&EventData { source: "warehouse".into(), ..e }, &ctx(T0)));

        let once = Settings { re_entry: ReEntry::Once };
        let daily = Settings { re_entry: ReEntry::AfterHours { hours: 24 } };
        let always = Settings { re_entry: ReEntry::EveryTime };
        assert!(may_enter(&once, None, T0) && !may_enter(&once, Some(T0 - 1), T0));
        assert!(!may_enter(&daily, Some(T0 - 23 * 60 * MIN), T0) && may_enter(&daily, Some(T0 - 24 * 60 * MIN), T0));
        assert!(may_enter(&always, Some(T0), T0));
    }

    #[test]
    fn a_delay_until_a_time_of_day_waits_for_its_next_occurrence() {
        let mut w = split_workflow([1, 0]);
        w.nodes[1].kind = NodeKind::Delay { span: None, until_time_of_day: Some("09:30".into()) };
        w.edges = vec![
            Edge { from: "t".into(), port: "next".into(), to: "ab".into() },
            Edge { from: "ab".into(), port: "next".into(), to: END.into() },
        ];
        w.nodes.retain(|n| n.id != "tag");
        let day = 86_400_000;
        let midnight = T0 - T0.rem_euclid(day);
        let at = |now: i64| start(&w, "wf", "r", event("e", "signed_up", "ana", json!({})), &ctx(now)).state.wake_at;
        assert_eq!(at(midnight + 8 * 60 * MIN), Some(midnight + 570 * MIN), "later today");
        assert_eq!(at(midnight + 570 * MIN), Some(midnight + day + 570 * MIN), "exactly then: tomorrow");
        assert_eq!(at(midnight + 20 * 60 * MIN), Some(midnight + day + 570 * MIN), "tomorrow");
    }

    #[test]
    fn broken_workflows_fail_the_run_instead_of_panicking() {
        let mut looping = split_workflow([1, 1]);
        looping.edges.retain(|e| e.from != "tag");
        looping.edges.push(Edge { from: "tag".into(), port: "next".into(), to: "ab".into() });
        looping.nodes[1].kind = NodeKind::Split { branches: vec![SplitBranch { label: "B".into(), weight: 1 }] };
        let step = start(&looping, "wf", "r", event("e", "signed_up", "ana", json!({})), &ctx(T0));
        assert_eq!(step.state.status, RunStatus::Failed);
        assert!(step.state.error.as_deref().is_some_and(|e| e.contains("loop")));

        let mut dangling = split_workflow([1, 0]);
        dangling.edges[1].to = "ghost".into();
        let step = start(&dangling, "wf", "r", event("e", "signed_up", "ana", json!({})), &ctx(T0));
        assert_eq!(step.state.status, RunStatus::Failed);

        let w = templates::abandoned_cart();
        let waiting = start(&w, "wf", "r", cart("c", 1.0), &ctx(T0)).state;
        let moved = RunState { at: Some("renamed".into()), ..waiting };
        let step = advance(&w, &moved, Input::Timer, &ctx(T0 + 60 * MIN));
        assert_eq!(step.state.status, RunStatus::Failed);
        let empty = Workflow { schema_version: 1, nodes: vec![], edges: vec![], settings: Settings::default() };
        assert_eq!(start(&empty, "wf", "r", cart("c", 1.0), &ctx(T0)).state.status, RunStatus::Failed);
    }

    #[test]
    fn offer_codes_are_readable_unique_per_seed_and_reproducible() {
        let a = offer_code("save", 1, "run:o");
        assert_eq!(a, offer_code("save", 1, "run:o"));
        assert!(a.starts_with("SAVE-") && a.len() == 15);
        assert!(a[5..].chars().all(|c| CODE_ALPHABET.contains(&(c as u8))));
        let codes: std::collections::HashSet<String> = (0..10_000).map(|s| offer_code("X", s, "run:o")).collect();
        assert_eq!(codes.len(), 10_000);
        assert_ne!(offer_code("X", 7, "run1:o"), offer_code("X", 7, "run2:o"));
    }

    #[test]
    fn the_workflow_lists_the_aggregates_its_rules_need() {
        let mut w = templates::abandoned_cart();
        let count = Operand::CountInWindow { event: "order_completed".into(), hours: 720 };
        if let NodeKind::Condition { rules } = &mut w.nodes[2].kind {
            for _ in 0..2 {
                rules.items.push(RuleItem::Rule(Rule {
                    operand: count.clone(),
                    op: Op::Lt,
                    value_type: ValueType::Number,
                    value: json!(1),
                }));
            }
        }
        assert_eq!(w.aggregates(), vec![count.clone()]);
        let mut c = ctx(T0);
        c.aggregates = vec![(count, json!(0))];
        let step = start(&w, "wf", "r", cart("c", 900.0), &c);
        let fired = advance(&w, &step.state, Input::Timer, &ctx(T0 + 30 * MIN));
        assert_eq!(
            fired.trace[1],
            Trace { node: "big_cart".into(), outcome: "no".into(), detail: None },
            "unknown aggregate: no"
        );
        let mut c = c.clone();
        c.now = T0 + 30 * MIN;
        let fired = advance(&w, &step.state, Input::Timer, &c);
        assert_eq!(fired.trace[1].outcome, "yes");
    }
}
