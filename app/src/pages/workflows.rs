//! Workflows: the list (search, create from a template, import JSON,
//! duplicate, archive) and the server fns the designer calls.

use crate::components::caller::IfRole;
use crate::components::forms::ErrorNote;
use crate::error::AppError;
use crate::model::{Page, Role, WorkflowDetail, WorkflowStatus, WorkflowSummary, WorkflowVersion};
use crate::pages::settings::format_ms;
use crate::workflow::diff::Diff;
use crate::workflow::templates::Template;
use crate::workflow::Workflow;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_navigate;

/// Reads a workflow's JSON, with the line and column of the first problem.
pub fn parse_workflow_json(text: &str) -> Result<Workflow, AppError> {
    serde_json::from_str(text)
        .map_err(|e| AppError::invalid("definition", format!("This is not a Nudge workflow: {e}.")))
}

#[server]
pub async fn list_workflows(q: String, status: String) -> Result<Page<WorkflowSummary>, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        let status = match status.as_str() {
            "" => None,
            s => Some(s.parse::<WorkflowStatus>().map_err(|e| AppError::invalid("status", e))?),
        };
        let filter = crate::service::workflows::WorkflowFilter { status, q: Some(q) };
        crate::service::workflows::list(&ctx, &actor, &filter, None, Some(200)).await
    })
    .await
}

#[server]
pub async fn list_templates() -> Result<Vec<Template>, AppError> {
    crate::web::respond(async move {
        crate::web::actor().await?.require(Role::Viewer)?;
        Ok(crate::service::workflows::list_templates())
    })
    .await
}

/// Creates a workflow: from `template` (a name), from `definition` (JSON text), or empty.
#[server]
pub async fn create_workflow(name: String, template: String, definition: String) -> Result<String, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        let definition = match definition.trim() {
            "" => None,
            text => Some(parse_workflow_json(text)?),
        };
        let input = crate::service::workflows::NewWorkflow {
            name: Some(name).filter(|n| !n.trim().is_empty()),
            template: Some(template).filter(|t| !t.is_empty()),
            definition,
        };
        Ok(crate::service::workflows::create(&ctx, &actor, input).await?.summary.workflow_id)
    })
    .await
}

#[server]
pub async fn duplicate_workflow(workflow_id: String) -> Result<String, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        Ok(crate::service::workflows::duplicate(&ctx, &actor, &workflow_id).await?.summary.workflow_id)
    })
    .await
}

#[server]
pub async fn archive_workflow(workflow_id: String) -> Result<(), AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        crate::service::workflows::archive(&ctx, &actor, &workflow_id).await
    })
    .await
}

/// The workflow, and whether the caller may edit it.
#[server]
pub async fn get_workflow(workflow_id: String) -> Result<(WorkflowDetail, bool), AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        let detail = crate::service::workflows::get(&ctx, &actor, &workflow_id).await?;
        let editable = actor.role >= Role::Editor && detail.summary.status != WorkflowStatus::Archived;
        Ok((detail, editable))
    })
    .await
}

/// Saves the draft made on `revision`; `definition` is the workflow's JSON.
#[server]
pub async fn save_workflow(
    workflow_id: String,
    revision: i64,
    name: String,
    definition: String,
) -> Result<WorkflowDetail, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        let update = crate::service::workflows::DraftUpdate {
            revision,
            name: Some(name),
            definition: Some(parse_workflow_json(&definition)?),
        };
        crate::service::workflows::save_draft(&ctx, &actor, &workflow_id, update).await
    })
    .await
}

#[server]
pub async fn publish_workflow(workflow_id: String) -> Result<WorkflowDetail, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        crate::service::workflows::publish(&ctx, &actor, &workflow_id).await
    })
    .await
}

/// Pauses (`pause = true`) or resumes the workflow.
#[server]
pub async fn set_workflow_paused(workflow_id: String, pause: bool) -> Result<WorkflowDetail, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        if pause {
            crate::service::workflows::pause(&ctx, &actor, &workflow_id).await
        } else {
            crate::service::workflows::resume(&ctx, &actor, &workflow_id).await
        }
    })
    .await
}

