//! The canvas's geometry and node faces: where nodes and ports sit, how edges
//! curve, what a node says about its configuration, and its icon. Pure
//! functions; the designer page wires them to pointer events.

use crate::workflow::describe::span_words;
use crate::workflow::rules::{Operand, RuleGroup, RuleItem};
use crate::workflow::validate::END;
use crate::workflow::{Edge, Node, NodeKind, ProfileChange, Workflow};
use leptos::prelude::*;

pub const NODE_W: f64 = 220.0;
/// Room for a node's head, two lines of summary and its id (style/main.css).
const MIN_H: f64 = 96.0;
const PORT_GAP: f64 = 26.0;
/// How far right of a node an unlabelled output's end marker ("▢ end")
/// reaches, and an unconnected output's label.
const END_ROOM: f64 = 72.0;

/// A node's height: tall enough for its output ports.
pub fn node_height(kind: &NodeKind) -> f64 {
    MIN_H.max(30.0 + PORT_GAP * kind.ports().len() as f64)
}

/// Where output `index` of `count` sits, relative to the node's top.
pub fn port_offset(height: f64, index: usize, count: usize) -> f64 {
    height * (index as f64 + 1.0) / (count as f64 + 1.0)
}

/// A smooth left-to-right curve between two points.
pub fn curve(x1: f64, y1: f64, x2: f64, y2: f64) -> String {
    let dx = ((x2 - x1).abs() / 2.0).max(40.0);
    format!("M {x1:.1} {y1:.1} C {:.1} {y1:.1}, {:.1} {y2:.1}, {x2:.1} {y2:.1}", x1 + dx, x2 - dx)
}

/// Where an output port of a node sits, in world coordinates.
pub fn port_point(n: &Node, port: &str) -> Option<(f64, f64)> {
    let ports = n.kind.ports();
    let i = ports.iter().position(|p| p == port)?;
    let h = node_height(&n.kind);
    Some((n.x + NODE_W, n.y + port_offset(h, i, ports.len())))
}

/// The label an output shows on its edge; the plain `next` output has none.
pub fn port_label(port: &str) -> Option<String> {
    match port {
        "next" => None,
        "timed_out" => Some("timed out".into()),
        other => Some(other.replace('_', " ")),
    }
}

/// Whether output `port` of `from` is connected, so that its edge shows the
/// output's label and the port need not repeat it (the two would crowd the
/// gap between the nodes). An unconnected output keeps its label at the port.
pub fn label_on_edge(w: &Workflow, from: &str, port: &str) -> bool {
    w.next(from, port).is_some()
}

/// Where an output that ends the run draws its end marker, right of the
/// port: after the output's label, when it has one.
fn end_marker_at(port: &str) -> f64 {
    port_label(port).map_or(36.0, |l| 12.0 + label_width(&l) + 16.0)
}

/// How far right of its port an output that ends the run reaches.
pub fn end_reach(port: &str) -> f64 {
    end_marker_at(port) + END_ROOM - 36.0
}

/// The width of the pill an edge's label sits in (12 px bold text).
pub fn label_width(label: &str) -> f64 {
    12.0 + 7.0 * label.chars().count() as f64
}

/// The arrowheads edges end in: plain, and for a path a run took.
pub fn arrow_defs() -> impl IntoView {
    view! {
        <defs>
            <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                <path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead" />
            </marker>
            <marker id="arrow-taken" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse">
                <path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead taken" />
            </marker>
        </defs>
    }
}

