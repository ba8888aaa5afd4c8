//! The workflow designer (`/workflows/:id`): a canvas of nodes and curved
//! edges with a palette, an inspector, validation from the pure core, undo,
//! autosave, publishing, versions with diffs and rollback, and export.

use crate::components::canvas::{
    self, curve, family, icon, node_height, port_label, port_offset, port_point, Viewport, NODE_W,
};
use crate::components::live::use_live_ticks;
use crate::error::AppError;
use crate::model::{WorkflowStatus, WorkflowSummary, WorkflowVersion};
use crate::pages::settings::format_ms;
use crate::pages::workflows::{
    diff_workflow, get_workflow, publish_workflow, rollback_workflow, save_workflow, set_workflow_paused, status_badge,
    workflow_versions,
};
use crate::workflow::diff::{Change, Diff};
use crate::workflow::rules::{Join, Op, Operand, Rule, RuleGroup, RuleItem, ValueType};
use crate::workflow::validate::END;
use crate::workflow::*;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use serde_json::Value;
use std::time::Duration;

/// Undo and redo stacks; edits with the same key in a row (typing in one
/// field) are one step.
#[derive(Default)]
struct History {
    past: Vec<Workflow>,
    future: Vec<Workflow>,
    last_key: Option<String>,
}

const HISTORY_LIMIT: usize = 200;

#[derive(Debug, Clone, PartialEq)]
enum SaveState {
    Saved,
    Dirty,
    Saving,
    Failed(String),
    /// Someone else saved; our changes stay on screen and are not sent.
    Conflict(String),
}

/// A pointer gesture in progress.
#[derive(Debug, Clone)]
enum Gesture {
    Pan { sx: f64, sy: f64, from: Viewport },
    Move { sx: f64, sy: f64, start: Vec<(String, f64, f64)>, before: Workflow, moved: bool },
    Connect { from: String, port: String },
}

type AfterSave = Box<dyn FnOnce(bool) + Send + Sync>;

/// The designer's state: small `Copy` handles to signals.
#[derive(Clone, Copy)]
struct Ed {
    id: StoredValue<String>,
    wf: RwSignal<Workflow>,
    name: RwSignal<String>,
    summary: RwSignal<Option<WorkflowSummary>>,
    revision: RwSignal<i64>,
    selected: RwSignal<Vec<String>>,
    view: RwSignal<Viewport>,
    /// The first fit to the canvas's real size is done (the server renders
    /// the default viewport).
    fitted: RwSignal<bool>,
    history: StoredValue<History>,
    /// (can undo, can redo)
    undo_state: RwSignal<(bool, bool)>,
    editable: RwSignal<bool>,
    /// A published version shown read-only instead of the draft.
    showing: RwSignal<Option<WorkflowVersion>>,
    diff: RwSignal<Option<(String, Diff)>>,
    save: RwSignal<SaveState>,
    generation: StoredValue<u64>,
    /// A save request is on its way; another waits for it rather than race it.
    in_flight: StoredValue<bool>,
    /// What to do once the next save ends (publish, roll back), told whether it worked.
    after_save: StoredValue<Vec<AfterSave>>,
    gesture: StoredValue<Option<Gesture>>,
    /// The loose end of a connection being drawn, in world coordinates.
    pointer: RwSignal<Option<(String, String, f64, f64)>>,
    notice: RwSignal<Option<(bool, String)>>,
    versions_changed: RwSignal<u32>,
    /// The running version's counts per node (last 24 h), when it runs.
    live: RwSignal<std::collections::HashMap<String, crate::model::FunnelStep>>,
}

impl Ed {
    fn read_only(self) -> bool {
        !self.editable.get() || self.showing.with(Option::is_some)
    }

    fn shown(self) -> Workflow {
        match self.showing.get() {
            Some(v) => v.definition,
            None => self.wf.get(),
        }
    }

    fn shown_node(self, id: &str) -> Option<Node> {
        match self.showing.with(|s| s.as_ref().map(|v| v.definition.node(id).cloned())) {
            Some(found) => found,
            None => self.wf.with(|w| w.node(id).cloned()),
        }
    }

    /// Whether the shown workflow draws this output's label on its edge.
    fn label_on_edge(self, id: &str, port: &str) -> bool {
        match self.showing.with(|s| s.as_ref().map(|v| canvas::label_on_edge(&v.definition, id, port))) {
            Some(on_edge) => on_edge,
            None => self.wf.with(|w| canvas::label_on_edge(w, id, port)),
        }
    }

    fn refresh_undo(self) {
        let state = self.history.with_value(|h| (!h.past.is_empty(), !h.future.is_empty()));
        self.undo_state.set(state);
    }

    /// Applies an edit as one undoable step (or part of the last one, when `key` repeats).
    fn change(self, key: Option<String>, f: impl FnOnce(&mut Workflow)) {
        if self.read_only() {
            return;
        }
        let before = self.wf.get_untracked();
        self.history.update_value(|h| {
            if key.is_none() || h.last_key != key {
                h.past.push(before);
                if h.past.len() > HISTORY_LIMIT {
                    h.past.remove(0);
                }
            }
            h.future.clear();
            h.last_key = key;
        });
        self.wf.update(f);
        self.refresh_undo();
        self.touch();
    }

    fn edit_node(self, id: &str, field: &str, f: impl FnOnce(&mut NodeKind)) {
        let key = format!("{id}:{field}");
        let id = id.to_string();
        self.change(Some(key), move |w| {
            if let Some(n) = w.nodes.iter_mut().find(|n| n.id == id) {
                f(&mut n.kind);
            }
        });
    }

    fn undo(self) {
        if self.read_only() {
            return;
        }
        let current = self.wf.get_untracked();
        let prev = self.history.try_update_value(|h| {
            let prev = h.past.pop()?;
            h.future.push(current);
            h.last_key = None;
            Some(prev)
        });
        if let Some(Some(prev)) = prev {
            self.wf.set(prev);
            self.keep_selection();
            self.refresh_undo();
            self.touch();
        }
    }

    fn redo(self) {
        if self.read_only() {
            return;
        }
        let current = self.wf.get_untracked();
        let next = self.history.try_update_value(|h| {
            let next = h.future.pop()?;
            h.past.push(current);
            h.last_key = None;
            Some(next)
        });
        if let Some(Some(next)) = next {
            self.wf.set(next);
            self.keep_selection();
            self.refresh_undo();
            self.touch();
        }
    }

    /// Records a finished drag as one undoable step and saves it.
    fn commit_move(self, before: Workflow) {
        self.history.update_value(|h| {
            h.past.push(before);
            h.future.clear();
            h.last_key = None;
        });
        self.refresh_undo();
        self.touch();
    }

    fn keep_selection(self) {
        let ids: Vec<String> = self.wf.with_untracked(|w| w.nodes.iter().map(|n| n.id.clone()).collect());
        self.selected.update(|s| s.retain(|id| ids.contains(id)));
    }

    /// Marks the draft changed and saves it shortly after the last change.
    fn touch(self) {
        if matches!(self.save.try_get_untracked(), None | Some(SaveState::Conflict(_))) {
            return;
        }
        self.save.set(SaveState::Dirty);
        let generation = self.generation.try_update_value(|g| {
            *g += 1;
            *g
        });
        set_timeout(
            move || {
                if self.generation.try_get_value() == generation
                    && self.save.try_get_untracked() == Some(SaveState::Dirty)
                {
                    self.save_now(None);
                }
            },
            Duration::from_millis(700),
        );
    }

    /// Takes a saved workflow's revision and summary, unless a newer answer came first.
    fn accept(self, detail: &crate::model::WorkflowDetail) {
        if self.revision.try_get_untracked().is_some_and(|r| detail.revision >= r) {
            self.revision.set(detail.revision);
            self.summary.set(Some(detail.summary.clone()));
        }
    }

    fn after_saving(self, ok: bool) {
        if let Some(waiting) = self.after_save.try_update_value(std::mem::take) {
            for f in waiting {
                f(ok);
            }
        }
    }

    /// Saves the draft now (one request at a time; edits made meanwhile are
    /// saved right after); `then` runs when the draft is saved, or not.
    fn save_now(self, then: Option<AfterSave>) {
        if let Some(then) = then {
            self.after_save.try_update_value(|w| w.push(then));
        }
        let Some(state) = self.save.try_get_untracked() else { return };
        if self.in_flight.try_get_value() != Some(false) {
            return;
        }
        match state {
            SaveState::Conflict(_) => return self.after_saving(false),
            SaveState::Saved => return self.after_saving(true),
            _ => {}
        }
        let generation = self.generation.get_value();
        let Ok(json) = serde_json::to_string(&self.wf.get_untracked()) else { return };
        self.in_flight.set_value(true);
        self.save.set(SaveState::Saving);
        let (id, revision, name) = (self.id.get_value(), self.revision.get_untracked(), self.name.get_untracked());
        spawn_local(async move {
            let result = save_workflow(id, revision, name, json).await;
            // The designer may be gone (the user left): then there is nothing to update.
            if self.in_flight.try_update_value(|f| *f = false).is_none() {
                return;
            }
            match result {
                Ok(detail) => {
                    self.accept(&detail);
                    if self.generation.try_get_value() == Some(generation) {
                        self.save.set(SaveState::Saved);
                        self.after_saving(true);
                    } else {
                        self.save.set(SaveState::Dirty);
                        self.save_now(None);
                    }
                }
                Err(AppError::Conflict(message)) => {
                    self.save.set(SaveState::Conflict(message));
                    self.after_saving(false);
                }
                Err(e) => {
                    self.save.set(SaveState::Failed(e.to_string()));
                    self.after_saving(false);
                }
            }
        });
    }

    fn select_only(self, id: &str) {
        self.selected.set(vec![id.to_string()]);
    }

    fn add_node(self, type_name: &str, x: f64, y: f64) {
        let Some(kind) = NodeKind::blank(type_name) else { return };
        let id = self.wf.with_untracked(|w| {
            let base = type_name.to_string();
            (1..).map(|i| if i == 1 { base.clone() } else { format!("{base}_{i}") }).find(|c| w.node(c).is_none())
        });
        let Some(id) = id else { return };
        let node = Node { id: id.clone(), x: x.round(), y: y.round(), kind };
        self.change(None, move |w| w.nodes.push(node));
        self.select_only(&id);
    }

    fn delete_selected(self) {
        let ids = self.selected.get_untracked();
        if ids.is_empty() {
            return;
        }
        self.change(None, |w| {
            w.nodes.retain(|n| !ids.contains(&n.id));
            w.edges.retain(|e| !ids.contains(&e.from) && !ids.contains(&e.to));
        });
        self.selected.set(Vec::new());
    }

    fn duplicate_selected(self) {
        let ids = self.selected.get_untracked();
        if ids.is_empty() {
            return;
        }
        let mut copies = Vec::new();
        self.change(None, |w| {
            for id in &ids {
                let Some(original) = w.node(id).cloned() else { continue };
                let base = format!("{id}_copy");
                let new_id = (1..)
                    .map(|i| if i == 1 { base.clone() } else { format!("{base}_{i}") })
                    .find(|c| w.node(c).is_none())
                    .unwrap_or(base);
                copies.push(new_id.clone());
                w.nodes.push(Node { id: new_id, x: original.x + 40.0, y: original.y + 40.0, kind: original.kind });
            }
        });
        self.selected.set(copies);
    }

    fn connect(self, from: &str, port: &str, to: &str) {
        let (from, port, to) = (from.to_string(), port.to_string(), to.to_string());
        self.change(None, move |w| {
            w.edges.retain(|e| !(e.from == from && e.port == port));
            if !to.is_empty() {
                w.edges.push(Edge { from, port, to });
            }
        });
    }

    fn canvas_rect(self) -> Option<(f64, f64, f64, f64)> {
        let doc = web_sys::window()?.document()?;
        let el = doc.query_selector(".canvas").ok()??;
        let r = el.get_bounding_client_rect();
        Some((r.left(), r.top(), r.width(), r.height()))
    }

    fn fit(self) {
        if let Some((_, _, w, h)) = self.canvas_rect() {
            self.view.set(Viewport::fit(&self.shown(), w, h));
            self.fitted.set(true);
        }
    }

    /// The world point under a client (window) point.
    fn world_at(self, cx: f64, cy: f64) -> (f64, f64) {
        let (left, top) = self.canvas_rect().map(|r| (r.0, r.1)).unwrap_or_default();
        self.view.get_untracked().to_world(cx - left, cy - top)
    }
}

