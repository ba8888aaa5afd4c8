//! Validation: every problem that would stop a workflow from running as drawn,
//! attached to the node (and field) it concerns, so the designer can mark it.

use super::model::*;
use super::rules::{Operand, RuleGroup, RuleItem};
use crate::ingest::mapping::Path;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// The reserved edge target that ends a path on purpose.
pub const END: &str = "end";

/// Variables templates may use: `{{event.…}}`, `{{customer.…}}`, `{{offer.code}}`, `{{run.id}}`.
pub const TEMPLATE_ROOTS: [&str; 4] = ["event", "customer", "offer", "run"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Issue {
    /// The node concerned; `None` for the workflow as a whole.
    pub node: Option<String>,
    /// The field of that node, e.g. `event`, `timeout`, `port:yes`.
    pub field: Option<String>,
    pub message: String,
}

fn issue(node: Option<&str>, field: Option<&str>, message: impl Into<String>) -> Issue {
    Issue { node: node.map(str::to_string), field: field.map(str::to_string), message: message.into() }
}

/// The `{{ … }}` variables of a template, or an error for an unclosed one.
pub fn template_variables(template: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| "a '{{' is never closed with '}}'".to_string())?;
        out.push(after[..end].trim().to_string());
        rest = &after[end + 2..];
    }
    Ok(out)
}

fn check_template(out: &mut Vec<Issue>, node: &str, field: &str, template: &str) {
    match template_variables(template) {
        Err(e) => out.push(issue(Some(node), Some(field), e)),
        Ok(vars) => {
            for v in vars {
                let root = v.split('.').next().unwrap_or_default();
                if !TEMPLATE_ROOTS.contains(&root) || (v.contains('.') && v.ends_with('.')) {
                    out.push(issue(
                        Some(node),
                        Some(field),
                        format!("unknown variable {{{{{v}}}}}; use event.…, customer.…, offer.code or run.id"),
                    ));
                }
            }
        }
    }
}

fn check_span(out: &mut Vec<Issue>, node: &str, field: &str, span: &Span) {
    if span.amount == 0 {
        out.push(issue(Some(node), Some(field), "the duration must be positive"));
    }
}

fn check_rules(out: &mut Vec<Issue>, node: &str, field: &str, group: &RuleGroup) {
    for item in &group.items {
        match item {
            RuleItem::Group(g) => check_rules(out, node, field, g),
            RuleItem::Rule(r) => match &r.operand {
                Operand::Event { path } | Operand::SumInWindow { path, .. } => {
                    if let Err(e) = Path::parse(path) {
                        out.push(issue(Some(node), Some(field), e));
                    }
                }
                Operand::Profile { attribute } if attribute.trim().is_empty() => {
                    out.push(issue(Some(node), Some(field), "name the profile attribute"));
                }
                Operand::CountInWindow { hours: 0, .. } => {
                    out.push(issue(Some(node), Some(field), "the window must be at least one hour"));
                }
                _ => {}
            },
        }
    }
}