/// Every edge of `w` as a curve with its branch label; `taken` edges are
/// drawn as the path a run followed.
pub fn edge_views(w: &Workflow, taken: impl Fn(&Edge) -> bool) -> Vec<AnyView> {
    let mut out = Vec::new();
    for e in &w.edges {
        let Some(from) = w.node(&e.from) else { continue };
        let Some((x1, y1)) = port_point(from, &e.port) else { continue };
        let class = if taken(e) { "edge taken" } else { "edge" };
        if e.to == END {
            let at = x1 + end_marker_at(&e.port);
            let d = format!("M {x1:.1} {y1:.1} H {at:.1}");
            out.push(
                view! {
                    <g class=format!("{class} to-end")>
                        <path d=d />
                        {port_label(&e.port).map(|l| {
                            let width = label_width(&l);
                            view! {
                                <g class="edge-label">
                                    <rect x=x1 + 12.0 y=y1 - 10.0 width=width height="20" rx="10" />
                                    <text x=x1 + 12.0 + width / 2.0 y=y1 + 4.0 text-anchor="middle">{l}</text>
                                </g>
                            }
                        })}
                        <rect x=at y=y1 - 6.0 width="12" height="12" rx="2" />
                        <text x=at + 16.0 y=y1 + 4.0 class="end-label">"end"</text>
                    </g>
                }
                .into_any(),
            );
            continue;
        }
        let Some(to) = w.node(&e.to) else { continue };
        let (x2, y2) = (to.x, to.y + node_height(&to.kind) / 2.0);
        let (mx, my) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0);
        let marker = if taken(e) { "url(#arrow-taken)" } else { "url(#arrow)" };
        out.push(
            view! {
                <g class=class data-edge=format!("{}:{}", e.from, e.port)>
                    <path d=curve(x1, y1, x2, y2) marker-end=marker />
                    {port_label(&e.port).map(|l| {
                        let width = label_width(&l);
                        view! {
                            <g class="edge-label">
                                <rect x=mx - width / 2.0 y=my - 10.0 width=width height="20" rx="10" />
                                <text x=mx y=my + 4.0 text-anchor="middle">{l}</text>
                            </g>
                        }
                    })}
                </g>
            }
            .into_any(),
        );
    }
    out
}

/// Pan and zoom: a world point `p` shows at `p * zoom + (x, y)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Viewport {
    pub x: f64,
    pub y: f64,
    pub zoom: f64,
}

impl Default for Viewport {
    fn default() -> Self {
        Viewport { x: 40.0, y: 40.0, zoom: 1.0 }
    }
}

impl Viewport {
    pub fn to_world(&self, sx: f64, sy: f64) -> (f64, f64) {
        ((sx - self.x) / self.zoom, (sy - self.y) / self.zoom)
    }

    /// Zooms by `factor` keeping the screen point (sx, sy) still.
    pub fn zoom_at(&self, factor: f64, sx: f64, sy: f64) -> Viewport {
        let zoom = (self.zoom * factor).clamp(0.25, 2.0);
        let (wx, wy) = self.to_world(sx, sy);
        Viewport { x: sx - wx * zoom, y: sy - wy * zoom, zoom }
    }

    /// Shows the workflow in a `width` × `height` screen area, as large as
    /// fits but never below [`FIT_MIN_ZOOM`]: a workflow too big for the
    /// screen at that zoom starts at its top-left corner (where the trigger
    /// is), and the rest is a pan or a scroll away.
    pub fn fit(w: &Workflow, width: f64, height: f64) -> Viewport {
        let Some((x0, y0, x1, y1)) = bounds(w) else { return Viewport::default() };
        if width <= 0.0 || height <= 0.0 {
            return Viewport::default();
        }
        let zoom = ((width - 2.0 * FIT_PAD) / (x1 - x0))
            .min((height - 2.0 * FIT_PAD) / (y1 - y0))
            .clamp(FIT_MIN_ZOOM, FIT_MAX_ZOOM);
        // Centred on an axis where it fits, from its start where it does not.
        let place = |screen: f64, lo: f64, hi: f64| {
            let size = (hi - lo) * zoom;
            if size <= screen - 2.0 * FIT_PAD {
                (screen - size) / 2.0 - lo * zoom
            } else {
                FIT_PAD - lo * zoom
            }
        };
        Viewport { x: place(width, x0, x1), y: place(height, y0, y1), zoom }
    }
}

/// The smallest zoom a fit picks: at 0.8 a node's summary is about 10 px
/// high and its output labels 9 px, the least that still reads comfortably.
pub const FIT_MIN_ZOOM: f64 = 0.8;
/// A fit does not enlarge a small workflow past its natural size.
pub const FIT_MAX_ZOOM: f64 = 1.0;
/// Room left around a fitted workflow, in screen pixels.
pub const FIT_PAD: f64 = 40.0;