#[component]
pub fn DesignerPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let loaded = Resource::new(id, get_workflow);
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading the workflow…"</p> }>
            {move || Suspend::new(async move {
                match loaded.await {
                    Ok((detail, editable)) => view! { <Designer detail editable /> }.into_any(),
                    Err(e) => {
                        view! {
                            <Title text="Workflow" />
                            <h1>"Workflow"</h1>
                            <p class="form-error">{e.to_string()}</p>
                            <p>
                                <a href="/workflows">"Back to the workflows"</a>
                            </p>
                        }
                            .into_any()
                    }
                }
            })}
        </Transition>
    }
}

#[component]
fn Designer(detail: crate::model::WorkflowDetail, editable: bool) -> AnyView {
    let ed = Ed {
        id: StoredValue::new(detail.summary.workflow_id.clone()),
        wf: RwSignal::new(detail.draft.clone()),
        name: RwSignal::new(detail.summary.name.clone()),
        summary: RwSignal::new(Some(detail.summary.clone())),
        revision: RwSignal::new(detail.revision),
        selected: RwSignal::new(Vec::new()),
        view: RwSignal::new(Viewport::default()),
        fitted: RwSignal::new(false),
        history: StoredValue::new(History::default()),
        undo_state: RwSignal::new((false, false)),
        editable: RwSignal::new(editable),
        showing: RwSignal::new(None),
        diff: RwSignal::new(None),
        save: RwSignal::new(SaveState::Saved),
        generation: StoredValue::new(0),
        in_flight: StoredValue::new(false),
        after_save: StoredValue::new(Vec::new()),
        gesture: StoredValue::new(None),
        pointer: RwSignal::new(None),
        notice: RwSignal::new(None),
        versions_changed: RwSignal::new(0),
        live: RwSignal::new(Default::default()),
    };
    let issues = Memo::new(move |_| validate(&ed.shown()));
    let show_versions = RwSignal::new(false);
    let show_export = RwSignal::new(false);

    // Live node counters: the running version's funnel, fetched again
    // (at most twice a second) whenever this workflow's counters move.
    let wf_id = detail.summary.workflow_id.clone();
    let (_live_status, ticks) = use_live_ticks("metrics", move |text| text.contains(&wf_id));
    let runs_now = move || ed.summary.with(|s| s.as_ref().is_some_and(|s| s.active_version.is_some()));
    // Only the browser fetches them: the server renders the canvas without.
    let counts = LocalResource::new(move || {
        let runs = runs_now();
        ticks.track();
        ed.versions_changed.track();
        async move {
            if !runs {
                return None;
            }
            crate::pages::dashboard::workflow_funnel(ed.id.get_value(), "24h".into()).await.ok().map(|(_, f)| f)
        }
    });
    Effect::new(move |_| {
        let steps = counts.get().flatten().map(|f| f.steps).unwrap_or_default();
        ed.live.set(steps.into_iter().map(|s| (s.node.clone(), s)).collect());
    });

    // Fit the workflow once the canvas has a size.
    Effect::new(move |_| {
        request_animation_frame(move || ed.fit());
    });

    let keys = window_event_listener(leptos::ev::keydown, move |ev: web_sys::KeyboardEvent| {
        use wasm_bindgen::JsCast;
        let typing = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .map(|el| matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT"))
            .unwrap_or(false);
        if typing {
            return;
        }
        let ctrl = ev.ctrl_key() || ev.meta_key();
        let key = ev.key();
        match (ctrl, key.as_str()) {
            (true, "z" | "Z") if ev.shift_key() => {
                ev.prevent_default();
                ed.redo();
            }
            (true, "z" | "Z") => {
                ev.prevent_default();
                ed.undo();
            }
            (true, "y") => {
                ev.prevent_default();
                ed.redo();
            }
            (true, "d") => {
                ev.prevent_default();
                ed.duplicate_selected();
            }
            (true, "a") => {
                ev.prevent_default();
                let all = ed.shown().nodes.into_iter().map(|n| n.id).collect();
                ed.selected.set(all);
            }
            (false, "Delete" | "Backspace") => {
                ev.prevent_default();
                ed.delete_selected();
            }
            (false, "Escape") => {
                ed.selected.set(Vec::new());
                ed.pointer.set(None);
                if let Some(Gesture::Move { before, moved: true, .. }) = ed.gesture.get_value() {
                    ed.commit_move(before);
                }
                ed.gesture.set_value(None);
            }
            (false, "ArrowLeft" | "ArrowRight" | "ArrowUp" | "ArrowDown")
                if !ed.selected.get_untracked().is_empty() =>
            {
                ev.prevent_default();
                let step = if ev.shift_key() { 40.0 } else { 10.0 };
                let (dx, dy) = match key.as_str() {
                    "ArrowLeft" => (-step, 0.0),
                    "ArrowRight" => (step, 0.0),
                    "ArrowUp" => (0.0, -step),
                    _ => (0.0, step),
                };
                let ids = ed.selected.get_untracked();
                ed.change(Some(format!("nudge:{}", ids.join(","))), move |w| {
                    for n in w.nodes.iter_mut().filter(|n| ids.contains(&n.id)) {
                        n.x += dx;
                        n.y += dy;
                    }
                });
            }
            _ => {}
        }
    });
    let moves = window_event_listener(leptos::ev::pointermove, move |ev: web_sys::PointerEvent| {
        let (cx, cy) = (f64::from(ev.client_x()), f64::from(ev.client_y()));
        let Some(gesture) = ed.gesture.get_value() else { return };
        match gesture {
            Gesture::Pan { sx, sy, from } => {
                ed.view.set(Viewport { x: from.x + cx - sx, y: from.y + cy - sy, zoom: from.zoom });
            }
            Gesture::Move { sx, sy, start, before, .. } => {
                let zoom = ed.view.get_untracked().zoom;
                let (dx, dy) = ((cx - sx) / zoom, (cy - sy) / zoom);
                if dx.abs() + dy.abs() < 2.0 {
                    return;
                }
                ed.wf.update(|w| {
                    for (id, x, y) in &start {
                        if let Some(n) = w.nodes.iter_mut().find(|n| &n.id == id) {
                            n.x = (x + dx).round();
                            n.y = (y + dy).round();
                        }
                    }
                });
                ed.gesture.set_value(Some(Gesture::Move { sx, sy, start, before, moved: true }));
            }
            Gesture::Connect { from, port } => {
                let (wx, wy) = ed.world_at(cx, cy);
                ed.pointer.set(Some((from, port, wx, wy)));
            }
        }
    });
    let ups = window_event_listener(leptos::ev::pointerup, move |ev: web_sys::PointerEvent| {
        let Some(gesture) = ed.gesture.get_value() else { return };
        ed.gesture.set_value(None);
        match gesture {
            Gesture::Move { before, moved: true, .. } => ed.commit_move(before),
            Gesture::Connect { from, port } => {
                ed.pointer.set(None);
                let target = web_sys::window()
                    .and_then(|w| w.document())
                    .and_then(|d| d.element_from_point(ev.client_x() as f32, ev.client_y() as f32))
                    .and_then(|el| el.closest("[data-node]").ok().flatten())
                    .and_then(|el| el.get_attribute("data-node"));
                if let Some(to) = target.filter(|t| *t != from) {
                    ed.connect(&from, &port, &to);
                }
            }
            _ => {}
        }
    });
    let before_unload = window_event_listener(leptos::ev::beforeunload, move |ev: web_sys::BeforeUnloadEvent| {
        if !matches!(ed.save.get_untracked(), SaveState::Saved) {
            ev.prevent_default();
            ev.set_return_value("Your last changes are still being saved.");
        }
    });
    on_cleanup(move || {
        keys.remove();
        moves.remove();
        ups.remove();
        before_unload.remove();
        // Leaving within the autosave delay: save now rather than lose the edit.
        if ed.save.try_get_untracked() == Some(SaveState::Dirty) {
            ed.save_now(None);
        }
    });

    let title = move || ed.name.get();
    view! {
        <Title text=title />
        <div class="designer" class:read-only=move || ed.read_only()>
            <Toolbar ed issues show_versions show_export />
            {move || {
                ed.showing
                    .get()
                    .map(|v| {
                        view! {
                            <div class="banner" data-testid="viewing-version">
                                {format!("Viewing version {} (read only), published {} by {}.", v.version, format_ms(v.published_at), v.published_by)}
                                <button class="small" on:click=move |_| {
                                    ed.showing.set(None);
                                    ed.diff.set(None);
                                }>"Back to the draft"</button>
                            </div>
                        }
                    })
            }}
            {move || match ed.save.get() {
                SaveState::Conflict(message) => {
                    Some(
                        view! {
                            <div class="banner error" role="alert">
                                {message}
                                <button class="small" on:click=move |_| {
                                    if let Some(w) = web_sys::window() {
                                        let _ = w.location().reload();
                                    }
                                }>"Reload"</button>
                            </div>
                        }
                            .into_any(),
                    )
                }
                _ => None,
            }}
            <div class="designer-body">
                <Palette ed />
                <Canvas ed issues />
                <aside class="inspector" data-testid="inspector">
                    <Show when=move || show_versions.get() fallback=move || view! { <Inspector ed issues /> }>
                        <Versions ed />
                    </Show>
                </aside>
            </div>
            <Show when=move || show_export.get()>
                <ExportDialog ed show_export />
            </Show>
        </div>
    }
    .into_any()
}

#[component]
fn Toolbar(ed: Ed, issues: Memo<Vec<Issue>>, show_versions: RwSignal<bool>, show_export: RwSignal<bool>) -> AnyView {
    let publishing = RwSignal::new(false);
    let publish = move |_| {
        if publishing.get_untracked() {
            return;
        }
        publishing.set(true);
        ed.notice.set(None);
        ed.save_now(Some(Box::new(move |saved| {
            if !saved {
                // The toolbar already says why the draft could not be saved.
                publishing.set(false);
                return;
            }
            let id = ed.id.get_value();
            spawn_local(async move {
                match publish_workflow(id).await {
                    Ok(detail) => {
                        ed.accept(&detail);
                        let v = detail.summary.latest_version;
                        ed.notice.set(Some((true, format!("Published version {v}."))));
                        ed.versions_changed.update(|n| *n += 1);
                    }
                    Err(e) => ed.notice.set(Some((false, e.to_string()))),
                }
                publishing.set(false);
            });
        })));
    };
    let pause = move |pause: bool| {
        let id = ed.id.get_value();
        spawn_local(async move {
            match set_workflow_paused(id, pause).await {
                Ok(detail) => ed.accept(&detail),
                Err(e) => ed.notice.set(Some((false, e.to_string()))),
            }
        });
    };
    let status = move || ed.summary.get().map(|s| s.status).unwrap_or(WorkflowStatus::Draft);
    let unpublished = move || ed.summary.get().is_none_or(|s| s.unpublished_changes || s.latest_version == 0);
    let problems = move || issues.with(Vec::len);
    view! {
        <div class="toolbar">
            <a href="/workflows" class="back" title="All workflows">
                "‹ Workflows"
            </a>
            <input
                class="name"
                aria-label="Workflow name"
                data-testid="workflow-name"
                prop:value=move || ed.name.get()
                disabled=move || ed.read_only()
                on:input=move |ev| {
                    ed.name.set(event_target_value(&ev));
                    ed.touch();
                }
            />
            {move || status_badge(status())}
            {move || {
                ed.summary
                    .get()
                    .and_then(|s| s.active_version)
                    .map(|v| view! { <span class="muted small" data-testid="active-version">{format!("v{v} live")}</span> })
            }}
            // Someone who cannot change the workflow has nothing to save.
            <Show when=move || ed.editable.get()>
                <span class="save-state muted small" data-testid="save-state">
                    {move || match ed.save.get() {
                        SaveState::Saved => "All changes saved".to_string(),
                        SaveState::Dirty => "Unsaved changes…".to_string(),
                        SaveState::Saving => "Saving…".to_string(),
                        SaveState::Failed(e) => format!("Not saved: {e}"),
                        SaveState::Conflict(_) => "Not saved".to_string(),
                    }}
                </span>
            </Show>
            <span class="spacer"></span>
            {move || {
                ed.notice
                    .get()
                    .map(|(ok, text)| {
                        view! {
                            <span class=if ok { "form-ok" } else { "notice-error" } role="status" data-testid="notice">
                                {text}
                            </span>
                        }
                    })
            }}
            <Show when=move || ed.editable.get()>
                <button class="small" title="Undo (Ctrl+Z)" aria-label="Undo" disabled=move || !ed.undo_state.get().0 || ed.read_only() on:click=move |_| ed.undo()>
                    "↶ Undo"
                </button>
                <button class="small" title="Redo (Ctrl+Shift+Z)" aria-label="Redo" disabled=move || !ed.undo_state.get().1 || ed.read_only() on:click=move |_| ed.redo()>
                    "↷ Redo"
                </button>
            </Show>
            <a class="button small" data-testid="workflow-runs" href=move || format!("/runs?workflow={}", ed.id.get_value())>
                "Runs"
            </a>
            <a class="button small" data-testid="workflow-dashboard" href=move || format!("/workflows/{}/dashboard", ed.id.get_value())>
                "Dashboard"
            </a>
            <button class="small" data-testid="export" on:click=move |_| show_export.update(|s| *s = !*s)>
                "Export"
            </button>
            <button
                class="small"
                data-testid="versions"
                aria-pressed=move || show_versions.get().to_string()
                on:click=move |_| show_versions.update(|s| *s = !*s)
            >
                "Versions"
            </button>
            <Show when=move || ed.editable.get() && status() == WorkflowStatus::Active>
                <button class="small" data-testid="pause" on:click=move |_| pause(true)>
                    "Pause"
                </button>
            </Show>
            <Show when=move || ed.editable.get() && status() == WorkflowStatus::Paused>
                <button class="small" data-testid="resume" on:click=move |_| pause(false)>
                    "Resume"
                </button>
            </Show>
            <Show when=move || ed.editable.get()>
                <button
                    class="primary publish"
                    data-testid="publish"
                    disabled=move || { ed.read_only() || problems() > 0 || !unpublished() || publishing.get() }
                    title=move || {
                        if problems() > 0 { "Fix the problems listed in the inspector first".to_string() } else { String::new() }
                    }
                    on:click=publish
                >
                    {move || match problems() {
                        0 if publishing.get() => "Publishing…".to_string(),
                        0 if !unpublished() => "Published".to_string(),
                        0 => "Publish".to_string(),
                        1 => "Fix 1 problem to publish".to_string(),
                        n => format!("Fix {n} problems to publish"),
                    }}
                </button>
            </Show>
        </div>
    }
    .into_any()
}

#[component]
fn Palette(ed: Ed) -> AnyView {
    let add = move |type_name: &'static str| {
        let v = ed.view.get_untracked();
        let (w, h) = ed.canvas_rect().map(|r| (r.2, r.3)).unwrap_or((800.0, 500.0));
        let (x, y) = v.to_world(w / 2.0 - NODE_W / 2.0, h / 2.0 - 40.0);
        let offset = ed.wf.with_untracked(|w| w.nodes.len() as f64 % 5.0) * 24.0;
        ed.add_node(type_name, x + offset, y + offset);
    };
    view! {
        <Show when=move || !ed.read_only()>
            <nav class="palette" aria-label="Node kinds">
                <p class="palette-title">"Drag onto the canvas, or click to add"</p>
                {KINDS
                    .iter()
                    .map(|&type_name| {
                        let label = NodeKind::blank(type_name).map(|k| k.label()).unwrap_or(type_name);
                        view! {
                            <button
                                class=format!("palette-item family-{}", family(type_name))
                                draggable="true"
                                data-kind=type_name
                                data-testid=format!("palette-{type_name}")
                                on:dragstart=move |ev: web_sys::DragEvent| {
                                    if let Some(dt) = ev.data_transfer() {
                                        let _ = dt.set_data("text/plain", type_name);
                                        dt.set_effect_allowed("copy");
                                    }
                                }
                                on:click=move |_| add(type_name)
                            >
                                <span class="node-icon">{icon(type_name)}</span>
                                {label}
                            </button>
                        }
                    })
                    .collect_view()}
            </nav>
        </Show>
    }
    .into_any()
}