#[server]
pub async fn workflow_versions(workflow_id: String) -> Result<Vec<WorkflowVersion>, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        crate::service::workflows::versions(&ctx, &actor, &workflow_id).await
    })
    .await
}

#[server]
pub async fn rollback_workflow(workflow_id: String, version: i64) -> Result<WorkflowDetail, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        crate::service::workflows::rollback(&ctx, &actor, &workflow_id, version).await
    })
    .await
}

/// The diff between two versions; `to` 0 means the draft.
#[server]
pub async fn diff_workflow(workflow_id: String, from: i64, to: i64) -> Result<Diff, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        let to = Some(to).filter(|v| *v > 0);
        crate::service::workflows::diff(&ctx, &actor, &workflow_id, Some(from), to).await
    })
    .await
}

pub fn status_badge(status: WorkflowStatus) -> impl IntoView {
    let class = match status {
        WorkflowStatus::Active => "badge ok",
        WorkflowStatus::Paused => "badge warn",
        WorkflowStatus::Draft | WorkflowStatus::Archived => "badge off",
    };
    view! { <span class=class data-testid="workflow-status">{status.label()}</span> }
}

#[component]
pub fn WorkflowsPage() -> impl IntoView {
    let q = RwSignal::new(String::new());
    let status = RwSignal::new(String::new());
    let changed = RwSignal::new(0u32);
    let workflows = Resource::new(move || (q.get(), status.get(), changed.get()), |(q, s, _)| list_workflows(q, s));
    let templates = Resource::new(|| (), |_| list_templates());
    let create = ServerAction::<CreateWorkflow>::new();
    let duplicate = ServerAction::<DuplicateWorkflow>::new();
    let archive = ServerAction::<ArchiveWorkflow>::new();
    let import_text = RwSignal::new(String::new());
    let import_error = RwSignal::new(None::<AppError>);
    let navigate = use_navigate();
    Effect::new(move |_| {
        let created =
            create.value().get().and_then(Result::ok).or_else(|| duplicate.value().get().and_then(Result::ok));
        if let Some(id) = created {
            navigate(&format!("/workflows/{id}"), Default::default());
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(())) = archive.value().get() {
            changed.update(|n| *n += 1);
        }
    });
    let error = Signal::derive(move || {
        create
            .value()
            .get()
            .and_then(Result::err)
            .or_else(|| duplicate.value().get().and_then(Result::err))
            .or_else(|| archive.value().get().and_then(Result::err))
    });
    let import = move |_| {
        let text = import_text.get_untracked();
        match parse_workflow_json(&text) {
            Ok(_) => {
                import_error.set(None);
                create.dispatch(CreateWorkflow { name: String::new(), template: String::new(), definition: text });
            }
            Err(e) => import_error.set(Some(e)),
        }
    };
    view! {
        <Title text="Workflows" />
        <h1>"Workflows"</h1>
        <p class="lead">
            "Event-to-action journeys: a trigger, conditions, waits, A/B splits and actions such as a unique offer, "
            "an alert to customer service or a webhook. Draw them on the canvas; publish to run them."
        </p>
        <ErrorNote error />
        <section class="card">
            <div class="inline-form filters">
                <label>
                    "Search"
                    <input
                        type="search"
                        placeholder="Name"
                        data-testid="workflow-search"
                        prop:value=move || q.get()
                        on:input=move |ev| q.set(event_target_value(&ev))
                    />
                </label>
                <label>
                    "Status"
                    <select on:change=move |ev| status.set(event_target_value(&ev))>
                        <option value="">"All but archived"</option>
                        <option value="draft">"Draft"</option>
                        <option value="active">"Active"</option>
                        <option value="paused">"Paused"</option>
                        <option value="archived">"Archived"</option>
                    </select>
                </label>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match workflows.await {
                        Ok(page) if page.items.is_empty() => {
                            view! {
                                <p class="muted" data-testid="no-workflows">
                                    "No workflows here yet. Start from a template below, or from an empty canvas."
                                </p>
                            }
                                .into_any()
                        }
                        Ok(page) => {
                            view! {
                                <table class="table" data-testid="workflows">
                                    <thead>
                                        <tr>
                                            <th>"Workflow"</th>
                                            <th>"Status"</th>
                                            <th class="num">"Version"</th>
                                            <th>"Last edited"</th>
                                            <th></th>
                                        </tr>
                                    </thead>
                                    <tbody>
                                        {page
                                            .items
                                            .into_iter()
                                            .map(|w| {
                                                let id = StoredValue::new(w.workflow_id.clone());
                                                let archived = w.status == WorkflowStatus::Archived;
                                                view! {
                                                    <tr>
                                                        <td>
                                                            <a href=format!("/workflows/{}", w.workflow_id)>{w.name.clone()}</a>
                                                            {(w.unpublished_changes && w.latest_version > 0)
                                                                .then(|| view! { <span class="muted small">" · unpublished changes"</span> })}
                                                            {(w.latest_version == 0)
                                                                .then(|| view! { <span class="muted small">" · never published"</span> })}
                                                        </td>
                                                        <td>{status_badge(w.status)}</td>
                                                        <td class="num">
                                                            {w.active_version.map(|v| format!("v{v}")).unwrap_or_else(|| "—".into())}
                                                        </td>
                                                        <td>{format!("{} by {}", format_ms(w.updated_at), w.updated_by)}</td>
                                                        <td class="row-actions">
                                                            <IfRole at_least=Role::Editor>
                                                                <button
                                                                    class="small"
                                                                    on:click=move |_| {
                                                                        duplicate.dispatch(DuplicateWorkflow { workflow_id: id.get_value() });
                                                                    }
                                                                >
                                                                    "Duplicate"
                                                                </button>
                                                                <Show when=move || !archived>
                                                                    <button
                                                                        class="small danger"
                                                                        on:click=move |_| {
                                                                            let ok = web_sys::window()
                                                                                .map(|w| w.confirm_with_message("Archive this workflow? It stops running, and the runs waiting in it are cancelled.").unwrap_or(false))
                                                                                .unwrap_or(false);
                                                                            if ok {
                                                                                archive.dispatch(ArchiveWorkflow { workflow_id: id.get_value() });
                                                                            }
                                                                        }
                                                                    >
                                                                        "Archive"
                                                                    </button>
                                                                </Show>
                                                            </IfRole>
                                                        </td>
                                                    </tr>
                                                }
                                            })
                                            .collect_view()}
                                    </tbody>
                                </table>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <p class="form-error">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
        <IfRole at_least=Role::Editor>
            <section class="card">
                <h2>"New workflow"</h2>
                <div class="template-grid">
                    <button
                        class="template"
                        data-testid="new-blank"
                        disabled=move || create.pending().get()
                        on:click=move |_| {
                            create.dispatch(CreateWorkflow { name: String::new(), template: String::new(), definition: String::new() });
                        }
                    >
                        <strong>"Empty canvas"</strong>
                        <span>"Start from nothing: drag a trigger onto the canvas."</span>
                    </button>
                    <Transition fallback=|| ()>
                        {move || Suspend::new(async move {
                            templates
                                .await
                                .unwrap_or_default()
                                .into_iter()
                                .map(|t| {
                                    let name = t.name.clone();
                                    view! {
                                        <button
                                            class="template"
                                            data-testid=format!("template-{}", t.name)
                                            disabled=move || create.pending().get()
                                            on:click=move |_| {
                                                create.dispatch(CreateWorkflow { name: String::new(), template: name.clone(), definition: String::new() });
                                            }
                                        >
                                            <strong>{t.title}</strong>
                                            <span>{t.description}</span>
                                        </button>
                                    }
                                })
                                .collect_view()
                        })}
                    </Transition>
                </div>
                <details class="import">
                    <summary>"Import a workflow's JSON"</summary>
                    <textarea
                        rows="6"
                        data-testid="import-json"
                        placeholder="Paste an exported workflow here"
                        prop:value=move || import_text.get()
                        on:input=move |ev| import_text.set(event_target_value(&ev))
                    ></textarea>
                    <ErrorNote error=import_error />
                    <button class="small" data-testid="import" on:click=import>
                        "Import"
                    </button>
                </details>
            </section>
        </IfRole>
    }
}
