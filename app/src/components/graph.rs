//! A read-only picture of a workflow version with one run's path on it: the
//! nodes the run passed, the outputs it took, and where it waits now. The
//! same faces and curves as the designer, without any editing.

use crate::components::canvas::{self, family, icon, node_height, port_label, port_offset, Viewport, NODE_W};
use crate::model::RunStep;
use crate::workflow::{Node, Workflow};
use leptos::html;
use leptos::prelude::*;

/// The graph's least and greatest height on the page, in pixels: within
/// them it is as tall as the workflow; a taller one scrolls.
const MIN_HEIGHT: f64 = 220.0;
const MAX_HEIGHT: f64 = 520.0;
/// The width assumed before the browser has measured the page.
const FIRST_WIDTH: f64 = 1000.0;

/// The box's height for a workflow shown `width` wide: the workflow's whole
/// height at the zoom its width allows, and the box's border.
fn box_height(w: &Workflow, width: f64) -> f64 {
    let Some((x0, y0, x1, y1)) = canvas::bounds(w) else { return MIN_HEIGHT };
    let zoom = ((width - 2.0 * canvas::FIT_PAD) / (x1 - x0)).clamp(canvas::FIT_MIN_ZOOM, canvas::FIT_MAX_ZOOM);
    ((y1 - y0) * zoom + 2.0 * canvas::FIT_PAD + 2.0).ceil().clamp(MIN_HEIGHT, MAX_HEIGHT)
}

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
    let height = RwSignal::new(box_height(&workflow, FIRST_WIDTH));
    let view_port = RwSignal::new(Viewport::fit(&workflow, FIRST_WIDTH, height.get_untracked()));
    // Whether part of the workflow lies right of the box, to say it scrolls.
    let more = RwSignal::new(false);
    let measure = move || {
        if let Some(div) = el.get_untracked() {
            more.try_set(div.scroll_left() + div.client_width() < div.scroll_width() - 2);
        }
    };
    let fitted = workflow.clone();
    let current = waiting_at.clone().and_then(|id| workflow.node(&id).map(|n| n.x));
    // Fit to the real width once the browser has laid the page out (the next
    // frame: at mount the element may not have its width yet), and when the
    // run waits at a node out of sight, scroll it into the middle.
    Effect::new(move |_| {
        if let Some(div) = el.get() {
            let fitted = fitted.clone();
            request_animation_frame(move || {
                let width = f64::from(div.client_width());
                if width <= 0.0 {
                    return;
                }
                let h = box_height(&fitted, width);
                height.try_set(h);
                let v = Viewport::fit(&fitted, width, h - 2.0);
                view_port.try_set(v);
                if let Some(x) = current {
                    let (left, right) = (x * v.zoom + v.x, (x + NODE_W) * v.zoom + v.x);
                    if right > width {
                        div.set_scroll_left(((left + right - width) / 2.0) as i32);
                    }
                }
                // The new zoom is laid out by the next frame.
                request_animation_frame(measure);
            });
        }
    });
    let seen = visits(&steps);
    let edges = canvas::edge_views(&workflow, |e| took(&steps, &e.from, &e.port));
    let nodes = workflow
        .nodes
        .iter()
        .map(|n| graph_node(&workflow, n, seen.get(&n.id), waiting_at.as_deref() == Some(n.id.as_str())))
        .collect_view();
    let transform = move || {
        let v = view_port.get();
        format!("transform: translate({:.1}px, {:.1}px) scale({:.3})", v.x, v.y, v.zoom)
    };
    // A fit never goes below the readable zoom, so a wide workflow overflows
    // the box: this invisible block spans the workflow plus the fit's margin,
    // which gives the box (overflow: auto) the right scroll range. The edges'
    // SVG overflows visibly and would not count towards it.
    let (_, _, right, bottom) = canvas::bounds(&workflow).unwrap_or_default();
    let extent = move || {
        let v = view_port.get();
        let pad = canvas::FIT_PAD / v.zoom;
        format!("width: {:.0}px; height: {:.0}px", right + pad, bottom + pad)
    };
    view! {
        <div class="graph-frame" data-testid="run-graph">
            <div
                class="canvas graph"
                node_ref=el
                style=move || format!("height: {}px", height.get())
                on:scroll=move |_| measure()
            >
                <div class="world" style=transform>
                    <div class="graph-extent" style=extent></div>
                    <svg class="edges" width="1" height="1">
                        {canvas::arrow_defs()}
                        {edges}
                    </svg>
                    {nodes}
                </div>
            </div>
            <Show when=move || more.get()>
                <span class="graph-more" data-testid="graph-more">
                    "Scroll sideways for the rest →"
                </span>
            </Show>
        </div>
    }
}

fn graph_node(w: &Workflow, n: &Node, visit: Option<&NodeVisit>, waiting: bool) -> impl IntoView {
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
    let on_edge = |port: &str| canvas::label_on_edge(w, &n.id, port);
    let port_views = ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let top = port_offset(h, i, count);
            view! {
                <div class="port out" style=format!("top: {top}px")>
                    {port_label(p).map(|l| {
                        let class = if on_edge(p) { "port-label on-edge" } else { "port-label" };
                        view! { <span class=class>{l}</span> }
                    })}
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
    fn the_graph_is_as_tall_as_its_workflow_at_a_readable_zoom() {
        let cart = crate::workflow::templates::abandoned_cart();
        let (_, y0, _, y1) = canvas::bounds(&cart).unwrap();
        // Too wide to fit: shown at the readable zoom, all of its height in the box.
        let h = box_height(&cart, 1000.0);
        assert!(h >= (y1 - y0) * canvas::FIT_MIN_ZOOM + 2.0 * canvas::FIT_PAD);
        let v = Viewport::fit(&cart, 1000.0, h - 2.0);
        assert_eq!(v.zoom, canvas::FIT_MIN_ZOOM);
        assert!(y0 * v.zoom + v.y >= canvas::FIT_PAD - 1e-9, "no vertical scroll: {v:?}");
        let short = crate::workflow::templates::low_inventory();
        assert_eq!(box_height(&short, 1000.0), MIN_HEIGHT);
        assert_eq!(box_height(&Workflow { nodes: vec![], ..short }, 1000.0), MIN_HEIGHT);
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