#[component]
fn Canvas(ed: Ed, issues: Memo<Vec<Issue>>) -> AnyView {
    let node_ids = Memo::new(move |_| ed.shown().nodes.into_iter().map(|n| n.id).collect::<Vec<_>>());
    let on_down = move |ev: web_sys::PointerEvent| {
        if ev.button() != 0 {
            return;
        }
        if !(ev.shift_key() || ev.ctrl_key() || ev.meta_key()) {
            ed.selected.set(Vec::new());
        }
        let (sx, sy) = (f64::from(ev.client_x()), f64::from(ev.client_y()));
        ed.gesture.set_value(Some(Gesture::Pan { sx, sy, from: ed.view.get_untracked() }));
    };
    // Scrolling pans, as on a page (a workflow wider than the canvas at a
    // readable zoom is scrolled through, not shrunk); Ctrl+scroll, which is
    // also what a trackpad's pinch sends, zooms.
    let on_wheel = move |ev: web_sys::WheelEvent| {
        ev.prevent_default();
        let v = ed.view.get_untracked();
        if !(ev.ctrl_key() || ev.meta_key()) {
            // A mouse wheel scrolls only vertically; with Shift it goes sideways.
            let (dx, dy) =
                if ev.shift_key() && ev.delta_x() == 0.0 { (ev.delta_y(), 0.0) } else { (ev.delta_x(), ev.delta_y()) };
            // Some browsers count a wheel's steps in lines, not pixels.
            let unit = if ev.delta_mode() == web_sys::WheelEvent::DOM_DELTA_LINE { 16.0 } else { 1.0 };
            ed.view.set(Viewport { x: v.x - dx * unit, y: v.y - dy * unit, zoom: v.zoom });
            return;
        }
        let Some((left, top, _, _)) = ed.canvas_rect() else { return };
        let factor = (-ev.delta_y() * 0.0015).exp();
        ed.view.set(v.zoom_at(factor, f64::from(ev.client_x()) - left, f64::from(ev.client_y()) - top));
    };
    let on_drop = move |ev: web_sys::DragEvent| {
        ev.prevent_default();
        let Some(type_name) = ev.data_transfer().and_then(|dt| dt.get_data("text/plain").ok()) else { return };
        let (x, y) = ed.world_at(f64::from(ev.client_x()), f64::from(ev.client_y()));
        ed.add_node(&type_name, x - NODE_W / 2.0, y - 30.0);
    };
    let zoom_by = move |factor: f64| {
        let (w, h) = ed.canvas_rect().map(|r| (r.2, r.3)).unwrap_or((800.0, 500.0));
        ed.view.update(|v| *v = v.zoom_at(factor, w / 2.0, h / 2.0));
    };
    let transform = move || {
        let v = ed.view.get();
        format!("transform: translate({:.1}px, {:.1}px) scale({:.3})", v.x, v.y, v.zoom)
    };
    view! {
        <div
            class="canvas"
            data-testid="canvas"
            data-fitted=move || ed.fitted.get().to_string()
            data-zoom=move || format!("{:.3}", ed.view.get().zoom)
            on:pointerdown=on_down
            on:wheel=on_wheel
            on:dragover=move |ev: web_sys::DragEvent| ev.prevent_default()
            on:drop=on_drop
        >
            <div class="world" style=transform>
                <Edges ed />
                <For each=move || node_ids.get() key=|id| id.clone() let:id>
                    <NodeCard ed id issues />
                </For>
            </div>
            {move || {
                node_ids
                    .with(Vec::is_empty)
                    .then(|| {
                        view! {
                            <div class="canvas-empty">
                                <strong>"An empty canvas"</strong>
                                <span>"Start with a Trigger from the palette: it says which events start the workflow."</span>
                            </div>
                        }
                    })
            }}
            <div class="zoom-controls" on:pointerdown=|ev: web_sys::PointerEvent| ev.stop_propagation()>
                <button class="small" aria-label="Zoom in" on:click=move |_| zoom_by(1.2)>"+"</button>
                <span class="zoom-level">{move || format!("{:.0} %", ed.view.get().zoom * 100.0)}</span>
                <button class="small" aria-label="Zoom out" on:click=move |_| zoom_by(1.0 / 1.2)>"−"</button>
                <button class="small" data-testid="fit" on:click=move |_| ed.fit()>"Fit"</button>
            </div>
        </div>
    }
    .into_any()
}

#[component]
fn Edges(ed: Ed) -> impl IntoView {
    let paths = move || canvas::edge_views(&ed.shown(), |_| false);
    let loose = move || {
        let (from, port, x2, y2) = ed.pointer.get()?;
        let w = ed.wf.get();
        let (x1, y1) = port_point(w.node(&from)?, &port)?;
        Some(view! { <path class="edge-draft" d=curve(x1, y1, x2, y2) /> })
    };
    view! {
        <svg class="edges" width="1" height="1">
            {canvas::arrow_defs()}
            {paths}
            {loose}
        </svg>
    }
}

#[component]
fn NodeCard(ed: Ed, id: String, issues: Memo<Vec<Issue>>) -> impl IntoView {
    let node_id = StoredValue::new(id.clone());
    let node = Memo::new(move |_| ed.shown_node(&node_id.get_value()));
    let selected = move || ed.selected.with(|s| s.contains(&node_id.get_value()));
    let problems =
        move || issues.with(|all| all.iter().filter(|i| i.node.as_deref() == Some(&node_id.get_value())).count());
    let change = move || {
        ed.diff.with(|d| {
            d.as_ref().and_then(|(_, d)| d.nodes.iter().find(|n| n.node == node_id.get_value()).map(|n| n.change))
        })
    };
    let on_down = move |ev: web_sys::PointerEvent| {
        ev.stop_propagation();
        if ev.button() != 0 {
            return;
        }
        let id = node_id.get_value();
        if ev.shift_key() || ev.ctrl_key() || ev.meta_key() {
            ed.selected.update(|s| {
                if let Some(i) = s.iter().position(|x| *x == id) {
                    s.remove(i);
                } else {
                    s.push(id.clone());
                }
            });
        } else if !ed.selected.with_untracked(|s| s.contains(&id)) {
            ed.select_only(&id);
        }
        if ed.read_only() {
            return;
        }
        let ids = ed.selected.get_untracked();
        let start = ed.wf.with_untracked(|w| {
            w.nodes.iter().filter(|n| ids.contains(&n.id)).map(|n| (n.id.clone(), n.x, n.y)).collect()
        });
        let (sx, sy) = (f64::from(ev.client_x()), f64::from(ev.client_y()));
        ed.gesture.set_value(Some(Gesture::Move { sx, sy, start, before: ed.wf.get_untracked(), moved: false }));
    };
    // Moving a node changes only its style; its face is rebuilt when its configuration changes.
    let kind = Memo::new(move |_| node.with(|n| n.as_ref().map(|n| n.kind.clone())));
    let style = move || {
        node.with(|n| {
            n.as_ref()
                .map(|n| {
                    format!("left: {}px; top: {}px; width: {NODE_W}px; height: {}px", n.x, n.y, node_height(&n.kind))
                })
                .unwrap_or_default()
        })
    };
    move || {
        let kind = kind.get()?;
        let n = Node { id: node_id.get_value(), x: 0.0, y: 0.0, kind };
        let type_name = n.kind.type_name();
        let h = node_height(&n.kind);
        let ports = n.kind.ports();
        let count = ports.len();
        let class = move || {
            let mut c = format!("node family-{}", family(type_name));
            if selected() {
                c.push_str(" selected");
            }
            if problems() > 0 {
                c.push_str(" invalid");
            }
            match change() {
                Some(Change::Added) => c.push_str(" diff-added"),
                Some(Change::Changed) => c.push_str(" diff-changed"),
                _ => {}
            }
            c
        };
        let id = n.id.clone();
        let port_views = ports
            .into_iter()
            .enumerate()
            .map(|(i, port)| {
                let top = port_offset(h, i, count);
                let label = port_label(&port);
                let from = id.clone();
                let port_name = port.clone();
                view! {
                    <div
                        class="port out"
                        style=format!("top: {top}px")
                        data-port=port.clone()
                        data-testid=format!("port-{id}-{port}")
                        title=format!("Drag to connect '{port}'")
                        on:pointerdown=move |ev: web_sys::PointerEvent| {
                            ev.stop_propagation();
                            if ed.read_only() {
                                return;
                            }
                            ed.gesture.set_value(Some(Gesture::Connect { from: from.clone(), port: port_name.clone() }));
                            let (wx, wy) = ed.world_at(f64::from(ev.client_x()), f64::from(ev.client_y()));
                            ed.pointer.set(Some((from.clone(), port_name.clone(), wx, wy)));
                        }
                    >
                        {label.map(|l| {
                            let (from, port) = (id.clone(), port.clone());
                            let on_edge = move || ed.label_on_edge(&from, &port);
                            view! { <span class="port-label" class:on-edge=on_edge>{l}</span> }
                        })}
                    </div>
                }
            })
            .collect_view();
        let has_input = !matches!(n.kind, NodeKind::Trigger { .. });
        Some(view! {
            <div
                class=class
                style=style
                data-node=n.id.clone()
                data-testid=format!("node-{}", n.id)
                tabindex="0"
                role="button"
                aria-label=format!("{} {}", n.kind.label(), n.id)
                on:pointerdown=on_down
                on:keydown=move |ev: web_sys::KeyboardEvent| {
                    if ev.key() == "Enter" || ev.key() == " " {
                        ev.prevent_default();
                        ed.select_only(&node_id.get_value());
                    }
                }
            >
                {has_input.then(|| view! { <div class="port in"></div> })}
                <div class="node-head">
                    <span class="node-icon">{icon(type_name)}</span>
                    <span class="node-kind">{n.kind.label()}</span>
                    {move || {
                        let p = problems();
                        (p > 0).then(|| view! { <span class="node-issues" title="Problems to fix">{p}</span> })
                    }}
                </div>
                <div class="node-summary">{canvas::summary(&n.kind)}</div>
                <div class="node-id">{n.id.clone()}</div>
                {port_views}
                {move || {
                    let step = ed.live.with(|l| l.get(&node_id.get_value()).cloned())?;
                    let exits = step.exits.iter().map(|e| format!(" · {} {}", e.name.replace('_', " "), e.count)).collect::<String>();
                    Some(view! {
                        <div class="node-live" data-testid=format!("live-{}", step.node) title="Runs of the running version, last 24 hours">
                            <span class="live-in">{step.entered}" in"</span>
                            {(step.waiting > 0).then(|| view! { <span class="live-wait">" · "{step.waiting}" waiting"</span> })}
                            {exits}
                        </div>
                    })
                }}
            </div>
        })
    }
}

