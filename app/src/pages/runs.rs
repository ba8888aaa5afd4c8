//! Runs (filter by workflow, status, customer and webhook health; each run's
//! step trace and actions, a failed webhook retried) and the alert inbox
//! (acknowledge, resolve).

use crate::components::caller::IfRole;
use crate::components::canvas;
use crate::components::forms::ErrorNote;
use crate::components::graph::RunGraph;
use crate::components::live::{use_live_ticks, LiveBadge};
use crate::error::AppError;
use crate::model::{ActionHealth, Alert, Page, Role, Run, RunAction, RunDetail, WorkflowSummary};
use crate::pages::settings::format_ms;
use crate::workflow::eval::RunStatus;
use crate::workflow::status::{action_state, attempts_text, ActionStatus, AlertStatus, WEBHOOK_KIND};
use crate::workflow::validate::END;
use crate::workflow::Workflow;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};
use std::collections::HashMap;

#[server]
pub async fn list_runs(
    workflow: String,
    status: String,
    customer: String,
    actions: String,
) -> Result<Page<Run>, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        let some = |s: String| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let filter = crate::service::runs::RunFilter {
            workflow: some(workflow),
            status: some(status),
            customer: some(customer),
            actions: some(actions),
        };
        crate::service::runs::list_runs(&ctx, &actor, &filter, None, Some(100)).await
    })
    .await
}

/// Queues a failed webhook again (editor).
#[server]
pub async fn retry_action(action_key: String) -> Result<RunAction, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        crate::service::runs::retry_action(&ctx, &actor, &action_key, crate::store::now_ms()).await
    })
    .await
}

/// A run with the workflow version it runs on (`None` if that is gone).
#[server]
pub async fn get_run(run_id: String) -> Result<(RunDetail, Option<Workflow>), AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        let detail = crate::service::runs::get_run(&ctx, &actor, &run_id).await?;
        let version = crate::service::workflows::version(&ctx, &actor, &detail.run.workflow_id, detail.run.version)
            .await
            .ok()
            .map(|v| v.definition);
        Ok((detail, version))
    })
    .await
}

/// Every workflow (for filters and names), archived ones included.
#[server]
pub async fn workflow_names() -> Result<Vec<WorkflowSummary>, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        let mut all = Vec::new();
        for status in [None, Some(crate::model::WorkflowStatus::Archived)] {
            let filter = crate::service::workflows::WorkflowFilter { status, q: None };
            all.extend(crate::service::workflows::list(&ctx, &actor, &filter, None, Some(200)).await?.items);
        }
        Ok(all)
    })
    .await
}

#[server]
pub async fn list_alerts(status: String, severity: String) -> Result<Page<Alert>, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        let some = |s: String| Some(s).filter(|s| !s.is_empty());
        let filter =
            crate::service::runs::AlertFilter { status: some(status), severity: some(severity), customer: None };
        crate::service::runs::list_alerts(&ctx, &actor, &filter, None, Some(100)).await
    })
    .await
}

/// Acknowledges (`resolve = false`) or resolves an alert.
#[server]
pub async fn work_alert(alert_id: String, resolve: bool) -> Result<Alert, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        if resolve {
            crate::service::runs::resolve_alert(&ctx, &actor, &alert_id).await
        } else {
            crate::service::runs::acknowledge_alert(&ctx, &actor, &alert_id).await
        }
    })
    .await
}

pub(crate) fn status_class(status: &str) -> &'static str {
    match status {
        "converted" | "completed" | "resolved" => "badge ok",
        "waiting" | "acknowledged" => "badge warn",
        "failed" | "open" => "badge danger",
        _ => "badge off",
    }
}

/// What a waiting run waits for and until when, in words; `None` once it is over.
pub(crate) fn waiting_line(r: &Run) -> Option<String> {
    let what = r.waiting_for.clone()?;
    Some(match r.wake_at {
        Some(at) => format!("{what}, until {}", format_ms(at)),
        None => what,
    })
}

/// The badge of a run's undelivered or failed webhooks, or nothing.
pub(crate) fn health_badge(h: &ActionHealth) -> impl IntoView {
    h.badge().map(|(text, tone)| {
        view! { <span class=format!("badge {tone}") data-testid="action-health">{text}</span> }
    })
}