fn check_node(out: &mut Vec<Issue>, n: &Node) {
    let id = n.id.as_str();
    let required = |out: &mut Vec<Issue>, field: &str, value: &str| {
        if value.trim().is_empty() {
            out.push(issue(Some(id), Some(field), format!("{field} is required")));
        }
    };
    match &n.kind {
        NodeKind::Trigger { event, filter, .. } => {
            required(out, "event", event);
            if let Some(f) = filter {
                check_rules(out, id, "filter", f);
            }
        }
        NodeKind::Condition { rules } => {
            if rules.items.is_empty() {
                out.push(issue(Some(id), Some("rules"), "add at least one rule"));
            }
            check_rules(out, id, "rules", rules);
        }
        NodeKind::Delay { span, until_time_of_day } => match (span, until_time_of_day) {
            (Some(s), None) => check_span(out, id, "span", s),
            (None, Some(t)) => {
                let ok = t.len() == 5
                    && t.as_bytes()[2] == b':'
                    && t[..2].parse::<u8>().is_ok_and(|h| h < 24)
                    && t[3..].parse::<u8>().is_ok_and(|m| m < 60);
                if !ok {
                    out.push(issue(Some(id), Some("until_time_of_day"), "write the time of day as HH:MM, e.g. 09:30"));
                }
            }
            _ => out.push(issue(Some(id), Some("span"), "set either a duration or a time of day")),
        },
        NodeKind::WaitForEvent { events, correlate_field, timeout } => {
            if events.iter().all(|e| e.trim().is_empty()) {
                out.push(issue(Some(id), Some("events"), "name at least one event to wait for"));
            }
            check_span(out, id, "timeout", timeout);
            if let Some(Err(e)) = correlate_field.as_deref().filter(|c| !c.trim().is_empty()).map(Path::parse) {
                out.push(issue(Some(id), Some("correlate_field"), e));
            }
        }
        NodeKind::Split { branches } => {
            if branches.len() < 2 {
                out.push(issue(Some(id), Some("branches"), "a split needs at least two branches"));
            }
            let mut seen = HashSet::new();
            for b in branches {
                if b.label.trim().is_empty() || !seen.insert(b.label.as_str()) {
                    out.push(issue(Some(id), Some("branches"), "branch labels must be unique and not empty"));
                }
            }
            if branches.iter().map(|b| u64::from(b.weight)).sum::<u64>() == 0 {
                out.push(issue(Some(id), Some("branches"), "at least one branch needs a weight above 0"));
            }
        }
        NodeKind::Offer { discount, value, code_prefix, valid_for } => {
            let bad_value = match discount {
                DiscountKind::Percent => !(*value > 0.0 && *value <= 100.0),
                DiscountKind::FixedAmount => !(*value > 0.0 && value.is_finite()),
                DiscountKind::FreeShipping => false,
            };
            if bad_value {
                out.push(issue(Some(id), Some("value"), "the discount must be above 0 (and at most 100 %)"));
            }
            if code_prefix.is_empty()
                || code_prefix.len() > 16
                || !code_prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                out.push(issue(Some(id), Some("code_prefix"), "use 1 to 16 letters, digits or '-'"));
            }
            check_span(out, id, "valid_for", valid_for);
        }
        NodeKind::Alert { message, audience, .. } => {
            required(out, "message", message);
            required(out, "audience", audience);
            check_template(out, id, "message", message);
        }
        NodeKind::Webhook { method, url, headers, body } => {
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                out.push(issue(Some(id), Some("method"), "use GET, POST, PUT, PATCH or DELETE"));
            }
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() < 11 {
                out.push(issue(Some(id), Some("url"), "enter an http:// or https:// URL"));
            }
            check_template(out, id, "url", url);
            check_template(out, id, "body", body);
            for (name, value) in headers {
                if name.trim().is_empty() {
                    out.push(issue(Some(id), Some("headers"), "header names cannot be empty"));
                }
                check_template(out, id, "headers", value);
            }
        }
        NodeKind::UpdateProfile { changes } => {
            if changes.is_empty() {
                out.push(issue(Some(id), Some("changes"), "add at least one change"));
            }
            for c in changes {
                let (ProfileChange::Set { attribute: name, .. }
                | ProfileChange::Unset { attribute: name }
                | ProfileChange::AddTag { tag: name }
                | ProfileChange::RemoveTag { tag: name }) = c;
                if name.trim().is_empty() {
                    out.push(issue(Some(id), Some("changes"), "name the attribute or tag"));
                }
                if let ProfileChange::Set { value, .. } = c {
                    check_template(out, id, "changes", value);
                }
            }
        }
        NodeKind::Goal { event, within, .. } => {
            required(out, "event", event);
            check_span(out, id, "within", within);
        }
    }
}