/// Issues of one field of one node, under the field; `field` "" means the node as a whole.
#[component]
fn FieldIssues(issues: Memo<Vec<Issue>>, node: String, #[prop(into)] field: String) -> impl IntoView {
    let node = StoredValue::new(node);
    let field = StoredValue::new(field);
    move || {
        issues.with(|all| {
            all.iter()
                .filter(|i| {
                    i.node.as_deref() == Some(&node.get_value())
                        && field.with_value(|f| i.field.as_deref().unwrap_or_default() == f)
                })
                .map(|i| view! { <p class="field-error" role="alert">{i.message.clone()}</p> })
                .collect_view()
        })
    }
}

/// What an input shows: the text as typed while it still means what the model
/// holds (so "1." or a trailing space survive the trip through the model), and
/// the model's text when the model changes otherwise (undo, another input).
fn typed(
    model: impl Fn() -> String + Send + Sync + 'static,
    means: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
) -> RwSignal<String> {
    let raw = RwSignal::new(untrack(&model));
    Effect::new(move |_| {
        let current = model();
        let keep = raw.with_untracked(|typed| means(typed).is_none_or(|meant| meant == current));
        if !keep {
            raw.set(current);
        }
    });
    raw
}

fn parsed<T: std::str::FromStr + ToString>(text: &str) -> Option<String> {
    text.trim().parse::<T>().ok().map(|v| v.to_string())
}

type Getter<T> = fn(&NodeKind) -> T;
type Setter<T> = fn(&mut NodeKind, T);

/// The typed text of a field read by `get` and written by `set`.
fn model_text(ed: Ed, id: StoredValue<String>, get: Getter<String>, set: Setter<String>) -> RwSignal<String> {
    typed(
        move || ed.shown_node(&id.get_value()).map(|n| get(&n.kind)).unwrap_or_default(),
        move |text| {
            untrack(|| ed.shown_node(&id.get_value())).map(|n| {
                let mut kind = n.kind;
                set(&mut kind, text.to_string());
                get(&kind)
            })
        },
    )
}

fn text_field(
    ed: Ed,
    issues: Memo<Vec<Issue>>,
    node: &str,
    field: &'static str,
    label: &'static str,
    get: Getter<String>,
    set: Setter<String>,
) -> impl IntoView {
    let id = StoredValue::new(node.to_string());
    let raw = model_text(ed, id, get, set);
    view! {
        <label>
            {label}
            <input
                type="text"
                data-field=field
                prop:value=move || raw.get()
                disabled=move || ed.read_only()
                on:input=move |ev| {
                    let v = event_target_value(&ev);
                    raw.set(v.clone());
                    ed.edit_node(&id.get_value(), field, move |k| set(k, v));
                }
            />
        </label>
        <FieldIssues issues node=node.to_string() field />
    }
}

fn area_field(
    ed: Ed,
    issues: Memo<Vec<Issue>>,
    node: &str,
    field: &'static str,
    label: &'static str,
    get: Getter<String>,
    set: Setter<String>,
) -> impl IntoView {
    let id = StoredValue::new(node.to_string());
    let raw = model_text(ed, id, get, set);
    view! {
        <label>
            {label}
            <textarea
                rows="4"
                data-field=field
                prop:value=move || raw.get()
                disabled=move || ed.read_only()
                on:input=move |ev| {
                    let v = event_target_value(&ev);
                    raw.set(v.clone());
                    ed.edit_node(&id.get_value(), field, move |k| set(k, v));
                }
            ></textarea>
        </label>
        <FieldIssues issues node=node.to_string() field />
    }
}

fn number_field(
    ed: Ed,
    issues: Memo<Vec<Issue>>,
    node: &str,
    field: &'static str,
    label: &'static str,
    get: Getter<f64>,
    set: Setter<f64>,
) -> impl IntoView {
    let id = StoredValue::new(node.to_string());
    let raw = typed(
        move || ed.shown_node(&id.get_value()).map(|n| get(&n.kind).to_string()).unwrap_or_default(),
        parsed::<f64>,
    );
    view! {
        <label>
            {label}
            <input
                type="number"
                step="any"
                data-field=field
                prop:value=move || raw.get()
                disabled=move || ed.read_only()
                on:input=move |ev| {
                    raw.set(event_target_value(&ev));
                    if let Ok(v) = event_target_value(&ev).trim().parse::<f64>() {
                        ed.edit_node(&id.get_value(), field, move |k| set(k, v));
                    }
                }
            />
        </label>
        <FieldIssues issues node=node.to_string() field />
    }
}

#[allow(clippy::too_many_arguments)] // One field's label, issue key, options and accessors.
fn select_field(
    ed: Ed,
    issues: Memo<Vec<Issue>>,
    node: &str,
    field: &'static str,
    label: &'static str,
    options: &'static [(&'static str, &'static str)],
    get: Getter<String>,
    set: Setter<String>,
) -> impl IntoView {
    let id = StoredValue::new(node.to_string());
    view! {
        <label>
            {label}
            <select
                data-field=field
                prop:value=move || ed.shown_node(&id.get_value()).map(|n| get(&n.kind)).unwrap_or_default()
                disabled=move || ed.read_only()
                on:change=move |ev| {
                    let v = event_target_value(&ev);
                    ed.edit_node(&id.get_value(), field, move |k| set(k, v));
                }
            >
                {options.iter().map(|(value, text)| view! { <option value=*value>{*text}</option> }).collect_view()}
            </select>
        </label>
        <FieldIssues issues node=node.to_string() field />
    }
}

const UNITS: &[(&str, &str)] = &[("minutes", "minutes"), ("hours", "hours"), ("days", "days")];

fn unit_name(u: Unit) -> String {
    match u {
        Unit::Minutes => "minutes",
        Unit::Hours => "hours",
        Unit::Days => "days",
    }
    .into()
}

fn parse_unit(s: &str) -> Unit {
    match s {
        "hours" => Unit::Hours,
        "days" => Unit::Days,
        _ => Unit::Minutes,
    }
}

fn span_field(
    ed: Ed,
    issues: Memo<Vec<Issue>>,
    node: &str,
    field: &'static str,
    label: &'static str,
    get: Getter<Option<Span>>,
    set: Setter<Span>,
) -> impl IntoView {
    let id = StoredValue::new(node.to_string());
    let current = move || ed.shown_node(&id.get_value()).and_then(|n| get(&n.kind));
    let amount_text = typed(move || current().map(|s| s.amount.to_string()).unwrap_or_default(), parsed::<u32>);
    view! {
        <div class="field">
            <span class="field-label">{label}</span>
            <span class="span-field">
                <input
                    type="number"
                    min="1"
                    aria-label=format!("{label}: amount")
                    data-field=format!("{field}.amount")
                    prop:value=move || amount_text.get()
                    disabled=move || ed.read_only()
                    on:input=move |ev| {
                        amount_text.set(event_target_value(&ev));
                        let Ok(amount) = event_target_value(&ev).trim().parse::<u32>() else { return };
                        let unit = current().map(|s| s.unit).unwrap_or(Unit::Minutes);
                        ed.edit_node(&id.get_value(), field, move |k| set(k, Span { amount, unit }));
                    }
                />
                <select
                    aria-label=format!("{label}: unit")
                    data-field=format!("{field}.unit")
                    prop:value=move || current().map(|s| unit_name(s.unit)).unwrap_or_else(|| "minutes".into())
                    disabled=move || ed.read_only()
                    on:change=move |ev| {
                        let unit = parse_unit(&event_target_value(&ev));
                        let amount = current().map(|s| s.amount).unwrap_or(30);
                        ed.edit_node(&id.get_value(), field, move |k| set(k, Span { amount, unit }));
                    }
                >
                    {UNITS.iter().map(|(v, t)| view! { <option value=*v>{*t}</option> }).collect_view()}
                </select>
            </span>
        </div>
        <FieldIssues issues node=node.to_string() field />
    }
}

const TEMPLATE_HINT: &str =
    "Variables: {{event.<path>}}, {{customer.id}}, {{customer.<attribute>}}, {{offer.code}}, {{run.id}}";

