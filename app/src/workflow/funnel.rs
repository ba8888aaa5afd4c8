//! A workflow version's funnel as branches: each node drawn under the output
//! that leads to it, how many runs took each output, and where runs really left.
//! Pure: the service feeds it the rollups' counts; the page draws what it returns.

use super::model::{Node, Workflow};
use super::validate::END;
use serde::{Deserialize, Serialize};

/// What was counted at one node over a range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeCounts {
    /// Runs that arrived at the node (resuming where a run waited is no arrival).
    pub entered: i64,
    /// Runs waiting there now.
    pub waiting: i64,
    /// Runs that left by each outcome: an output port, or `converted`,
    /// `completed` (a goal not reached in time), `failed`.
    pub exits: Vec<(String, i64)>,
}

/// One output of a node: the runs that took it and where it leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FunnelBranch {
    /// The output port (`next`, `yes`, `timed_out`, a split's label…).
    pub output: String,
    pub count: i64,
    /// The node it leads to; none where the path ends (the end, or unconnected).
    pub to: Option<String>,
    /// Whether `to` is drawn under this output; otherwise the output joins a
    /// node drawn under an earlier branch.
    pub nested: bool,
}

/// One node of the funnel, in drawing order.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelRow<'w> {
    pub node: &'w Node,
    /// Branch depth: 0 on the trigger's path, one more under each node with
    /// several outputs (a straight run of nodes stays at its depth).
    pub depth: u32,
    /// The node and output this node is drawn under (none for the trigger
    /// and for nodes no path reaches).
    pub via: Option<(String, String)>,
    pub counts: NodeCounts,
    /// Every output of the node's kind, in port order, taken or not.
    pub branches: Vec<FunnelBranch>,
    /// Runs that reached the goal here.
    pub converted: i64,
    /// Runs that ended here without converting: their path stops at this
    /// node, its goal was not reached, or the run failed. Runs that went on
    /// by another output did not leave: this is the funnel's only drop-off.
    pub left: i64,
}

/// A node to draw: its id, depth, and the (node, output) it is drawn under.
type Pending<'w> = (&'w str, u32, Option<(String, String)>);

/// The funnel of `workflow` from its trigger, depth first in port order, each
/// node once (where a second path joins a node already drawn, that output is
/// not nested); nodes no path reaches come last. `counts` gives a node's counts.
pub fn funnel(workflow: &Workflow, counts: impl Fn(&str) -> NodeCounts) -> Vec<FunnelRow<'_>> {
    let mut placed: Vec<FunnelRow<'_>> = Vec::with_capacity(workflow.nodes.len());
    // (node, depth, via): popped in depth-first order, first port first.
    let mut stack: Vec<Pending<'_>> = workflow.trigger().map(|t| (t.id.as_str(), 0, None)).into_iter().collect();
    while let Some((id, depth, via)) = stack.pop() {
        let Some(node) = workflow.node(id) else { continue };
        if placed.iter().any(|r| r.node.id == node.id) {
            continue;
        }
        let ports = node.kind.ports();
        let deeper = depth + u32::from(ports.len() > 1);
        for port in ports.iter().rev() {
            if let Some(next) = workflow.next(&node.id, port).filter(|n| *n != END) {
                stack.push((next, deeper, Some((node.id.clone(), port.clone()))));
            }
        }
        placed.push(row(workflow, node, depth, via, counts(&node.id)));
    }
    for node in &workflow.nodes {
        if !placed.iter().any(|r| r.node.id == node.id) {
            placed.push(row(workflow, node, 0, None, counts(&node.id)));
        }
    }
    // An output is nested where the node it leads to is drawn under it.
    let under: Vec<(String, Option<(String, String)>)> =
        placed.iter().map(|r| (r.node.id.clone(), r.via.clone())).collect();
    for r in &mut placed {
        for b in &mut r.branches {
            b.nested = b.to.as_ref().is_some_and(|to| {
                under.iter().any(|(id, via)| {
                    id == to && via.as_ref().is_some_and(|(from, out)| *from == r.node.id && *out == b.output)
                })
            });
        }
    }
    placed
}