/// The world area a workflow takes, (left, top, right, bottom): its nodes,
/// and right of those with outputs the room an output label or an end
/// marker needs. `None` for an empty workflow.
pub fn bounds(w: &Workflow) -> Option<(f64, f64, f64, f64)> {
    if w.nodes.is_empty() {
        return None;
    }
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for n in &w.nodes {
        x0 = x0.min(n.x);
        y0 = y0.min(n.y);
        let outputs = if n.kind.ports().is_empty() { 0.0 } else { END_ROOM };
        x1 = x1.max(n.x + NODE_W + outputs);
        y1 = y1.max(n.y + node_height(&n.kind));
    }
    for e in w.edges.iter().filter(|e| e.to == END) {
        if let Some(n) = w.node(&e.from) {
            x1 = x1.max(n.x + NODE_W + end_reach(&e.port));
        }
    }
    Some((x0, y0, x1, y1))
}

fn operand_text(o: &Operand) -> String {
    match o {
        Operand::Event { path } => path.clone(),
        Operand::Profile { attribute } => format!("customer.{attribute}"),
        Operand::CountInWindow { event, hours } => format!("count of {event} in {hours} h"),
        Operand::SumInWindow { event, path, hours } => format!("sum of {event}.{path} in {hours} h"),
        Operand::LastSeen => "last seen".into(),
    }
}

/// "cart.value > 500", "and 2 more".
pub fn rules_text(g: &RuleGroup) -> String {
    let count = g.items.len();
    let first = match g.items.first() {
        None => return "no rules yet".into(),
        Some(RuleItem::Group(inner)) => format!("({})", rules_text(inner)),
        Some(RuleItem::Rule(r)) => {
            use crate::workflow::rules::Op::*;
            let op = match r.op {
                Eq => "=",
                Ne => "≠",
                Lt => "<",
                Le => "≤",
                Gt => ">",
                Ge => "≥",
                Contains => "contains",
                StartsWith => "starts with",
                In => "in",
                Exists => "exists",
                NotExists => "does not exist",
            };
            let value = match &r.value {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => format!(" {s}"),
                other => format!(" {other}"),
            };
            format!("{} {op}{value}", operand_text(&r.operand))
        }
    };
    let join = match g.join {
        crate::workflow::rules::Join::All => "and",
        crate::workflow::rules::Join::Any => "or",
    };
    if count > 1 {
        format!("{first} {join} {} more", count - 1)
    } else {
        first
    }
}