fn split_list(text: &str) -> Vec<String> {
    text.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

/// The form for one node's configuration.
fn node_form(ed: Ed, issues: Memo<Vec<Issue>>, id: &str, type_name: &str) -> AnyView {
    match type_name {
        "trigger" => view! {
            {text_field(ed, issues, id, "event", "Event name",
                |k| if let NodeKind::Trigger { event, .. } = k { event.clone() } else { String::new() },
                |k, v| if let NodeKind::Trigger { event, .. } = k { *event = v.trim().to_string() })}
            {text_field(ed, issues, id, "sources", "Sources (slugs, comma-separated; empty: any)",
                |k| if let NodeKind::Trigger { sources, .. } = k { sources.join(", ") } else { String::new() },
                |k, v| if let NodeKind::Trigger { sources, .. } = k { *sources = split_list(&v) })}
            <h4>"Only when (optional)"</h4>
            <RulesEditor ed issues node=id.to_string() field="filter" />
        }
        .into_any(),
        "condition" => view! {
            <RulesEditor ed issues node=id.to_string() field="rules" />
        }
        .into_any(),
        "delay" => {
            let node = StoredValue::new(id.to_string());
            let mode = Memo::new(move |_| {
                ed.shown_node(&node.get_value())
                    .map(|n| matches!(n.kind, NodeKind::Delay { until_time_of_day: Some(_), .. }))
                    .unwrap_or(false)
            });
            view! {
                <label>
                    "Wait"
                    <select
                        data-field="mode"
                        prop:value=move || if mode.get() { "time" } else { "span" }
                        disabled=move || ed.read_only()
                        on:change=move |ev| {
                            let time = event_target_value(&ev) == "time";
                            ed.edit_node(&node.get_value(), "mode", move |k| {
                                if let NodeKind::Delay { span, until_time_of_day } = k {
                                    if time {
                                        *span = None;
                                        *until_time_of_day = Some("09:00".into());
                                    } else {
                                        *until_time_of_day = None;
                                        *span = Some(Span { amount: 30, unit: Unit::Minutes });
                                    }
                                }
                            });
                        }
                    >
                        <option value="span">"for a duration"</option>
                        <option value="time">"until a time of day"</option>
                    </select>
                </label>
                {move || if mode.get() {
                    text_field(ed, issues, &node.get_value(), "until_time_of_day", "Time of day (HH:MM, UTC)",
                        |k| if let NodeKind::Delay { until_time_of_day, .. } = k { until_time_of_day.clone().unwrap_or_default() } else { String::new() },
                        |k, v| if let NodeKind::Delay { until_time_of_day, .. } = k { *until_time_of_day = Some(v.trim().to_string()) }).into_any()
                } else {
                    span_field(ed, issues, &node.get_value(), "span", "Duration",
                        |k| if let NodeKind::Delay { span, .. } = k { *span } else { None },
                        |k, v| if let NodeKind::Delay { span, .. } = k { *span = Some(v) }).into_any()
                }}
            }
            .into_any()
        }
        "wait_for_event" => view! {
            {text_field(ed, issues, id, "events", "Events (comma-separated: any of them)",
                |k| if let NodeKind::WaitForEvent { events, .. } = k { events.join(", ") } else { String::new() },
                |k, v| if let NodeKind::WaitForEvent { events, .. } = k { *events = split_list(&v) })}
            {text_field(ed, issues, id, "correlate_field", "Same value of (optional path, e.g. cart.id)",
                |k| if let NodeKind::WaitForEvent { correlate_field, .. } = k { correlate_field.clone().unwrap_or_default() } else { String::new() },
                |k, v| if let NodeKind::WaitForEvent { correlate_field, .. } = k {
                    *correlate_field = Some(v.trim().to_string()).filter(|s| !s.is_empty())
                })}
            {span_field(ed, issues, id, "timeout", "Time out after",
                |k| if let NodeKind::WaitForEvent { timeout, .. } = k { Some(*timeout) } else { None },
                |k, v| if let NodeKind::WaitForEvent { timeout, .. } = k { *timeout = v })}
            <p class="hint">"Counts events that arrive after the trigger, even before the run reaches this wait."</p>
        }
        .into_any(),
        "split" => view! { <BranchesEditor ed issues node=id.to_string() /> }.into_any(),
        "offer" => view! {
            {select_field(ed, issues, id, "discount", "Discount",
                &[("percent", "Percent off"), ("fixed_amount", "Fixed amount off"), ("free_shipping", "Free shipping")],
                |k| match k { NodeKind::Offer { discount: DiscountKind::Percent, .. } => "percent".into(),
                    NodeKind::Offer { discount: DiscountKind::FixedAmount, .. } => "fixed_amount".into(),
                    _ => "free_shipping".into() },
                |k, v| if let NodeKind::Offer { discount, .. } = k {
                    *discount = match v.as_str() { "percent" => DiscountKind::Percent, "fixed_amount" => DiscountKind::FixedAmount, _ => DiscountKind::FreeShipping };
                })}
            {number_field(ed, issues, id, "value", "Value",
                |k| if let NodeKind::Offer { value, .. } = k { *value } else { 0.0 },
                |k, v| if let NodeKind::Offer { value, .. } = k { *value = v })}
            {text_field(ed, issues, id, "code_prefix", "Code prefix",
                |k| if let NodeKind::Offer { code_prefix, .. } = k { code_prefix.clone() } else { String::new() },
                |k, v| if let NodeKind::Offer { code_prefix, .. } = k { *code_prefix = v.trim().to_string() })}
            {span_field(ed, issues, id, "valid_for", "Valid for",
                |k| if let NodeKind::Offer { valid_for, .. } = k { Some(*valid_for) } else { None },
                |k, v| if let NodeKind::Offer { valid_for, .. } = k { *valid_for = v })}
            <p class="hint">"Each run gets its own single-use code: the prefix and ten random characters."</p>
        }
        .into_any(),
        "alert" => view! {
            {select_field(ed, issues, id, "severity", "Severity",
                &[("info", "Info"), ("warning", "Warning"), ("critical", "Critical")],
                |k| match k { NodeKind::Alert { severity: Severity::Info, .. } => "info".into(),
                    NodeKind::Alert { severity: Severity::Critical, .. } => "critical".into(),
                    _ => "warning".into() },
                |k, v| if let NodeKind::Alert { severity, .. } = k {
                    *severity = match v.as_str() { "info" => Severity::Info, "critical" => Severity::Critical, _ => Severity::Warning };
                })}
            {text_field(ed, issues, id, "audience", "For (team)",
                |k| if let NodeKind::Alert { audience, .. } = k { audience.clone() } else { String::new() },
                |k, v| if let NodeKind::Alert { audience, .. } = k { *audience = v })}
            {area_field(ed, issues, id, "message", "Message",
                |k| if let NodeKind::Alert { message, .. } = k { message.clone() } else { String::new() },
                |k, v| if let NodeKind::Alert { message, .. } = k { *message = v })}
            <p class="hint">{TEMPLATE_HINT}</p>
        }
        .into_any(),
        "webhook" => view! {
            {select_field(ed, issues, id, "method", "Method",
                &[("POST", "POST"), ("PUT", "PUT"), ("PATCH", "PATCH"), ("GET", "GET"), ("DELETE", "DELETE")],
                |k| if let NodeKind::Webhook { method, .. } = k { method.clone() } else { String::new() },
                |k, v| if let NodeKind::Webhook { method, .. } = k { *method = v })}
            {text_field(ed, issues, id, "url", "URL",
                |k| if let NodeKind::Webhook { url, .. } = k { url.clone() } else { String::new() },
                |k, v| if let NodeKind::Webhook { url, .. } = k { *url = v.trim().to_string() })}
            {area_field(ed, issues, id, "headers", "Headers (one per line: Name: value)",
                |k| if let NodeKind::Webhook { headers, .. } = k {
                    headers.iter().map(|(n, v)| format!("{n}: {v}")).collect::<Vec<_>>().join("\n")
                } else { String::new() },
                |k, v| if let NodeKind::Webhook { headers, .. } = k {
                    *headers = v.lines().filter(|l| !l.trim().is_empty()).map(|l| match l.split_once(':') {
                        Some((n, v)) => (n.trim().to_string(), v.trim().to_string()),
                        None => (l.trim().to_string(), String::new()),
                    }).collect();
                })}
            {area_field(ed, issues, id, "body", "Body (JSON template)",
                |k| if let NodeKind::Webhook { body, .. } = k { body.clone() } else { String::new() },
                |k, v| if let NodeKind::Webhook { body, .. } = k { *body = v })}
            <p class="hint">{TEMPLATE_HINT} ". Sent with an Idempotency-Key header."</p>
        }
        .into_any(),
        "update_profile" => view! { <ChangesEditor ed issues node=id.to_string() /> }.into_any(),
        _ => view! {
            {text_field(ed, issues, id, "event", "Conversion event",
                |k| if let NodeKind::Goal { event, .. } = k { event.clone() } else { String::new() },
                |k, v| if let NodeKind::Goal { event, .. } = k { *event = v.trim().to_string() })}
            <GoalCodeCheckbox ed node=id.to_string() />
            {span_field(ed, issues, id, "within", "Within",
                |k| if let NodeKind::Goal { within, .. } = k { Some(*within) } else { None },
                |k, v| if let NodeKind::Goal { within, .. } = k { *within = v })}
            <p class="hint">"The run ends as converted when the event arrives in time; otherwise as completed."</p>
        }
        .into_any(),
    }
}

#[component]
fn GoalCodeCheckbox(ed: Ed, node: String) -> impl IntoView {
    let id = StoredValue::new(node);
    let wants_code = move || {
        ed.shown_node(&id.get_value()).is_some_and(|n| matches!(n.kind, NodeKind::Goal { match_offer_code: true, .. }))
    };
    // Whether any source names where its events carry a code: without one,
    // only the API can redeem, and the marketer should know before publishing.
    let sources = LocalResource::new(|| async {
        crate::pages::sources::list_sources()
            .await
            .ok()
            .map(|page| page.items.iter().any(|s| s.mapping.offer_code.is_some()))
    });
    let no_code_path = move || wants_code() && sources.get().flatten() == Some(false);
    view! {
        <label class="check">
            <input
                type="checkbox"
                data-field="match_offer_code"
                prop:checked=move || {
                    ed.shown_node(&id.get_value())
                        .map(|n| matches!(n.kind, NodeKind::Goal { match_offer_code: true, .. }))
                        .unwrap_or(false)
                }
                disabled=move || ed.read_only()
                on:change=move |ev| {
                    let on = event_target_checked(&ev);
                    ed.edit_node(&id.get_value(), "match_offer_code", move |k| {
                        if let NodeKind::Goal { match_offer_code, .. } = k {
                            *match_offer_code = on;
                        }
                    });
                }
            />
            "Only when it redeems this run's offer code"
        </label>
        <p class="hint">"The code is read where the event's source mapping says (Sources → Offer code redeemed), or comes from an API redemption."</p>
        <Show when=no_code_path>
            <p class="field-error" data-testid="goal-code-warning">
                "No source names an offer-code path yet, so no event can redeem the code: set one on a source (Offer code redeemed), or redeem through the API."
            </p>
        </Show>
    }
}

/// An edit of a split's branches, and of the edges that name them.
type BranchEdit = Box<dyn FnOnce(&mut Vec<SplitBranch>, &mut Vec<Edge>)>;
type ChangesEdit = Box<dyn FnOnce(&mut Vec<ProfileChange>)>;

#[component]
fn BranchesEditor(ed: Ed, issues: Memo<Vec<Issue>>, node: String) -> impl IntoView {
    let id = StoredValue::new(node.clone());
    let branches = move || match ed.shown_node(&id.get_value()).map(|n| n.kind) {
        Some(NodeKind::Split { branches }) => branches,
        _ => Vec::new(),
    };
    let count = Memo::new(move |_| branches().len());
    let set = move |f: BranchEdit, key: Option<String>| {
        let node = id.get_value();
        ed.change(key, move |w| {
            let mut edges = std::mem::take(&mut w.edges);
            if let Some(NodeKind::Split { branches }) = w.nodes.iter_mut().find(|n| n.id == node).map(|n| &mut n.kind) {
                f(branches, &mut edges);
            }
            w.edges = edges;
        });
    };
    view! {
        <div class="field">
            <span class="field-label">"Branches (label and weight)"</span>
            {move || {
                (0..count.get())
                    .map(|i| {
                        let weight_raw = typed(
                            move || branches().get(i).map(|b| b.weight.to_string()).unwrap_or_default(),
                            parsed::<u32>,
                        );
                        view! {
                            <div class="branch-row">
                                <input
                                    type="text"
                                    aria-label=format!("Branch {} label", i + 1)
                                    prop:value=move || branches().get(i).map(|b| b.label.clone()).unwrap_or_default()
                                    disabled=move || ed.read_only()
                                    on:input=move |ev| {
                                        let label = event_target_value(&ev);
                                        let node = id.get_value();
                                        set(
                                            Box::new(move |b, edges| {
                                                let Some(old) = b.get(i).map(|x| x.label.clone()) else { return };
                                                // The connection follows the branch only while both names are its own.
                                                let unique = |name: &str| b.iter().enumerate().all(|(j, x)| j == i || x.label != name);
                                                if unique(&old) && unique(&label) {
                                                    for e in edges.iter_mut().filter(|e| e.from == node && e.port == old) {
                                                        e.port = label.clone();
                                                    }
                                                }
                                                if let Some(branch) = b.get_mut(i) {
                                                    branch.label = label;
                                                }
                                            }),
                                            Some(format!("{}:branch{i}", id.get_value())),
                                        );
                                    }
                                />
                                <input
                                    type="number"
                                    min="0"
                                    aria-label=format!("Branch {} weight", i + 1)
                                    prop:value=move || weight_raw.get()
                                    disabled=move || ed.read_only()
                                    on:input=move |ev| {
                                        weight_raw.set(event_target_value(&ev));
                                        let Ok(weight) = event_target_value(&ev).trim().parse::<u32>() else { return };
                                        set(
                                            Box::new(move |b, _| {
                                                if let Some(branch) = b.get_mut(i) {
                                                    branch.weight = weight;
                                                }
                                            }),
                                            Some(format!("{}:weight{i}", id.get_value())),
                                        );
                                    }
                                />
                                <button
                                    class="small"
                                    aria-label="Remove branch"
                                    hidden=move || ed.read_only()
                                    on:click=move |_| {
                                        let node = id.get_value();
                                        set(
                                            Box::new(move |b, edges| {
                                                if i < b.len() {
                                                    let gone = b.remove(i);
                                                    if !b.iter().any(|x| x.label == gone.label) {
                                                        edges.retain(|e| !(e.from == node && e.port == gone.label));
                                                    }
                                                }
                                            }),
                                            None,
                                        );
                                    }
                                >
                                    "×"
                                </button>
                            </div>
                        }
                    })
                    .collect_view()
            }}
            <button
                class="small"
                hidden=move || ed.read_only()
                on:click=move |_| {
                    set(
                        Box::new(|b, _| {
                            let label = (b'A'..=b'Z')
                                .map(|c| char::from(c).to_string())
                                .find(|l| !b.iter().any(|x| &x.label == l))
                                .unwrap_or_else(|| format!("branch {}", b.len() + 1));
                            b.push(SplitBranch { label, weight: 50 });
                        }),
                        None,
                    );
                }
            >
                "+ Branch"
            </button>
        </div>
        <FieldIssues issues node field="branches" />
        <p class="hint">"The same customer always takes the same branch."</p>
    }
}

#[component]
fn ChangesEditor(ed: Ed, issues: Memo<Vec<Issue>>, node: String) -> impl IntoView {
    let id = StoredValue::new(node.clone());
    let changes = move || match ed.shown_node(&id.get_value()).map(|n| n.kind) {
        Some(NodeKind::UpdateProfile { changes }) => changes,
        _ => Vec::new(),
    };
    let shape = Memo::new(move |_| {
        changes()
            .iter()
            .map(|c| match c {
                ProfileChange::Set { .. } => "set",
                ProfileChange::Unset { .. } => "unset",
                ProfileChange::AddTag { .. } => "add_tag",
                ProfileChange::RemoveTag { .. } => "remove_tag",
            })
            .collect::<Vec<_>>()
    });
    let set = move |key: Option<String>, f: ChangesEdit| {
        let node = id.get_value();
        ed.change(key, move |w| {
            if let Some(NodeKind::UpdateProfile { changes }) =
                w.nodes.iter_mut().find(|n| n.id == node).map(|n| &mut n.kind)
            {
                f(changes);
            }
        });
    };
    let name_of = |c: &ProfileChange| match c {
        ProfileChange::Set { attribute, .. } | ProfileChange::Unset { attribute } => attribute.clone(),
        ProfileChange::AddTag { tag } | ProfileChange::RemoveTag { tag } => tag.clone(),
    };
    view! {
        <div class="field">
            <span class="field-label">"Changes"</span>
            {move || {
                shape
                    .get()
                    .into_iter()
                    .enumerate()
                    .map(|(i, action)| {
                        view! {
                            <div class="branch-row">
                                <select
                                    aria-label="Change"
                                    prop:value=action
                                    disabled=move || ed.read_only()
                                    on:change=move |ev| {
                                        let action = event_target_value(&ev);
                                        set(None, Box::new(move |cs| {
                                            if let Some(c) = cs.get_mut(i) {
                                                let name = name_of(c);
                                                *c = match action.as_str() {
                                                    "set" => ProfileChange::Set { attribute: name, value: String::new() },
                                                    "unset" => ProfileChange::Unset { attribute: name },
                                                    "add_tag" => ProfileChange::AddTag { tag: name },
                                                    _ => ProfileChange::RemoveTag { tag: name },
                                                };
                                            }
                                        }));
                                    }
                                >
                                    <option value="set">"Set"</option>
                                    <option value="unset">"Unset"</option>
                                    <option value="add_tag">"Add tag"</option>
                                    <option value="remove_tag">"Remove tag"</option>
                                </select>
                                <input
                                    type="text"
                                    placeholder=if action.ends_with("tag") { "tag" } else { "attribute" }
                                    aria-label="Attribute or tag"
                                    prop:value=move || changes().get(i).map(name_of).unwrap_or_default()
                                    disabled=move || ed.read_only()
                                    on:input=move |ev| {
                                        let name = event_target_value(&ev);
                                        set(Some(format!("{}:change{i}", id.get_value())), Box::new(move |cs| {
                                            match cs.get_mut(i) {
                                                Some(ProfileChange::Set { attribute, .. } | ProfileChange::Unset { attribute }) => *attribute = name,
                                                Some(ProfileChange::AddTag { tag } | ProfileChange::RemoveTag { tag }) => *tag = name,
                                                None => {}
                                            }
                                        }));
                                    }
                                />
                                {(action == "set").then(|| view! {
                                    <input
                                        type="text"
                                        placeholder="value or {{event.path}}"
                                        aria-label="Value"
                                        prop:value=move || match changes().get(i) {
                                            Some(ProfileChange::Set { value, .. }) => value.clone(),
                                            _ => String::new(),
                                        }
                                        disabled=move || ed.read_only()
                                        on:input=move |ev| {
                                            let v = event_target_value(&ev);
                                            set(Some(format!("{}:value{i}", id.get_value())), Box::new(move |cs| {
                                                if let Some(ProfileChange::Set { value, .. }) = cs.get_mut(i) {
                                                    *value = v;
                                                }
                                            }));
                                        }
                                    />
                                })}
                                <button class="small" aria-label="Remove change" hidden=move || ed.read_only() on:click=move |_| {
                                    set(None, Box::new(move |cs| {
                                        if i < cs.len() {
                                            cs.remove(i);
                                        }
                                    }));
                                }>"×"</button>
                            </div>
                        }
                    })
                    .collect_view()
            }}
            <button class="small" hidden=move || ed.read_only() on:click=move |_| {
                set(None, Box::new(|cs| cs.push(ProfileChange::Set { attribute: String::new(), value: String::new() })));
            }>"+ Change"</button>
        </div>
        <FieldIssues issues node field="changes" />
    }
}

/// The rule group at `path` inside a node's rules (`rules` of a condition, `filter` of a trigger).
fn group_at<'a>(kind: &'a NodeKind, path: &[usize]) -> Option<&'a RuleGroup> {
    let mut g = match kind {
        NodeKind::Condition { rules } => rules,
        NodeKind::Trigger { filter: Some(f), .. } => f,
        _ => return None,
    };
    for &i in path {
        match g.items.get(i)? {
            RuleItem::Group(inner) => g = inner,
            RuleItem::Rule(_) => return None,
        }
    }
    Some(g)
}