fn row<'w>(
    workflow: &Workflow,
    node: &'w Node,
    depth: u32,
    via: Option<(String, String)>,
    counts: NodeCounts,
) -> FunnelRow<'w> {
    let exit = |name: &str| counts.exits.iter().filter(|(n, _)| n == name).map(|(_, c)| c).sum::<i64>();
    let ports = node.kind.ports();
    let branches: Vec<FunnelBranch> = ports
        .iter()
        .map(|p| FunnelBranch {
            output: p.clone(),
            count: exit(p),
            to: workflow.next(&node.id, p).filter(|n| *n != END).map(str::to_string),
            nested: false,
        })
        .collect();
    let converted = exit("converted");
    // Every other way out ends the run here: an output leading nowhere, a
    // missed goal, a failure.
    let left = counts
        .exits
        .iter()
        .filter(|(name, _)| name != "converted" && !branches.iter().any(|b| b.output == *name && b.to.is_some()))
        .map(|(_, n)| n)
        .sum();
    FunnelRow { node, depth, via, counts, branches, converted, left }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::templates;
    use std::collections::HashMap;

    /// (node, entered, waiting, exits)
    type Row<'a> = (&'a str, i64, i64, &'a [(&'a str, i64)]);

    fn counts(table: &[Row<'_>]) -> HashMap<String, NodeCounts> {
        table
            .iter()
            .map(|(node, entered, waiting, exits)| {
                let exits = exits.iter().map(|(o, n)| (o.to_string(), *n)).collect();
                (node.to_string(), NodeCounts { entered: *entered, waiting: *waiting, exits })
            })
            .collect()
    }

    #[test]
    fn branches_nest_under_their_output_and_only_runs_that_ended_count_as_left() {
        let w = templates::abandoned_cart();
        // Two carts: one checked out, one abandoned that got an offer and waits at the goal.
        let c = counts(&[
            ("trigger", 2, 0, &[("next", 2)]),
            ("wait_checkout", 2, 0, &[("received", 1), ("timed_out", 1)]),
            ("big_cart", 1, 0, &[("no", 1)]),
            ("worth_offer", 1, 0, &[("yes", 1)]),
            ("offer", 1, 0, &[("next", 1)]),
            ("converted", 1, 1, &[]),
        ]);
        let rows = funnel(&w, |id| c.get(id).cloned().unwrap_or_default());
        let order: Vec<(&str, u32)> = rows.iter().map(|r| (r.node.id.as_str(), r.depth)).collect();
        assert_eq!(
            order,
            [
                ("trigger", 0),
                ("wait_checkout", 0),
                ("big_cart", 1),
                ("alert_service", 2),
                ("worth_offer", 2),
                ("offer", 3),
                ("converted", 3),
                ("reminder", 3),
            ],
            "depth first in port order; a straight run stays at its depth"
        );
        let at = |id: &str| rows.iter().find(|r| r.node.id == id).unwrap();
        assert_eq!(at("big_cart").via, Some(("wait_checkout".into(), "timed_out".into())));
        // The untaken reminder branch: nobody entered, nobody left.
        let reminder = at("reminder");
        assert_eq!((reminder.counts.entered, reminder.left), (0, 0));
        assert_eq!(reminder.via, Some(("worth_offer".into(), "no".into())));
        // The checkout ended the run at the wait (its output leads to the end);
        // the timeout went on down another output, which is no loss.
        let wait = at("wait_checkout");
        assert_eq!(wait.left, 1);
        assert_eq!(
            wait.branches,
            [
                FunnelBranch { output: "received".into(), count: 1, to: None, nested: false },
                FunnelBranch { output: "timed_out".into(), count: 1, to: Some("big_cart".into()), nested: true },
            ]
        );
        // worth_offer is drawn under the alert; the condition's `no` joins it.
        let big = at("big_cart");
        assert_eq!(big.left, 0, "the untaken `yes` and the taken `no` both continue");
        assert_eq!(
            big.branches[1],
            FunnelBranch { output: "no".into(), count: 1, to: Some("worth_offer".into()), nested: false }
        );
        assert_eq!(at("worth_offer").via, Some(("alert_service".into(), "next".into())));
        assert_eq!((at("offer").left, at("converted").counts.waiting), (0, 1));
    }

    #[test]
    fn a_goal_counts_conversions_apart_from_runs_that_missed_it_or_failed() {
        let w = templates::abandoned_cart();
        let c = counts(&[("converted", 5, 0, &[("converted", 3), ("completed", 1), ("failed", 1)])]);
        let rows = funnel(&w, |id| c.get(id).cloned().unwrap_or_default());
        let goal = rows.iter().find(|r| r.node.id == "converted").unwrap();
        assert_eq!((goal.converted, goal.left), (3, 2));
        assert!(goal.branches.is_empty(), "a goal has no outputs");
        // A node no path reaches still shows, at the end.
        let mut lonely = templates::abandoned_cart();
        lonely.edges.retain(|e| e.to != "reminder");
        let rows = funnel(&lonely, |_| NodeCounts::default());
        assert_eq!(rows.last().map(|r| (r.node.id.as_str(), r.via.is_none())), Some(("reminder", true)));
        assert_eq!(rows.len(), lonely.nodes.len());
    }
}
