//! Node-level differences between two versions of a workflow: what was added,
//! removed or changed (configuration or where its outputs lead). Moving a node
//! on the canvas is not a change.

use super::model::{Node, Workflow};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum Change {
    Added,
    Removed,
    Changed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NodeDiff {
    pub node: String,
    /// The node's kind, for people ("Offer").
    pub label: String,
    pub change: Change,
    /// What changed: `settings` (its configuration) and/or `outputs`.
    pub what: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Diff {
    pub nodes: Vec<NodeDiff>,
    /// The workflow's own settings (re-entry) changed.
    pub settings_changed: bool,
}

fn outputs<'a>(w: &'a Workflow, node: &str) -> Vec<(&'a str, &'a str)> {
    let mut out: Vec<(&str, &str)> =
        w.edges.iter().filter(|e| e.from == node).map(|e| (e.port.as_str(), e.to.as_str())).collect();
    out.sort_unstable();
    out
}

fn diff_entry(node: &Node, change: Change, what: Vec<String>) -> NodeDiff {
    NodeDiff { node: node.id.clone(), label: node.kind.label().to_string(), change, what }
}

/// What changed from `from` to `to`, in the order of `to`'s nodes, then removals.
pub fn diff(from: &Workflow, to: &Workflow) -> Diff {
    let mut nodes = Vec::new();
    for n in &to.nodes {
        match from.node(&n.id) {
            None => nodes.push(diff_entry(n, Change::Added, Vec::new())),
            Some(old) => {
                let mut what = Vec::new();
                if old.kind != n.kind {
                    what.push("settings".to_string());
                }
                if outputs(from, &n.id) != outputs(to, &n.id) {
                    what.push("outputs".to_string());
                }
                if !what.is_empty() {
                    nodes.push(diff_entry(n, Change::Changed, what));
                }
            }
        }
    }
    for n in &from.nodes {
        if to.node(&n.id).is_none() {
            nodes.push(diff_entry(n, Change::Removed, Vec::new()));
        }
    }
    Diff { nodes, settings_changed: from.settings != to.settings }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::templates::abandoned_cart;
    use crate::workflow::{NodeKind, ReEntry, Severity};

    #[test]
    fn diff_reports_added_removed_and_changed_nodes_but_not_moves() {
        let v1 = abandoned_cart();
        assert_eq!(diff(&v1, &v1), Diff::default());
        let mut v2 = v1.clone();
        v2.nodes[0].x += 100.0;
        assert_eq!(diff(&v1, &v2), Diff::default(), "moving is not a change");

        if let NodeKind::Offer { value, .. } = &mut v2.nodes[5].kind {
            *value = 15.0;
        }
        v2.nodes.retain(|n| n.id != "reminder");
        v2.edges.retain(|e| e.from != "reminder");
        v2.nodes.push(crate::workflow::Node {
            id: "alert_small".into(),
            x: 0.0,
            y: 0.0,
            kind: NodeKind::Alert { severity: Severity::Info, message: "small".into(), audience: "CS".into() },
        });
        for e in v2.edges.iter_mut().filter(|e| e.to == "reminder") {
            e.to = "alert_small".into();
        }
        v2.settings.re_entry = ReEntry::Once;
        let d = diff(&v1, &v2);
        let summary: Vec<(&str, Change, Vec<String>)> =
            d.nodes.iter().map(|n| (n.node.as_str(), n.change, n.what.clone())).collect();
        assert_eq!(
            summary,
            vec![
                ("worth_offer", Change::Changed, vec!["outputs".to_string()]),
                ("offer", Change::Changed, vec!["settings".to_string()]),
                ("alert_small", Change::Added, vec![]),
                ("reminder", Change::Removed, vec![]),
            ]
        );
        assert_eq!(d.nodes[3].label, "Webhook");
        assert!(d.settings_changed);
    }
}