fn group_at_mut<'a>(kind: &'a mut NodeKind, path: &[usize]) -> Option<&'a mut RuleGroup> {
    let mut g = match kind {
        NodeKind::Condition { rules } => rules,
        NodeKind::Trigger { filter, .. } => {
            filter.get_or_insert_with(|| RuleGroup { join: Join::All, items: Vec::new() })
        }
        _ => return None,
    };
    for &i in path {
        match g.items.get_mut(i)? {
            RuleItem::Group(inner) => g = inner,
            RuleItem::Rule(_) => return None,
        }
    }
    Some(g)
}

/// The group's shape: which items are groups. Re-rendering follows the shape, not every keystroke.
fn shape(g: &RuleGroup) -> Vec<bool> {
    g.items.iter().map(|i| matches!(i, RuleItem::Group(_))).collect()
}

#[component]
fn RulesEditor(ed: Ed, issues: Memo<Vec<Issue>>, node: String, field: &'static str) -> impl IntoView {
    view! {
        <GroupEditor ed node=node.clone() path=Vec::new() />
        <FieldIssues issues node field />
    }
}

/// Returns `AnyView`: the editor contains itself for nested groups.
#[component]
fn GroupEditor(ed: Ed, node: String, path: Vec<usize>) -> AnyView {
    let node = StoredValue::new(node);
    let path = StoredValue::new(path);
    let group = move || ed.shown_node(&node.get_value()).and_then(|n| group_at(&n.kind, &path.get_value()).cloned());
    let items = Memo::new(move |_| group().map(|g| shape(&g)).unwrap_or_default());
    let edit = move |key: Option<String>, f: Box<dyn FnOnce(&mut RuleGroup)>| {
        let (id, p) = (node.get_value(), path.get_value());
        ed.change(key, move |w| {
            if let Some(g) = w.nodes.iter_mut().find(|n| n.id == id).and_then(|n| group_at_mut(&mut n.kind, &p)) {
                f(g);
            }
        });
    };
    let nested = !path.get_value().is_empty();
    view! {
        <div class="rule-group" class:nested=nested>
            <div class="rule-group-head">
                <select
                    aria-label="Join"
                    data-field="join"
                    prop:value=move || match group().map(|g| g.join) {
                        Some(Join::Any) => "any",
                        _ => "all",
                    }
                    disabled=move || ed.read_only()
                    on:change=move |ev| {
                        let any = event_target_value(&ev) == "any";
                        edit(None, Box::new(move |g| g.join = if any { Join::Any } else { Join::All }));
                    }
                >
                    <option value="all">"All of these"</option>
                    <option value="any">"Any of these"</option>
                </select>
                {nested.then(|| view! {
                    <button class="small" aria-label="Remove group" hidden=move || ed.read_only() on:click=move |_| {
                        let mut p = path.get_value();
                        let Some(i) = p.pop() else { return };
                        let id = node.get_value();
                        ed.change(None, move |w| {
                            if let Some(g) = w.nodes.iter_mut().find(|n| n.id == id).and_then(|n| group_at_mut(&mut n.kind, &p)) {
                                if i < g.items.len() {
                                    g.items.remove(i);
                                }
                            }
                        });
                    }>"×"</button>
                })}
            </div>
            {move || {
                items
                    .get()
                    .into_iter()
                    .enumerate()
                    .map(|(i, is_group)| {
                        let mut child = path.get_value();
                        child.push(i);
                        if is_group {
                            view! { <GroupEditor ed node=node.get_value() path=child /> }.into_any()
                        } else {
                            view! { <RuleEditor ed node=node.get_value() path=path.get_value() index=i /> }.into_any()
                        }
                    })
                    .collect_view()
            }}
            <div class="rule-actions">
                <button class="small" data-testid="add-rule" hidden=move || ed.read_only() on:click=move |_| {
                    edit(None, Box::new(|g| g.items.push(RuleItem::Rule(Rule {
                        operand: Operand::Event { path: String::new() },
                        op: Op::Eq,
                        value_type: ValueType::String,
                        value: Value::String(String::new()),
                    }))));
                }>"+ Rule"</button>
                <button class="small" hidden=move || ed.read_only() on:click=move |_| {
                    edit(None, Box::new(|g| g.items.push(RuleItem::Group(RuleGroup { join: Join::Any, items: Vec::new() }))));
                }>"+ Group"</button>
            </div>
        </div>
    }
    .into_any()
}

const OPS: &[(&str, &str)] = &[
    ("eq", "="),
    ("ne", "≠"),
    ("lt", "<"),
    ("le", "≤"),
    ("gt", ">"),
    ("ge", "≥"),
    ("contains", "contains"),
    ("starts_with", "starts with"),
    ("in", "in list"),
    ("exists", "exists"),
    ("not_exists", "does not exist"),
];

