//! A read-only picture of a workflow version with one run's path on it: the
//! nodes the run passed, the outputs it took, and where it waits now. The
//! same faces and curves as the designer, without any editing.

use crate::components::canvas::{self, family, icon, node_height, port_label, port_offset, Viewport, NODE_W};
use crate::model::RunStep;
use crate::workflow::{Node, Workflow};
use leptos::html;
use leptos::prelude::*;

/// The graph's height on the page, in pixels.
const HEIGHT: f64 = 360.0;
/// The width assumed before the browser has measured the page.
const FIRST_WIDTH: f64 = 1000.0;

/// What a run did at one node: how often it left it and its last outcome.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeVisit {
    pub passes: usize,
    pub outcome: String,
    pub detail: Option<String>,
}

/// The run's visits per node, in trace order.
pub fn visits(steps: &[RunStep]) -> std::collections::HashMap<String, NodeVisit> {
    let mut out: std::collections::HashMap<String, NodeVisit> = std::collections::HashMap::new();
    for s in steps {
        let v = out.entry(s.node.clone()).or_default();
        // Pausing at a wait and resuming there is one pass, not two.
        if s.outcome != "waiting" {
            v.passes += 1;
        }
        v.outcome = s.outcome.clone();
        v.detail = s.detail.clone();
    }
    out
}

/// Whether the run left `from` through `port` at some step.
pub fn took(steps: &[RunStep], from: &str, port: &str) -> bool {
    steps.iter().any(|s| s.node == from && s.outcome == port)
}

/// How an outcome reads on a node's chip.
fn outcome_text(outcome: &str) -> String {
    match outcome {
        "next" => "passed".into(),
        other => port_label(other).unwrap_or_else(|| other.to_string()),
    }
}

#[component]
pub fn RunGraph(workflow: Workflow, steps: Vec<RunStep>, #[prop(into)] waiting_at: Option<String>) -> impl IntoView {
    let el = NodeRef::<html::Div>::new();
    let view_port = RwSignal::new(Viewport::fit(&workflow, FIRST_WIDTH, HEIGHT));
    let fitted = workflow.clone();
    // Fit to the real width once the browser has laid the page out (the next
    // frame: at mount the element may not have its width yet).
    Effect::new(move |_| {
        if let Some(div) = el.get() {
            let fitted = fitted.clone();
            request_animation_frame(move || {
                let width = f64::from(div.client_width());
                if width > 0.0 {
                    view_port.try_set(Viewport::fit(&fitted, width, HEIGHT));
                }
            });
        }
    });
    let seen = visits(&steps);
    let edges = canvas::edge_views(&workflow, |e| took(&steps, &e.from, &e.port));
    let nodes = workflow
        .nodes
        .iter()
        .map(|n| graph_node(n, seen.get(&n.id), waiting_at.as_deref() == Some(n.id.as_str())))
        .collect_view();
    let transform = move || {
        let v = view_port.get();
        format!("transform: translate({:.1}px, {:.1}px) scale({:.3})", v.x, v.y, v.zoom)
    };
    view! {
        <div class="canvas graph" node_ref=el style=format!("height: {HEIGHT}px") data-testid="run-graph">
            <div class="world" style=transform>
                <svg class="edges" width="1" height="1">
                    {canvas::arrow_defs()}
                    {edges}
                </svg>
                {nodes}
            </div>
        </div>
    }
}

fn graph_node(n: &Node, visit: Option<&NodeVisit>, waiting: bool) -> impl IntoView {
    let type_name = n.kind.type_name();
    let h = node_height(&n.kind);
    let mut class = format!("node family-{}", family(type_name));
    class.push_str(match (waiting, visit) {
        (true, _) => " current",
        (false, Some(_)) => " passed",
        (false, None) => " untouched",
    });
    let ports = n.kind.ports();
    let count = ports.len();
    let port_views = ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let top = port_offset(h, i, count);
            view! {
                <div class="port out" style=format!("top: {top}px")>
                    {port_label(p).map(|l| view! { <span class="port-label">{l}</span> })}
                </div>
            }
        })
        .collect_view();
    let chip = visit.map(|v| {
        let mut text = if waiting { "waiting".to_string() } else { outcome_text(&v.outcome) };
        if v.passes > 1 {
            text.push_str(&format!(" ×{}", v.passes));
        }
        view! { <span class="node-outcome" title=v.detail.clone().unwrap_or_default()>{text}</span> }
    });
    view! {
        <div
            class=class
            style=format!("left: {}px; top: {}px; width: {NODE_W}px; height: {h}px", n.x, n.y)
            data-testid=format!("graph-node-{}", n.id)
        >
            {(type_name != "trigger").then(|| view! { <div class="port in"></div> })}
            <div class="node-head">
                <span class="node-icon">{icon(type_name)}</span>
                <span class="node-kind">{n.kind.label()}</span>
                {chip}
            </div>
            <div class="node-summary">{canvas::summary(&n.kind)}</div>
            <div class="node-id">{n.id.clone()}</div>
            {port_views}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(node: &str, outcome: &str) -> RunStep {
        RunStep { seq: 0, node: node.into(), outcome: outcome.into(), detail: None, at: 0 }
    }

    #[test]
    fn a_runs_trace_marks_nodes_and_the_outputs_it_took() {
        let steps = vec![step("trigger", "next"), step("wait", "waiting"), step("wait", "timed_out")];
        let seen = visits(&steps);
        assert_eq!(seen["wait"].passes, 1, "waiting then timing out is one pass");
        assert_eq!(seen["wait"].outcome, "timed_out");
        assert!(took(&steps, "wait", "timed_out"));
        assert!(!took(&steps, "wait", "received"));
        assert_eq!(outcome_text("timed_out"), "timed out");
        assert_eq!(outcome_text("next"), "passed");
    }
}