/// All problems of a workflow; empty means it can be published.
pub fn validate(w: &Workflow) -> Vec<Issue> {
    let mut out = Vec::new();
    if w.schema_version == 0 || w.schema_version > SCHEMA_VERSION {
        out.push(issue(
            None,
            None,
            format!("unsupported schema_version {}; this Nudge reads 1 to {SCHEMA_VERSION}", w.schema_version),
        ));
    }
    let mut ids = HashSet::new();
    for n in &w.nodes {
        if n.id.trim().is_empty() || n.id == END {
            out.push(issue(Some(&n.id), None, format!("node ids cannot be empty or '{END}'")));
        } else if !ids.insert(n.id.as_str()) {
            out.push(issue(Some(&n.id), None, "two nodes share this id"));
        }
        check_node(&mut out, n);
    }
    let triggers: Vec<&Node> = w.nodes.iter().filter(|n| matches!(n.kind, NodeKind::Trigger { .. })).collect();
    match triggers.len() {
        1 => {}
        0 => out.push(issue(None, None, "add a trigger: it says which events start the workflow")),
        _ => {
            for t in &triggers[1..] {
                out.push(issue(Some(&t.id), None, "a workflow has exactly one trigger"));
            }
        }
    }

    // Edges: known nodes, real ports, one edge per port, nothing into the trigger.
    let by_id: HashMap<&str, &Node> = w.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut wired: HashSet<(&str, &str)> = HashSet::new();
    for e in &w.edges {
        let Some(from) = by_id.get(e.from.as_str()) else {
            out.push(issue(None, None, format!("an edge starts at unknown node '{}'", e.from)));
            continue;
        };
        if !from.kind.ports().contains(&e.port) {
            out.push(issue(
                Some(&e.from),
                Some(&format!("port:{}", e.port)),
                format!("{} has no output '{}'", from.kind.label(), e.port),
            ));
        }
        if !wired.insert((e.from.as_str(), e.port.as_str())) {
            out.push(issue(Some(&e.from), Some(&format!("port:{}", e.port)), "an output can lead to one node only"));
        }
        if e.to != END {
            match by_id.get(e.to.as_str()) {
                None => out.push(issue(
                    Some(&e.from),
                    Some(&format!("port:{}", e.port)),
                    format!("leads to unknown node '{}'", e.to),
                )),
                Some(to) if matches!(to.kind, NodeKind::Trigger { .. }) => out.push(issue(
                    Some(&e.from),
                    Some(&format!("port:{}", e.port)),
                    "nothing can lead back into the trigger",
                )),
                _ => {}
            }
        }
    }
    for n in &w.nodes {
        for port in n.kind.ports() {
            if !wired.contains(&(n.id.as_str(), port.as_str())) {
                out.push(issue(
                    Some(&n.id),
                    Some(&format!("port:{port}")),
                    format!("connect the '{port}' output, or end it"),
                ));
            }
        }
    }

    // Reachability from the trigger, and cycles (depth-first, three colours).
    if let [trigger] = triggers.as_slice() {
        let mut seen = HashSet::new();
        let mut stack = vec![trigger.id.as_str()];
        while let Some(id) = stack.pop() {
            if seen.insert(id) {
                stack.extend(w.edges.iter().filter(|e| e.from == id && e.to != END).map(|e| e.to.as_str()));
            }
        }
        for n in &w.nodes {
            if !seen.contains(n.id.as_str()) {
                out.push(issue(Some(&n.id), None, "no path from the trigger reaches this node"));
            }
        }
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<'a>(w: &'a Workflow, id: &'a str, marks: &mut HashMap<&'a str, Mark>, cyclic: &mut HashSet<&'a str>) {
        match marks.get(id) {
            Some(Mark::Done) => return,
            Some(Mark::Open) => {
                cyclic.insert(id);
                return;
            }
            None => {}
        }
        marks.insert(id, Mark::Open);
        for e in w.edges.iter().filter(|e| e.from == id && e.to != END) {
            visit(w, &e.to, marks, cyclic);
        }
        marks.insert(id, Mark::Done);
    }
    let mut marks = HashMap::new();
    let mut cyclic = HashSet::new();
    for n in &w.nodes {
        visit(w, &n.id, &mut marks, &mut cyclic);
    }
    let mut cyclic: Vec<&str> = cyclic.into_iter().collect();
    cyclic.sort_unstable();
    for id in cyclic {
        out.push(issue(Some(id), None, "this node is part of a loop; workflows must not loop"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::rules::{Join, Op, Rule, ValueType};
    use serde_json::json;

    fn node(id: &str, kind: NodeKind) -> Node {
        Node { id: id.into(), x: 0.0, y: 0.0, kind }
    }
    fn edge(from: &str, port: &str, to: &str) -> Edge {
        Edge { from: from.into(), port: port.into(), to: to.into() }
    }
    fn mins(n: u32) -> Span {
        Span { amount: n, unit: Unit::Minutes }
    }

    /// The abandoned-cart scenario, valid.
    fn abandoned_cart() -> Workflow {
        let big_cart = RuleGroup {
            join: Join::All,
            items: vec![RuleItem::Rule(Rule {
                operand: Operand::Event { path: "cart.value".into() },
                op: Op::Gt,
                value_type: ValueType::Number,
                value: json!(50),
            })],
        };
        Workflow {
            schema_version: 1,
            settings: Settings { re_entry: ReEntry::AfterHours { hours: 24 } },
            nodes: vec![
                node("t", NodeKind::Trigger { sources: vec![], event: "cart_updated".into(), filter: None }),
                node(
                    "w",
                    NodeKind::WaitForEvent {
                        events: vec!["order_completed".into()],
                        correlate_field: Some("cart.id".into()),
                        timeout: mins(30),
                    },
                ),
                node("c", NodeKind::Condition { rules: big_cart }),
                node(
                    "o",
                    NodeKind::Offer {
                        discount: DiscountKind::Percent,
                        value: 10.0,
                        code_prefix: "SAVE".into(),
                        valid_for: Span { amount: 24, unit: Unit::Hours },
                    },
                ),
                node(
                    "h",
                    NodeKind::Webhook {
                        method: "POST".into(),
                        url: "https://crm.example.com/remind".into(),
                        headers: vec![],
                        body: r#"{"customer":"{{customer.id}}"}"#.into(),
                    },
                ),
                node(
                    "g",
                    NodeKind::Goal { event: "order_completed".into(), match_offer_code: true, within: Span::week() },
                ),
            ],
            edges: vec![
                edge("t", "next", "w"),
                edge("w", "received", END),
                edge("w", "timed_out", "c"),
                edge("c", "yes", "o"),
                edge("c", "no", "h"),
                edge("o", "next", "g"),
                edge("h", "next", END),
            ],
        }
    }

    #[test]
    fn a_well_formed_workflow_has_no_issues_and_round_trips_as_json() {
        let w = abandoned_cart();
        assert_eq!(validate(&w), vec![]);
        let text = serde_json::to_string(&w).unwrap();
        assert!(text.contains(r#""type":"wait_for_event""#), "{text}");
        let back: Workflow = serde_json::from_str(&text).unwrap();
        assert_eq!(back, w);
    }

    fn has(issues: &[Issue], node: Option<&str>, needle: &str) -> bool {
        issues.iter().any(|i| i.node.as_deref() == node && i.message.contains(needle))
    }

    #[test]
    fn graph_problems_are_attached_to_their_nodes() {
        let mut w = abandoned_cart();
        w.edges.retain(|e| !(e.from == "c" && e.port == "no"));
        w.edges.push(edge("g", "next", "t"));
        w.nodes.push(node(
            "lost",
            NodeKind::Alert { severity: Severity::Info, message: "hi".into(), audience: "CS".into() },
        ));
        w.edges.push(edge("lost", "next", END));
        w.edges.push(edge("o", "next", "h"));
        let issues = validate(&w);
        assert!(has(&issues, Some("c"), "connect the 'no' output"), "{issues:#?}");
        assert!(has(&issues, Some("g"), "Goal has no output 'next'"));
        assert!(has(&issues, Some("g"), "back into the trigger"));
        assert!(has(&issues, Some("lost"), "no path from the trigger"));
        assert!(has(&issues, Some("o"), "one node only"));

        let mut looped = abandoned_cart();
        looped.edges.retain(|e| e.from != "h");
        looped.edges.push(edge("h", "next", "c"));
        looped.edges.retain(|e| !(e.from == "c" && e.port == "no"));
        looped.edges.push(edge("c", "no", "h"));
        let issues = validate(&looped);
        assert!(issues.iter().any(|i| i.message.contains("loop")), "{issues:#?}");

        let mut two = abandoned_cart();
        two.nodes.push(node("t2", NodeKind::Trigger { sources: vec![], event: "x".into(), filter: None }));
        two.edges.push(edge("t2", "next", END));
        assert!(has(&validate(&two), Some("t2"), "exactly one trigger"));
        let none = Workflow { schema_version: 1, nodes: vec![], edges: vec![], settings: Settings::default() };
        assert!(has(&validate(&none), None, "add a trigger"));
    }

    #[test]
    fn every_node_kind_checks_its_fields() {
        let cases: Vec<(NodeKind, &str)> = vec![
            (NodeKind::Trigger { sources: vec![], event: " ".into(), filter: None }, "event"),
            (NodeKind::Condition { rules: RuleGroup { join: Join::All, items: vec![] } }, "rules"),
            (NodeKind::Delay { span: Some(mins(0)), until_time_of_day: None }, "span"),
            (NodeKind::Delay { span: None, until_time_of_day: Some("25:00".into()) }, "until_time_of_day"),
            (NodeKind::Delay { span: None, until_time_of_day: None }, "span"),
            (
                NodeKind::WaitForEvent {
                    events: vec!["x".into()],
                    correlate_field: Some("a..b".into()),
                    timeout: mins(5),
                },
                "correlate_field",
            ),
            (NodeKind::WaitForEvent { events: vec!["x".into()], correlate_field: None, timeout: mins(0) }, "timeout"),
            (NodeKind::Split { branches: vec![SplitBranch { label: "A".into(), weight: 1 }] }, "branches"),
            (
                NodeKind::Split {
                    branches: vec![
                        SplitBranch { label: "A".into(), weight: 0 },
                        SplitBranch { label: "B".into(), weight: 0 },
                    ],
                },
                "branches",
            ),
            (
                NodeKind::Offer {
                    discount: DiscountKind::Percent,
                    value: 120.0,
                    code_prefix: "OK".into(),
                    valid_for: mins(5),
                },
                "value",
            ),
            (
                NodeKind::Offer {
                    discount: DiscountKind::FreeShipping,
                    value: 0.0,
                    code_prefix: "no spaces".into(),
                    valid_for: mins(5),
                },
                "code_prefix",
            ),
            (
                NodeKind::Alert {
                    severity: Severity::Critical,
                    message: "Cart of {{cart.value}}".into(),
                    audience: "CS".into(),
                },
                "message",
            ),
            (
                NodeKind::Alert {
                    severity: Severity::Critical,
                    message: "Unclosed {{event.x".into(),
                    audience: "CS".into(),
                },
                "message",
            ),
            (
                NodeKind::Webhook {
                    method: "FETCH".into(),
                    url: "https://x.example".into(),
                    headers: vec![],
                    body: String::new(),
                },
                "method",
            ),
            (
                NodeKind::Webhook {
                    method: "POST".into(),
                    url: "ftp://x".into(),
                    headers: vec![],
                    body: String::new(),
                },
                "url",
            ),
            (NodeKind::UpdateProfile { changes: vec![] }, "changes"),
            (NodeKind::Goal { event: String::new(), match_offer_code: false, within: Span::week() }, "event"),
        ];
        for (kind, field) in cases {
            let label = kind.label();
            let mut issues = Vec::new();
            check_node(&mut issues, &node("n", kind));
            assert!(
                issues.iter().any(|i| i.field.as_deref() == Some(field)),
                "{label}: expected an issue on {field}, got {issues:?}"
            );
        }
        assert_eq!(
            template_variables("Hi {{ customer.email }}, {{offer.code}}").unwrap(),
            ["customer.email", "offer.code"]
        );
    }
}