/// A node of the run's version as a marketer knows it: its kind and what it
/// is set to, the id small beside them (the id alone when the version is gone).
fn node_face(faces: &HashMap<String, (&'static str, String)>, id: &str) -> AnyView {
    match faces.get(id) {
        Some((kind, summary)) => view! {
            <span class="step-node">
                <strong>{*kind}</strong> " " <span class="muted">{summary.clone()}</span> " "
                <code class="muted small" title="node id">{id.to_string()}</code>
            </span>
        }
        .into_any(),
        None if id == END => view! { <strong>"End"</strong> }.into_any(),
        None => view! { <code>{id.to_string()}</code> }.into_any(),
    }
}

#[component]
pub fn RunsPage() -> impl IntoView {
    // `/runs?workflow=…` opens on one workflow's runs (the designer links there).
    let query = use_query_map();
    let workflow = RwSignal::new(query.read_untracked().get("workflow").unwrap_or_default());
    let status = RwSignal::new(String::new());
    let customer = RwSignal::new(String::new());
    // `/runs?actions=failing` opens on the runs whose webhooks fail.
    let actions = RwSignal::new(query.read_untracked().get("actions").unwrap_or_default());
    let names = Resource::new(|| (), |_| workflow_names());
    let (live, tick) = use_live_ticks("runs", |_| true);
    let runs = Resource::new(
        move || (workflow.get(), status.get(), customer.get(), actions.get(), tick.get()),
        |(w, s, c, a, _)| list_runs(w, s, c, a),
    );
    view! {
        <Title text="Runs" />
        <h1>"Runs" " " <LiveBadge status=live /></h1>
        <p class="lead">"Each run is one customer going through one published version of a workflow."</p>
        <section class="card">
            <div class="inline-form filters">
                <label>
                    "Workflow"
                    <select data-testid="run-workflow" on:change=move |ev| workflow.set(event_target_value(&ev))>
                        <option value="">"All"</option>
                        <Transition fallback=|| ()>
                            {move || Suspend::new(async move {
                                names
                                    .await
                                    .unwrap_or_default()
                                    .into_iter()
                                    .map(|w| {
                                        let chosen = workflow.get_untracked() == w.workflow_id;
                                        view! { <option value=w.workflow_id selected=chosen>{w.name}</option> }
                                    })
                                    .collect_view()
                            })}
                        </Transition>
                    </select>
                </label>
                <label>
                    "Status"
                    <select data-testid="run-status" on:change=move |ev| status.set(event_target_value(&ev))>
                        <option value="">"Any"</option>
                        <option value="waiting">"Waiting"</option>
                        <option value="completed">"Completed"</option>
                        <option value="converted">"Converted"</option>
                        <option value="failed">"Failed"</option>
                        <option value="cancelled">"Cancelled"</option>
                    </select>
                </label>
                <label>
                    "Customer"
                    <input type="search" placeholder="customer id" on:change=move |ev| customer.set(event_target_value(&ev)) />
                </label>
                <label>
                    "Webhooks"
                    <select data-testid="run-actions" prop:value=move || actions.get() on:change=move |ev| actions.set(event_target_value(&ev))>
                        <option value="">"Any"</option>
                        <option value="failing">"Failing"</option>
                        <option value="pending">"Not delivered yet"</option>
                    </select>
                </label>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let names: std::collections::HashMap<String, String> = names
                        .await
                        .unwrap_or_default()
                        .into_iter()
                        .map(|w| (w.workflow_id, w.name))
                        .collect();
                    match runs.await {
                        Ok(page) if page.items.is_empty() => {
                            view! { <p class="muted" data-testid="no-runs">"No runs match. Runs start when a published workflow's trigger matches an event."</p> }.into_any()
                        }
                        Ok(page) => view! {
                            <table class="table" data-testid="runs">
                                <thead>
                                    <tr>
                                        <th>"Started"</th>
                                        <th>"Workflow"</th>
                                        <th>"Customer"</th>
                                        <th>"Status"</th>
                                        <th>"Now"</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {page.items.into_iter().map(|r| {
                                        let name = names
                                            .get(&r.workflow_id)
                                            .cloned()
                                            .or_else(|| r.workflow_name.clone())
                                            .unwrap_or_else(|| r.workflow_id.clone());
                                        view! {
                                            <tr>
                                                <td><a href=format!("/runs/{}", r.run_id)>{format_ms(r.started_at)}</a></td>
                                                <td><a href=format!("/workflows/{}", r.workflow_id)>{name}</a>" "<span class="muted small">{format!("v{}", r.version)}</span></td>
                                                <td><a href=format!("/customers/{}", r.customer_id)>{r.customer_id.clone()}</a></td>
                                                <td><span class=status_class(r.status.as_str())>{r.status.as_str()}</span>" "{health_badge(&r.action_health)}</td>
                                                <td>{waiting_line(&r).unwrap_or_default()}</td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(e) => view! { <p class="form-error">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
pub fn RunPage() -> impl IntoView {
    let params = use_params_map();
    let (live, tick) = use_live_ticks("runs", move |text| {
        params.with_untracked(|p| p.get("id")).is_some_and(|id| text.contains(&format!("\"{id}\"")))
    });
    let retry = ServerAction::<RetryAction>::new();
    let run = Resource::new(
        move || (params.read().get("id").unwrap_or_default(), tick.get(), retry.version().get()),
        |(id, _, _)| get_run(id),
    );
    let retry_error = Signal::derive(move || retry.value().get().and_then(Result::err));
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match run.await {
                    Ok((d, definition)) => {
                        let r = d.run;
                        let waiting_at = (r.status == RunStatus::Waiting).then(|| r.at_node.clone()).flatten();
                        let waiting = waiting_line(&r);
                        let faces: HashMap<String, (&'static str, String)> = definition
                            .as_ref()
                            .map(|w| w.nodes.iter().map(|n| (n.id.clone(), (n.kind.label(), canvas::summary(&n.kind)))).collect())
                            .unwrap_or_default();
                        let health = r.action_health;
                        let workflow_name = r.workflow_name.clone().unwrap_or_else(|| "Workflow".into());
                        view! {
                            <Title text="Run" />
                            <p class="crumbs"><a href="/runs">"Runs"</a> " / run"</p>
                            <h1>{format!("Run of {}", r.customer_id)} " " <span class=status_class(r.status.as_str()) data-testid="run-status-badge">{r.status.as_str()}</span> " " {health_badge(&health)} " " <LiveBadge status=live /></h1>
                            <section class="card">
                                <dl class="facts" data-testid="run-facts">
                                    <dt>"Workflow"</dt>
                                    <dd data-testid="run-workflow"><a href=format!("/workflows/{}", r.workflow_id)>{workflow_name}</a> " " <span class="muted small">{format!("version {}", r.version)}</span></dd>
                                    <dt>"Customer"</dt><dd><a href=format!("/customers/{}", r.customer_id)>{r.customer_id.clone()}</a></dd>
                                    <dt>"Started"</dt><dd>{format_ms(r.started_at)}</dd>
                                    {waiting.map(|w| view! { <dt>"Now"</dt><dd data-testid="run-waiting">{w}</dd> })}
                                    {r.ended_at.map(|t| view! { <dt>"Ended"</dt><dd>{format_ms(t)}</dd> })}
                                </dl>
                            </section>
                            {definition.map(|w| view! {
                                <section class="card">
                                    <h2>"Path"</h2>
                                    <p class="muted small">"The version this run is pinned to: the nodes it passed are solid, the outputs it took are drawn in colour."</p>
                                    <RunGraph workflow=w steps=d.steps.clone() waiting_at />
                                </section>
                            })}
                            <section class="card">
                                <h2>"Steps"</h2>
                                <ol class="trace" data-testid="trace">
                                    {d.steps.into_iter().map(|s| view! {
                                        <li>
                                            {node_face(&faces, &s.node)} " → " <strong>{s.outcome}</strong>
                                            {s.detail.map(|t| view! { <span class="muted">{format!(" · {t}")}</span> })}
                                            <span class="muted small">{format!(" · {}", format_ms(s.at))}</span>
                                        </li>
                                    }).collect_view()}
                                </ol>
                            </section>
                            <section class="card">
                                <h2>"Actions"</h2>
                                <ErrorNote error=retry_error />
                                {if d.actions.is_empty() {
                                    view! { <p class="muted">"No actions."</p> }.into_any()
                                } else {
                                    view! {
                                        <table class="table" data-testid="actions">
                                            <thead><tr><th>"Node"</th><th>"Action"</th><th>"Status"</th><th class="num">"Attempts"</th><th>"Last error"</th><th></th></tr></thead>
                                            <tbody>
                                                {d.actions.into_iter().map(|a| {
                                                    let (words, tone) = action_state(&a.kind, a.status, a.attempts, a.last_error.is_some());
                                                    let retryable = a.kind == WEBHOOK_KIND && a.status == ActionStatus::Failed;
                                                    let key = StoredValue::new(a.action_key.clone());
                                                    view! {
                                                        <tr data-testid=format!("action-{}", a.node)>
                                                            <td>{node_face(&faces, &a.node)}</td>
                                                            <td>{a.kind.replace('_', " ")}</td>
                                                            <td><span class=format!("badge {tone}")>{words}</span></td>
                                                            <td class="num">{attempts_text(&a.kind, a.attempts)}</td>
                                                            <td>{a.last_error.clone().unwrap_or_default()}</td>
                                                            <td class="row-actions">
                                                                {retryable.then(|| view! {
                                                                    <IfRole at_least=Role::Editor>
                                                                        <button
                                                                            class="small"
                                                                            data-testid="retry-action"
                                                                            disabled=move || retry.pending().get()
                                                                            on:click=move |_| { retry.dispatch(RetryAction { action_key: key.get_value() }); }
                                                                        >
                                                                            "Retry"
                                                                        </button>
                                                                    </IfRole>
                                                                })}
                                                            </td>
                                                        </tr>
                                                    }
                                                }).collect_view()}
                                            </tbody>
                                        </table>
                                    }.into_any()
                                }}
                            </section>
                        }
                        .into_any()
                    }
                    Err(e) => view! { <h1>"Run"</h1> <p class="form-error">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
pub fn AlertsPage() -> impl IntoView {
    let status = RwSignal::new("open".to_string());
    let severity = RwSignal::new(String::new());
    let work = ServerAction::<WorkAlert>::new();
    let (live, tick) = use_live_ticks("alerts", |_| true);
    let alerts = Resource::new(
        move || (status.get(), severity.get(), work.version().get(), tick.get()),
        |(s, v, _, _)| list_alerts(s, v),
    );
    let error = Signal::derive(move || work.value().get().and_then(Result::err));
    let fresh = track_new_alerts(alerts, status, severity);
    // Working an alert means it has been seen.
    Effect::new(move |_| {
        if let Some(w) = work.input().get() {
            fresh.update(|f| {
                f.remove(&w.alert_id);
            });
        }
    });
    let fresh_count = move || fresh.with(|f| f.len());
    view! {
        <Title text=move || match fresh_count() { 0 => "Alerts".to_string(), n => format!("({n}) Alerts") } />
        <h1>
            "Alerts" " " <LiveBadge status=live />
            <Show when=move || { fresh_count() > 0 }>
                <span class="new-alerts" data-testid="new-alerts" role="status">
                    {move || match fresh_count() { 1 => "1 new alert".to_string(), n => format!("{n} new alerts") }}
                    <button class="link small" on:click=move |_| fresh.update(|f| f.clear())>"Mark seen"</button>
                </span>
            </Show>
        </h1>
        <p class="lead">"The inbox of alerts raised by workflows: acknowledge one to say you are on it, resolve it when done."</p>
        <ErrorNote error />
        <section class="card">
            <div class="inline-form filters">
                <label>
                    "Status"
                    <select data-testid="alert-status" prop:value=move || status.get() on:change=move |ev| status.set(event_target_value(&ev))>
                        <option value="open">"Open"</option>
                        <option value="acknowledged">"Acknowledged"</option>
                        <option value="resolved">"Resolved"</option>
                        <option value="">"All"</option>
                    </select>
                </label>
                <label>
                    "Severity"
                    <select on:change=move |ev| severity.set(event_target_value(&ev))>
                        <option value="">"Any"</option>
                        <option value="critical">"Critical"</option>
                        <option value="warning">"Warning"</option>
                        <option value="info">"Info"</option>
                    </select>
                </label>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match alerts.await {
                        Ok(page) if page.items.is_empty() => view! {
                            <p class="muted" data-testid="no-alerts">"No alerts here. Workflows with an alert action raise them."</p>
                        }.into_any(),
                        Ok(page) => view! {
                            <table class="table stack" data-testid="alerts">
                                <thead><tr><th>"Raised"</th><th>"Severity"</th><th>"For"</th><th>"Message"</th><th>"Customer"</th><th>"Status"</th><th></th></tr></thead>
                                <tbody>
                                    {page.items.into_iter().map(|a| {
                                        let id = StoredValue::new(a.alert_id.clone());
                                        let open = a.status.may_acknowledge();
                                        let resolved = !a.status.may_resolve();
                                        let who = match (&a.resolved_by, a.resolved_at, &a.acknowledged_by, a.acknowledged_at) {
                                            (Some(by), Some(at), _, _) => format!(" by {by}, {}", format_ms(at)),
                                            (None, _, Some(by), Some(at)) => format!(" by {by}, {}", format_ms(at)),
                                            _ => String::new(),
                                        };
                                        let row_class = format!("severity-{}", a.severity);
                                        // A plain copy, not the row's StoredValue: the cue may be read while
                                        // a refetch replaces the rows.
                                        let alert_id = a.alert_id.clone();
                                        let is_new = move || fresh.with(|f| f.contains(&alert_id));
                                        let row_is_new = is_new.clone();
                                        view! {
                                            <tr class=row_class class:alert-new=row_is_new>
                                                <td data-label="Raised">
                                                    <span>{format_ms(a.created_at)}
                                                    <Show when=is_new><span class="badge new" data-testid="alert-new">"new"</span></Show></span>
                                                </td>
                                                <td data-label="Severity"><span class=format!("badge sev-{}", a.severity)>{a.severity.clone()}</span></td>
                                                <td data-label="For">{a.audience.clone()}</td>
                                                <td data-label="Message">{a.message.clone()}</td>
                                                <td data-label="Customer"><a href=format!("/customers/{}", a.customer_id)>{a.customer_id.clone()}</a></td>
                                                <td data-label="Status"><span><span class=status_class(a.status.as_str())>{a.status.as_str()}</span><span class="muted small">{who}</span></span></td>
                                                <td class="row-actions">
                                                    <IfRole at_least=Role::Editor>
                                                        <Show when=move || open>
                                                            <button class="small" on:click=move |_| { work.dispatch(WorkAlert { alert_id: id.get_value(), resolve: false }); }>"Acknowledge"</button>
                                                        </Show>
                                                        <Show when=move || !resolved>
                                                            <button class="small" on:click=move |_| { work.dispatch(WorkAlert { alert_id: id.get_value(), resolve: true }); }>"Resolve"</button>
                                                        </Show>
                                                    </IfRole>
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(e) => view! { <p class="form-error">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// The alerts that arrived while the page was open (not those shown by first
/// loading it or by changing a filter): the page marks them until they are
/// seen, worked, or the user says so.
fn track_new_alerts(
    alerts: Resource<Result<Page<Alert>, AppError>>,
    status: RwSignal<String>,
    severity: RwSignal<String>,
) -> RwSignal<std::collections::HashSet<String>> {
    let fresh = RwSignal::new(std::collections::HashSet::<String>::new());
    // What the last list showed, and under which filters.
    let seen = StoredValue::new(None::<((String, String), std::collections::HashSet<String>)>);
    Effect::new(move |_| {
        let Some(Ok(page)) = alerts.get() else { return };
        let filters = (status.get_untracked(), severity.get_untracked());
        let ids: std::collections::HashSet<String> = page.items.iter().map(|a| a.alert_id.clone()).collect();
        let arrived: Vec<String> = seen.with_value(|s| match s {
            Some((was, known)) if *was == filters => page
                .items
                .iter()
                .filter(|a| a.status == AlertStatus::Open && !known.contains(&a.alert_id))
                .map(|a| a.alert_id.clone())
                .collect(),
            _ => Vec::new(),
        });
        seen.update_value(|s| match s {
            Some((was, known)) if *was == filters => known.extend(ids.iter().cloned()),
            _ => *s = Some((filters, ids.clone())),
        });
        // Marks go with the alerts that left the list (worked elsewhere, filtered out).
        let stale = fresh.with_untracked(|f| f.iter().any(|id| !ids.contains(id)));
        if stale || !arrived.is_empty() {
            fresh.update(|f| {
                f.retain(|id| ids.contains(id));
                f.extend(arrived);
            });
        }
    });
    fresh
}