fn op_name(op: Op) -> String {
    serde_json::to_value(op).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

fn parse_op(s: &str) -> Op {
    serde_json::from_value(Value::String(s.into())).unwrap_or(Op::Eq)
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(value_text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

fn typed_value(text: &str, t: ValueType) -> Value {
    let trimmed = text.trim();
    match t {
        // Whole numbers stay integers in the JSON ("50", not "50.0").
        ValueType::Number => trimmed.parse::<f64>().ok().and_then(|f| {
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                Some(Value::from(f as i64))
            } else {
                serde_json::Number::from_f64(f).map(Value::Number)
            }
        }),
        ValueType::Bool => match trimmed {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        _ => None,
    }
    .unwrap_or_else(|| Value::String(text.to_string()))
}

/// The rule's value from what was typed: a list for `in`, typed otherwise.
fn rule_value(text: &str, op: Op, t: ValueType) -> Value {
    match op {
        Op::In => Value::Array(split_list(text).iter().map(|s| typed_value(s, t)).collect()),
        Op::Exists | Op::NotExists => Value::Null,
        _ => typed_value(text, t),
    }
}

#[component]
fn RuleEditor(ed: Ed, node: String, path: Vec<usize>, index: usize) -> impl IntoView {
    let node = StoredValue::new(node);
    let path = StoredValue::new(path);
    let rule = move || {
        let n = ed.shown_node(&node.get_value())?;
        match group_at(&n.kind, &path.get_value())?.items.get(index)? {
            RuleItem::Rule(r) => Some(r.clone()),
            RuleItem::Group(_) => None,
        }
    };
    let operand_kind = Memo::new(move |_| match rule().map(|r| r.operand) {
        Some(Operand::Profile { .. }) => "profile",
        Some(Operand::CountInWindow { .. }) => "count",
        Some(Operand::SumInWindow { .. }) => "sum",
        Some(Operand::LastSeen) => "last_seen",
        _ => "event",
    });
    let edit = move |key: Option<&str>, f: Box<dyn FnOnce(&mut Rule)>| {
        let (id, p) = (node.get_value(), path.get_value());
        let key = key.map(|k| format!("{id}:{p:?}:{index}:{k}"));
        ed.change(key, move |w| {
            if let Some(g) = w.nodes.iter_mut().find(|n| n.id == id).and_then(|n| group_at_mut(&mut n.kind, &p)) {
                if let Some(RuleItem::Rule(r)) = g.items.get_mut(index) {
                    f(r);
                }
            }
        });
    };
    let operand_inputs = move || {
        let text = |label: &'static str, get: fn(&Operand) -> String, set: fn(&mut Operand, String)| {
            let raw = typed(
                move || rule().map(|r| get(&r.operand)).unwrap_or_default(),
                move |text| {
                    untrack(rule).map(|r| {
                        let mut operand = r.operand;
                        set(&mut operand, text.to_string());
                        get(&operand)
                    })
                },
            );
            view! {
                <input
                    type="text"
                    placeholder=label
                    aria-label=label
                    data-field=format!("rule.{label}")
                    prop:value=move || raw.get()
                    disabled=move || ed.read_only()
                    on:input=move |ev| {
                        let v = event_target_value(&ev);
                        raw.set(v.clone());
                        edit(Some(label), Box::new(move |r| set(&mut r.operand, v)));
                    }
                />
            }
        };
        let hours = move || {
            let raw = typed(
                move || match rule().map(|r| r.operand) {
                    Some(Operand::CountInWindow { hours, .. } | Operand::SumInWindow { hours, .. }) => {
                        hours.to_string()
                    }
                    _ => String::new(),
                },
                parsed::<u32>,
            );
            view! {
                <input
                    type="number"
                    min="1"
                    class="hours"
                    aria-label="hours"
                    title="Window in hours, counted by the hour: from the top of the hour that many hours ago"
                    prop:value=move || raw.get()
                    disabled=move || ed.read_only()
                    on:input=move |ev| {
                        raw.set(event_target_value(&ev));
                        let Ok(h) = event_target_value(&ev).trim().parse::<u32>() else { return };
                        edit(Some("hours"), Box::new(move |r| {
                            if let Operand::CountInWindow { hours, .. } | Operand::SumInWindow { hours, .. } = &mut r.operand {
                                *hours = h;
                            }
                        }));
                    }
                />
            }
        };
        match operand_kind.get() {
            "profile" => text(
                "attribute",
                |o| if let Operand::Profile { attribute } = o { attribute.clone() } else { String::new() },
                |o, v| if let Operand::Profile { attribute } = o { *attribute = v.trim().to_string() },
            )
            .into_any(),
            "count" => view! {
                {text("event name", |o| if let Operand::CountInWindow { event, .. } = o { event.clone() } else { String::new() },
                    |o, v| if let Operand::CountInWindow { event, .. } = o { *event = v.trim().to_string() })}
                {hours()}
            }
            .into_any(),
            "sum" => view! {
                {text("event name", |o| if let Operand::SumInWindow { event, .. } = o { event.clone() } else { String::new() },
                    |o, v| if let Operand::SumInWindow { event, .. } = o { *event = v.trim().to_string() })}
                {text("field path", |o| if let Operand::SumInWindow { path, .. } = o { path.clone() } else { String::new() },
                    |o, v| if let Operand::SumInWindow { path, .. } = o { *path = v.trim().to_string() })}
                {hours()}
            }
            .into_any(),
            "last_seen" => ().into_any(),
            _ => text(
                "event path",
                |o| if let Operand::Event { path } = o { path.clone() } else { String::new() },
                |o, v| if let Operand::Event { path } = o { *path = v.trim().to_string() },
            )
            .into_any(),
        }
    };
    let value_raw = typed(
        move || rule().map(|r| value_text(&r.value)).unwrap_or_default(),
        move |text| untrack(rule).map(|r| value_text(&rule_value(text, r.op, r.value_type))),
    );
    view! {
        <div class="rule" data-testid="rule">
            <select
                aria-label="Compare"
                data-field="rule.operand"
                prop:value=move || operand_kind.get()
                disabled=move || ed.read_only()
                on:change=move |ev| {
                    let kind = event_target_value(&ev);
                    edit(None, Box::new(move |r| {
                        r.operand = match kind.as_str() {
                            "profile" => Operand::Profile { attribute: String::new() },
                            "count" => Operand::CountInWindow { event: String::new(), hours: 24 },
                            "sum" => Operand::SumInWindow { event: String::new(), path: String::new(), hours: 24 },
                            "last_seen" => Operand::LastSeen,
                            _ => Operand::Event { path: String::new() },
                        };
                        if matches!(r.operand, Operand::CountInWindow { .. } | Operand::SumInWindow { .. }) {
                            r.value_type = ValueType::Number;
                        }
                        if r.operand == Operand::LastSeen {
                            r.value_type = ValueType::Time;
                        }
                    }));
                }
            >
                <option value="event">"Event field"</option>
                <option value="profile">"Profile attribute"</option>
                <option value="count">"Count of events"</option>
                <option value="sum">"Sum over events"</option>
                <option value="last_seen">"Last seen"</option>
            </select>
            {operand_inputs}
            <select
                aria-label="Operator"
                data-field="rule.op"
                prop:value=move || rule().map(|r| op_name(r.op)).unwrap_or_default()
                disabled=move || ed.read_only()
                on:change=move |ev| {
                    let op = parse_op(&event_target_value(&ev));
                    edit(None, Box::new(move |r| {
                        let text = value_text(&r.value);
                        r.op = op;
                        r.value = rule_value(&text, op, r.value_type);
                    }));
                }
            >
                {OPS.iter().map(|(v, t)| view! { <option value=*v>{*t}</option> }).collect_view()}
            </select>
            <input
                type="text"
                placeholder="value"
                aria-label="Value"
                data-field="rule.value"
                prop:value=move || value_raw.get()
                disabled=move || ed.read_only() || rule().is_some_and(|r| matches!(r.op, Op::Exists | Op::NotExists))
                on:input=move |ev| {
                    let text = event_target_value(&ev);
                    value_raw.set(text.clone());
                    edit(Some("value"), Box::new(move |r| r.value = rule_value(&text, r.op, r.value_type)));
                }
            />
            <select
                aria-label="Compare as"
                data-field="rule.type"
                prop:value=move || match rule().map(|r| r.value_type) {
                    Some(ValueType::Number) => "number",
                    Some(ValueType::Bool) => "bool",
                    Some(ValueType::Time) => "time",
                    _ => "string",
                }
                disabled=move || ed.read_only()
                on:change=move |ev| {
                    let t = match event_target_value(&ev).as_str() {
                        "number" => ValueType::Number,
                        "bool" => ValueType::Bool,
                        "time" => ValueType::Time,
                        _ => ValueType::String,
                    };
                    edit(None, Box::new(move |r| {
                        let text = value_text(&r.value);
                        r.value_type = t;
                        r.value = rule_value(&text, r.op, t);
                    }));
                }
            >
                <option value="string">"as text"</option>
                <option value="number">"as number"</option>
                <option value="bool">"as yes/no"</option>
                <option value="time">"as time"</option>
            </select>
            <button class="small" aria-label="Remove rule" hidden=move || ed.read_only() on:click=move |_| {
                let (id, p) = (node.get_value(), path.get_value());
                ed.change(None, move |w| {
                    if let Some(g) = w.nodes.iter_mut().find(|n| n.id == id).and_then(|n| group_at_mut(&mut n.kind, &p)) {
                        if index < g.items.len() {
                            g.items.remove(index);
                        }
                    }
                });
            }>"×"</button>
        </div>
    }
}

/// Where each output of the selected node leads: the keyboard's way to connect.
#[component]
fn OutputsEditor(ed: Ed, issues: Memo<Vec<Issue>>, node: String) -> impl IntoView {
    let id = StoredValue::new(node);
    let ports = Memo::new(move |_| ed.shown_node(&id.get_value()).map(|n| n.kind.ports()).unwrap_or_default());
    let others = Memo::new(move |_| {
        ed.shown()
            .nodes
            .iter()
            .filter(|n| n.id != id.get_value() && !matches!(n.kind, NodeKind::Trigger { .. }))
            .map(|n| (n.id.clone(), format!("{} · {}", n.kind.label(), n.id)))
            .collect::<Vec<_>>()
    });
    view! {
        <Show when=move || !ports.with(Vec::is_empty)>
            <h4>"Outputs"</h4>
            {move || {
                ports
                    .get()
                    .into_iter()
                    .map(|port| {
                        let port = StoredValue::new(port);
                        let target = move || {
                            ed.shown().next(&id.get_value(), &port.get_value()).map(str::to_string).unwrap_or_default()
                        };
                        let label = port_label(&port.get_value()).unwrap_or_else(|| "next".into());
                        view! {
                            <label>
                                {format!("Then ({label})")}
                                <select
                                    data-field=format!("port:{}", port.get_value())
                                    prop:value=target
                                    disabled=move || ed.read_only()
                                    on:change=move |ev| ed.connect(&id.get_value(), &port.get_value(), &event_target_value(&ev))
                                >
                                    <option value="">"— not connected —"</option>
                                    <option value=END>"End the run here"</option>
                                    {move || {
                                        others
                                            .get()
                                            .into_iter()
                                            .map(|(value, text)| view! { <option value=value>{text}</option> })
                                            .collect_view()
                                    }}
                                </select>
                            </label>
                            <FieldIssues issues node=id.get_value() field=format!("port:{}", port.get_value()) />
                        }
                    })
                    .collect_view()
            }}
        </Show>
    }
}

#[component]
fn Inspector(ed: Ed, issues: Memo<Vec<Issue>>) -> AnyView {
    let single = Memo::new(move |_| {
        let s = ed.selected.get();
        match s.as_slice() {
            [one] => ed.shown_node(one).map(|n| (n.id, n.kind.type_name())),
            _ => None,
        }
    });
    let count = move || ed.selected.with(Vec::len);
    view! {
        {move || match single.get() {
            Some((id, type_name)) => {
                let label = NodeKind::blank(type_name).map(|k| k.label()).unwrap_or_default();
                view! {
                    <div class="inspector-head">
                        <span class=format!("node-icon family-{}", family(type_name))>{icon(type_name)}</span>
                        <h3>{label}</h3>
                        <code class="muted">{id.clone()}</code>
                    </div>
                    <FieldIssues issues node=id.clone() field="" />
                    {node_form(ed, issues, &id, type_name)}
                    <OutputsEditor ed issues node=id.clone() />
                    <NodeRuns ed node=id.clone() />
                    <Show when=move || !ed.read_only()>
                        <div class="actions">
                            <button class="small" on:click=move |_| ed.duplicate_selected()>"Duplicate"</button>
                            <button class="small danger" data-testid="delete-node" on:click=move |_| ed.delete_selected()>"Delete"</button>
                        </div>
                    </Show>
                }
                    .into_any()
            }
            None if count() > 1 => {
                view! {
                    <h3>{format!("{} nodes selected", count())}</h3>
                    <Show when=move || !ed.read_only()>
                        <p class="hint">"Drag one to move them together; arrow keys nudge them."</p>
                        <div class="actions">
                            <button class="small" on:click=move |_| ed.duplicate_selected()>"Duplicate"</button>
                            <button class="small danger" on:click=move |_| ed.delete_selected()>"Delete"</button>
                        </div>
                    </Show>
                }
                    .into_any()
            }
            None => view! { <WorkflowPanel ed issues /> }.into_any(),
        }}
    }
    .into_any()
}

/// With nothing selected: the workflow's settings and every problem.
#[component]
fn WorkflowPanel(ed: Ed, issues: Memo<Vec<Issue>>) -> AnyView {
    let policy = move || match ed.shown().settings.re_entry {
        ReEntry::Once => "once".to_string(),
        ReEntry::AfterHours { .. } => "after".to_string(),
        ReEntry::EveryTime => "every".to_string(),
    };
    let hours = move || match ed.shown().settings.re_entry {
        ReEntry::AfterHours { hours } => hours,
        _ => 24,
    };
    let hours_raw = typed(move || hours().to_string(), parsed::<u32>);
    view! {
        <h3>"Workflow"</h3>
        <label>
            "A customer may enter"
            <select
                data-field="re_entry"
                prop:value=policy
                disabled=move || ed.read_only()
                on:change=move |ev| {
                    let h = hours();
                    let p = event_target_value(&ev);
                    ed.change(None, move |w| {
                        w.settings.re_entry = match p.as_str() {
                            "every" => ReEntry::EveryTime,
                            "after" => ReEntry::AfterHours { hours: h },
                            _ => ReEntry::Once,
                        };
                    });
                }
            >
                <option value="once">"once"</option>
                <option value="after">"again after some hours"</option>
                <option value="every">"every time the trigger matches"</option>
            </select>
        </label>
        <Show when=move || policy() == "after">
            <label>
                "Hours before re-entry"
                <input
                    type="number"
                    min="1"
                    prop:value=move || hours_raw.get()
                    disabled=move || ed.read_only()
                    on:input=move |ev| {
                        hours_raw.set(event_target_value(&ev));
                        let Ok(h) = event_target_value(&ev).trim().parse::<u32>() else { return };
                        let h = h.max(1);
                        ed.change(Some("re_entry_hours".into()), move |w| w.settings.re_entry = ReEntry::AfterHours { hours: h });
                    }
                />
            </label>
        </Show>
        // Problems are a to-do list for whoever can fix them; a viewer, or
        // anyone looking at a published version, gets no "can be published".
        <Show
            when=move || !ed.read_only()
            fallback=move || {
                let archived = ed.summary.with(|s| s.as_ref().is_some_and(|s| s.status == WorkflowStatus::Archived));
                let why = if ed.showing.with(Option::is_some) {
                    "A published version: it cannot be changed. \"Back to the draft\" returns to the editable draft."
                } else if archived {
                    "This workflow is archived: it can be looked at, not changed."
                } else {
                    "You can look at this workflow; changing or publishing it takes the editor role."
                };
                view! { <p class="hint" data-testid="read-only-note">{why}</p> }
            }
        >
            <h4>"Problems"</h4>
            {move || {
                let all = issues.get();
                if all.is_empty() {
                    view! { <p class="form-ok" data-testid="no-problems">"No problems: this workflow can be published."</p> }.into_any()
                } else {
                    view! {
                        <ul class="issues" data-testid="problems">
                            {all
                                .into_iter()
                                .map(|i| {
                                    let node = i.node.clone();
                                    view! {
                                        <li>
                                            {match node {
                                                Some(n) => {
                                                    let target = n.clone();
                                                    view! {
                                                        <button class="link" on:click=move |_| ed.select_only(&target)>{n}</button>
                                                        ": "
                                                    }
                                                        .into_any()
                                                }
                                                None => ().into_any(),
                                            }}
                                            {i.message}
                                        </li>
                                    }
                                })
                                .collect_view()}
                        </ul>
                    }
                        .into_any()
                }
            }}
        </Show>
        <h4>"Keyboard and mouse"</h4>
        <p class="hint" data-testid="canvas-hints">
            {move || {
                if ed.read_only() {
                    "Scroll or drag the background to pan · Ctrl+scroll zooms · Tab to a node to see its settings · Esc clears."
                } else {
                    "Scroll or drag the background to pan · Ctrl+scroll zooms · Tab to a node to select it · Delete removes · Ctrl+D duplicates · arrows move · Ctrl+Z / Ctrl+Shift+Z undo and redo · Ctrl+A selects all · Esc clears."
                }
            }}
        </p>
    }
    .into_any()
}

#[component]
fn Versions(ed: Ed) -> AnyView {
    let versions = Resource::new(move || ed.versions_changed.get(), move |_| workflow_versions(ed.id.get_value()));
    let compare = move |from: i64, to: i64, label: String| {
        let id = ed.id.get_value();
        spawn_local(async move {
            match diff_workflow(id, from, to).await {
                Ok(d) => ed.diff.set(Some((label, d))),
                Err(e) => ed.notice.set(Some((false, e.to_string()))),
            }
        });
    };
    let rollback = move |version: i64| {
        let ok = web_sys::window()
            .map(|w| {
                w.confirm_with_message(&format!("Publish version {version} again as the newest version?"))
                    .unwrap_or(false)
            })
            .unwrap_or(false);
        if !ok {
            return;
        }
        // Pending edits are saved first, so the rollback cannot race them.
        ed.save_now(Some(Box::new(move |saved| {
            if !saved {
                return;
            }
            let id = ed.id.get_value();
            spawn_local(async move {
                match rollback_workflow(id, version).await {
                    Ok(detail) => {
                        ed.generation.update_value(|g| *g += 1);
                        ed.history.update_value(|h| *h = History::default());
                        ed.refresh_undo();
                        ed.showing.set(None);
                        ed.diff.set(None);
                        ed.wf.set(detail.draft.clone());
                        ed.accept(&detail);
                        ed.save.set(SaveState::Saved);
                        let v = detail.summary.latest_version;
                        ed.notice
                            .set(Some((true, format!("Rolled back: version {version} is live again as version {v}."))));
                        ed.versions_changed.update(|n| *n += 1);
                    }
                    Err(e) => ed.notice.set(Some((false, e.to_string()))),
                }
            });
        })));
    };
    view! {
        <h3>"Versions"</h3>
        {move || {
            ed.diff
                .get()
                .map(|(label, d)| {
                    view! {
                        <div class="diff" data-testid="diff">
                            <h4>{label}</h4>
                            {if d.nodes.is_empty() && !d.settings_changed {
                                view! { <p class="muted">"No differences."</p> }.into_any()
                            } else {
                                view! {
                                    <ul>
                                        {d.nodes
                                            .into_iter()
                                            .map(|n| {
                                                let (class, verb) = match n.change {
                                                    Change::Added => ("added", "added"),
                                                    Change::Removed => ("removed", "removed"),
                                                    Change::Changed => ("changed", "changed"),
                                                };
                                                let what = if n.what.is_empty() { String::new() } else { format!(" ({})", n.what.join(", ")) };
                                                view! {
                                                    <li class=class>
                                                        <strong>{n.label}</strong>
                                                        " "
                                                        <code>{n.node}</code>
                                                        {format!(" {verb}{what}")}
                                                    </li>
                                                }
                                            })
                                            .collect_view()}
                                        {d.settings_changed.then(|| view! { <li class="changed">"Workflow settings changed"</li> })}
                                    </ul>
                                }
                                    .into_any()
                            }}
                            <button class="small" on:click=move |_| ed.diff.set(None)>"Close the comparison"</button>
                        </div>
                    }
                })
        }}
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match versions.await {
                    Ok(list) if list.is_empty() => {
                        view! { <p class="muted">"Nothing published yet. Publishing creates version 1."</p> }.into_any()
                    }
                    Ok(list) => {
                        view! {
                            <ol class="versions" data-testid="version-list">
                                {list
                                    .into_iter()
                                    .map(|v| {
                                        let n = v.version;
                                        let shown = v.clone();
                                        view! {
                                            <li data-testid=format!("version-{n}")>
                                                <div>
                                                    <strong>{format!("Version {n}")}</strong>
                                                    <span class="muted small">{format!(" · {} · {}", format_ms(v.published_at), v.published_by)}</span>
                                                </div>
                                                {v.note.clone().map(|note| view! { <div class="muted small">{note}</div> })}
                                                <div class="actions">
                                                    <button class="small" on:click=move |_| {
                                                        ed.selected.set(Vec::new());
                                                        ed.showing.set(Some(shown.clone()));
                                                        ed.diff.set(None);
                                                        request_animation_frame(move || ed.fit());
                                                    }>"View"</button>
                                                    {(n > 1).then(|| view! {
                                                        <button class="small" data-testid=format!("diff-{n}") on:click=move |_| {
                                                            compare(n - 1, n, format!("Version {} → {n}", n - 1));
                                                        }>"Changes"</button>
                                                    })}
                                                    <button class="small" on:click=move |_| compare(n, 0, format!("Version {n} → draft"))>"vs draft"</button>
                                                    <Show when=move || ed.editable.get()>
                                                        <button class="small" on:click=move |_| rollback(n)>"Roll back"</button>
                                                    </Show>
                                                </div>
                                            </li>
                                        }
                                    })
                                    .collect_view()}
                            </ol>
                        }
                            .into_any()
                    }
                    Err(e) => view! { <p class="form-error">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
    .into_any()
}

#[component]
fn ExportDialog(ed: Ed, show_export: RwSignal<bool>) -> AnyView {
    let json = Signal::derive(move || serde_json::to_string_pretty(&ed.shown()).unwrap_or_default());
    let download = move |_| {
        use wasm_bindgen::JsCast;
        let text = json.get_untracked();
        let parts = js_sys_array(&text);
        let opts = web_sys::BlobPropertyBag::new();
        opts.set_type("application/json");
        let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &opts) else { return };
        let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else { return };
        let doc = web_sys::window().and_then(|w| w.document());
        if let Some(a) =
            doc.and_then(|d| d.create_element("a").ok()).and_then(|e| e.dyn_into::<web_sys::HtmlAnchorElement>().ok())
        {
            a.set_href(&url);
            let name: String =
                ed.name.get_untracked().chars().map(|c| if c.is_alphanumeric() { c } else { '-' }).collect();
            a.set_download(&format!("{name}.json"));
            a.click();
        }
        let _ = web_sys::Url::revoke_object_url(&url);
    };
    view! {
        <div class="dialog" role="dialog" aria-label="Export">
            <h3>"Export as JSON"</h3>
            <p class="hint">"Import it on the Workflows page, here or on another Nudge."</p>
            <textarea readonly rows="14" data-testid="export-json" prop:value=move || json.get()></textarea>
            <div class="actions">
                <button class="small" on:click=download>"Download"</button>
                <crate::components::forms::CopyButton text=json />
                <button class="small" on:click=move |_| show_export.set(false)>"Close"</button>
            </div>
        </div>
    }
    .into_any()
}

/// A one-element JS array holding `text`, for `Blob::new`.
fn js_sys_array(text: &str) -> wasm_bindgen::JsValue {
    let array = js_sys::Array::new();
    array.push(&wasm_bindgen::JsValue::from_str(text));
    array.into()
}

#[server]
pub async fn node_runs(workflow_id: String, node: String) -> Result<Vec<crate::model::Run>, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        crate::service::runs::recent_at_node(&ctx, &actor, &workflow_id, &node).await
    })
    .await
}

/// The latest runs that passed the selected node, once the workflow runs.
#[component]
fn NodeRuns(ed: Ed, node: String) -> impl IntoView {
    let node = StoredValue::new(node);
    let counted = move || ed.live.with(|l| l.contains_key(&node.get_value()));
    let runs = LocalResource::new(move || {
        let wanted = counted();
        // Follow the counters: new runs show up as they pass.
        ed.live.track();
        async move {
            if !wanted {
                return Vec::new();
            }
            node_runs(ed.id.get_value(), node.get_value()).await.unwrap_or_default()
        }
    });
    view! {
        <Show when=counted>
            <h4 class="inspector-sub">"Recent runs here"</h4>
            {move || {
                let list = runs.get().unwrap_or_default();
                if list.is_empty() {
                    view! { <p class="muted small">"No run has passed this node yet."</p> }.into_any()
                } else {
                    view! {
                        <ul class="node-runs" data-testid="node-runs">
                            {list.into_iter().map(|r| view! {
                                <li>
                                    <a href=format!("/runs/{}", r.run_id)>{r.customer_id.clone()}</a>
                                    " "<span class=crate::pages::runs::status_class(r.status.as_str())>{r.status.as_str()}</span>
                                    <span class="muted small">" "{format_ms(r.started_at)}</span>
                                </li>
                            }).collect_view()}
                        </ul>
                    }.into_any()
                }
            }}
        </Show>
    }
}