/// One line about a node's configuration, for its face on the canvas.
pub fn summary(kind: &NodeKind) -> String {
    let or_missing = |s: &str, what: &str| if s.trim().is_empty() { format!("set the {what}") } else { s.to_string() };
    match kind {
        NodeKind::Trigger { event, filter, sources } => {
            let mut s = or_missing(event, "event");
            if !sources.is_empty() {
                s.push_str(&format!(" from {}", sources.join(", ")));
            }
            if let Some(f) = filter.as_ref().filter(|f| !f.items.is_empty()) {
                s.push_str(&format!(" · if {}", rules_text(f)));
            }
            s
        }
        NodeKind::Condition { rules } => rules_text(rules),
        NodeKind::Delay { span: Some(s), .. } => span_words(s),
        NodeKind::Delay { until_time_of_day: Some(t), .. } => format!("until {t} UTC"),
        NodeKind::Delay { .. } => "set a duration".into(),
        NodeKind::WaitForEvent { events, timeout, .. } => {
            let names: Vec<&str> = events.iter().map(String::as_str).filter(|e| !e.trim().is_empty()).collect();
            if names.is_empty() {
                "set the event".into()
            } else {
                format!("{} · {}", names.join(" or "), span_words(timeout))
            }
        }
        NodeKind::Split { branches } => {
            branches.iter().map(|b| format!("{} {}", b.label, b.weight)).collect::<Vec<_>>().join(" · ")
        }
        NodeKind::Offer { discount, value, valid_for, code_prefix } => {
            let amount = match discount {
                crate::workflow::DiscountKind::Percent => format!("{value} % off"),
                crate::workflow::DiscountKind::FixedAmount => format!("{value} off"),
                crate::workflow::DiscountKind::FreeShipping => "free shipping".into(),
            };
            // The code itself is made per run; "CART-…" read as if the face were cut off.
            format!("{amount} for {} · codes start with {}-", span_words(valid_for), code_prefix.to_ascii_uppercase())
        }
        NodeKind::Alert { severity, audience, .. } => format!("{severity:?} → {audience}"),
        NodeKind::Webhook { method, url, .. } => {
            let host = url.split("://").nth(1).and_then(|rest| rest.split('/').next()).unwrap_or("");
            format!("{method} {}", or_missing(host, "URL"))
        }
        NodeKind::UpdateProfile { changes } if changes.is_empty() => "add a change".into(),
        NodeKind::UpdateProfile { changes } => changes
            .iter()
            .map(|c| match c {
                ProfileChange::Set { attribute, .. } => format!("set {attribute}"),
                ProfileChange::Unset { attribute } => format!("unset {attribute}"),
                ProfileChange::AddTag { tag } => format!("tag {tag}"),
                ProfileChange::RemoveTag { tag } => format!("untag {tag}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        NodeKind::Goal { event, match_offer_code, within } => format!(
            "{}{} · {}",
            or_missing(event, "event"),
            if *match_offer_code { " with the code" } else { "" },
            span_words(within)
        ),
    }
}

/// The kind's family, for its colour.
pub fn family(type_name: &str) -> &'static str {
    match type_name {
        "trigger" => "start",
        "condition" | "split" => "logic",
        "delay" | "wait_for_event" => "time",
        "goal" => "goal",
        _ => "action",
    }
}

/// A 16 × 16 line icon for a node kind.
pub fn icon(type_name: &str) -> impl IntoView {
    let d = match type_name {
        "trigger" => "M9 1 L3 9 H7.5 L6.5 15 L13 6.5 H8.5 Z",
        "condition" => "M8 1.5 L14.5 8 L8 14.5 L1.5 8 Z",
        "delay" => "M8 1.5 A6.5 6.5 0 1 0 8.01 1.5 M8 4 V8 L11 10",
        "wait_for_event" => "M4 1.5 H12 L8 8 L12 14.5 H4 L8 8 Z",
        "split" => "M1.5 8 H6 L13 3 M6 8 L13 13 M11 2 L13.5 3 L12.5 5.5 M11 14 L13.5 13 L12.5 10.5",
        "offer" => "M1.5 1.5 H8 L14.5 8 L8 14.5 L1.5 8 Z M5 5 H5.01",
        "alert" => "M8 1.5 L15 14 H1 Z M8 6 V9.5 M8 11.5 V11.6",
        "webhook" => "M2 5 H13 L10 2 M14 11 H3 L6 14",
        "update_profile" => "M8 2 A3 3 0 1 0 8.01 2 M2.5 14.5 C3 10.5 13 10.5 13.5 14.5",
        _ => "M3 15 V1.5 H13 L10.5 5 L13 8.5 H3",
    };
    view! {
        <svg class="icon" viewBox="0 0 16 16" width="16" height="16" aria-hidden="true">
            <path d=d fill="none" stroke="currentColor" stroke-width="1.6" stroke-linejoin="round" stroke-linecap="round" />
        </svg>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::templates::abandoned_cart;

    #[test]
    fn geometry_places_ports_and_fits_the_workflow() {
        let w = abandoned_cart();
        let split = NodeKind::blank("split").unwrap();
        assert!(node_height(&split) >= MIN_H);
        assert_eq!(port_offset(90.0, 0, 2), 30.0);
        assert_eq!(port_offset(90.0, 1, 2), 60.0);
        // With room for all of it, all of it shows, at no more than natural size.
        let v = Viewport::fit(&w, 2600.0, 900.0);
        assert_eq!(v.zoom, 1.0);
        for n in &w.nodes {
            let (sx, sy) = (n.x * v.zoom + v.x, n.y * v.zoom + v.y);
            assert!((0.0..2600.0).contains(&sx) && (0.0..900.0).contains(&sy), "{} at {sx},{sy}", n.id);
        }
        // Without, it stays readable and starts at the trigger; the rest is a pan away.
        let v = Viewport::fit(&w, 890.0, 792.0);
        assert_eq!(v.zoom, FIT_MIN_ZOOM);
        let trigger = w.node("trigger").unwrap();
        assert_eq!(trigger.x * v.zoom + v.x, FIT_PAD, "the trigger sits at the left margin");
        let (_, y0, _, y1) = bounds(&w).unwrap();
        assert!(
            ((y0 * v.zoom + v.y) - (792.0 - (y1 * v.zoom + v.y))).abs() < 1e-9,
            "centred vertically, where it fits"
        );
        assert_eq!(Viewport::fit(&Workflow { nodes: vec![], ..w.clone() }, 890.0, 792.0), Viewport::default());
        let z = v.zoom_at(1.5, 300.0, 200.0);
        let before = v.to_world(300.0, 200.0);
        let after = z.to_world(300.0, 200.0);
        assert!((before.0 - after.0).abs() < 1e-9 && (before.1 - after.1).abs() < 1e-9, "zoom keeps the point");
        assert!(curve(0.0, 0.0, 100.0, 50.0).starts_with("M 0.0 0.0 C 50.0 0.0"));
    }

    /// The designer's canvas in a 1440 × 900 window: less the palette (190)
    /// and the inspector (360) across, the top bar and the toolbar down.
    const CANVAS_1440: (f64, f64) = (890.0, 792.0);

    #[test]
    fn templates_leave_room_for_their_labels_and_open_at_a_readable_zoom() {
        for t in crate::workflow::templates::templates() {
            let w = &t.workflow;
            let h = |n: &Node| node_height(&n.kind);
            for (i, a) in w.nodes.iter().enumerate() {
                for b in &w.nodes[i + 1..] {
                    // Apart across, or apart down with room for the live counters above a node.
                    let across = a.x + NODE_W + 40.0 <= b.x || b.x + NODE_W + 40.0 <= a.x;
                    let down = a.y + h(a) + 24.0 <= b.y || b.y + h(b) + 24.0 <= a.y;
                    assert!(across || down, "{}: {} and {} crowd each other", t.name, a.id, b.id);
                }
            }
            for e in &w.edges {
                let from = w.node(&e.from).unwrap();
                let (x1, y1) = port_point(from, &e.port).unwrap();
                if e.to == END {
                    // The end marker, and the label above it, run into no node.
                    let blocked = w.nodes.iter().any(|n| {
                        n.x < x1 + end_reach(&e.port) && n.x + NODE_W > x1 && n.y - 24.0 < y1 && n.y + h(n) > y1 - 24.0
                    });
                    assert!(!blocked, "{}: the end of {}:{} runs into a node", t.name, e.from, e.port);
                } else if let Some(label) = port_label(&e.port) {
                    let gap = w.node(&e.to).unwrap().x - x1;
                    assert!(gap >= label_width(&label) + 40.0, "{}: no room for '{label}' ({gap} px)", t.name);
                }
            }
            let v = Viewport::fit(w, CANVAS_1440.0, CANVAS_1440.1);
            assert!(v.zoom >= FIT_MIN_ZOOM, "{} opens at {}", t.name, v.zoom);
        }
        // The two short templates show whole at 1440 × 900.
        for w in [crate::workflow::templates::high_value_transaction(), crate::workflow::templates::low_inventory()] {
            let v = Viewport::fit(&w, CANVAS_1440.0, CANVAS_1440.1);
            let (x0, _, x1, _) = bounds(&w).unwrap();
            assert!(x0 * v.zoom + v.x >= 0.0 && x1 * v.zoom + v.x <= CANVAS_1440.0, "{:?}", v);
        }
    }

    #[test]
    fn node_faces_summarise_their_configuration() {
        let w = abandoned_cart();
        let face = |id: &str| summary(&w.node(id).unwrap().kind);
        assert_eq!(face("trigger"), "cart_updated");
        assert_eq!(face("wait_checkout"), "checkout_started or order_completed · 30 minutes");
        assert_eq!(face("big_cart"), "cart.value > 500");
        assert_eq!(face("offer"), "10 % off for 24 hours · codes start with CART-");
        assert_eq!(face("converted"), "order_completed with the code · 24 hours");
        assert_eq!(face("reminder"), "POST crm.example.com");
        assert_eq!(summary(&NodeKind::blank("trigger").unwrap()), "set the event");
    }
}
