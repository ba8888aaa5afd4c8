//! Workflows: drafts saved as the designer edits them, validation, publishing
//! immutable numbered versions, rollback, pause/resume, versions and diffs.
//! Viewers read; editors write.

use super::{paginate, Actor, Ctx};
use crate::error::{AppError, AppResult};
use crate::model::{Page, Role, WorkflowDetail, WorkflowStatus, WorkflowSummary, WorkflowVersion};
use crate::store::{self, page_limit, workflows::VersionRow, workflows::WorkflowRow};
use crate::workflow::diff::{diff as diff_workflows, Diff};
use crate::workflow::templates::{self, Template};
use crate::workflow::{validate as validate_workflow, Issue, Settings, Workflow, SCHEMA_VERSION};
use serde::{Deserialize, Serialize};

/// The most nodes a workflow may have; far above any real journey.
pub const MAX_NODES: usize = 500;

fn check_name(name: &str) -> AppResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::invalid("name", "Name the workflow in 1 to 100 characters, e.g. \"Abandoned cart\"."));
    }
    Ok(name.to_string())
}

/// Structural limits a draft must meet to be stored at all (validation issues
/// are allowed in drafts; they only block publishing).
fn check_definition(w: &Workflow) -> AppResult<String> {
    if w.schema_version == 0 || w.schema_version > SCHEMA_VERSION {
        return Err(AppError::invalid(
            "definition",
            format!("schema_version {} is not supported; this Nudge reads 1 to {SCHEMA_VERSION}.", w.schema_version),
        ));
    }
    if w.nodes.len() > MAX_NODES || w.edges.len() > MAX_NODES * 4 {
        return Err(AppError::invalid("definition", format!("A workflow has at most {MAX_NODES} nodes.")));
    }
    serde_json::to_string(w).map_err(|_| AppError::Internal)
}

fn parse(text: &str, what: &str) -> AppResult<Workflow> {
    serde_json::from_str(text).map_err(|e| {
        tracing::error!(error = %e, what, "Stored workflow JSON cannot be read.");
        AppError::Internal
    })
}

fn status(row: &WorkflowRow) -> WorkflowStatus {
    row.status.parse().unwrap_or(WorkflowStatus::Draft)
}

fn summary(row: &WorkflowRow) -> WorkflowSummary {
    WorkflowSummary {
        workflow_id: row.workflow_id.clone(),
        name: row.name.clone(),
        status: status(row),
        active_version: row.active_version,
        latest_version: row.latest_version,
        unpublished_changes: row.draft_changed != 0,
        created_by: row.created_by.clone(),
        created_at: row.created_at,
        updated_by: row.updated_by.clone(),
        updated_at: row.updated_at,
    }
}

fn detail(row: &WorkflowRow) -> AppResult<WorkflowDetail> {
    let draft = parse(&row.draft, "draft")?;
    let issues = validate_workflow(&draft);
    Ok(WorkflowDetail { summary: summary(row), draft, revision: row.revision, issues })
}

fn version_of(row: VersionRow) -> AppResult<WorkflowVersion> {
    Ok(WorkflowVersion {
        version: row.version,
        published_by: row.published_by,
        published_at: row.published_at,
        note: row.note,
        definition: parse(&row.definition, "version")?,
    })
}

async fn row(ctx: &Ctx, workflow_id: &str) -> AppResult<WorkflowRow> {
    store::workflows::find(&ctx.db, workflow_id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("No workflow '{workflow_id}'.")))
}

/// The row, if it may still be changed.
async fn editable(ctx: &Ctx, actor: &Actor, workflow_id: &str) -> AppResult<WorkflowRow> {
    actor.require(Role::Editor)?;
    let row = row(ctx, workflow_id).await?;
    if status(&row) == WorkflowStatus::Archived {
        return Err(AppError::Conflict(format!("'{}' is archived; duplicate it to work on it again.", row.name)));
    }
    Ok(row)
}

fn by(actor: &Actor) -> String {
    actor.me().name
}

/// An empty canvas: just the default settings.
pub fn blank() -> Workflow {
    Workflow { schema_version: SCHEMA_VERSION, nodes: Vec::new(), edges: Vec::new(), settings: Settings::default() }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewWorkflow {
    /// Defaults to the template's title, or "Untitled workflow".
    pub name: Option<String>,
    /// Start from a starter template (see `GET /api/v1/workflow-templates`)…
    pub template: Option<String>,
    /// …or from a workflow's JSON (an export); neither: an empty canvas.
    pub definition: Option<Workflow>,
}

pub async fn create(ctx: &Ctx, actor: &Actor, input: NewWorkflow) -> AppResult<WorkflowDetail> {
    actor.require(Role::Editor)?;
    let (definition, default_name) = match (input.template.as_deref(), input.definition) {
        (Some(_), Some(_)) => {
            return Err(AppError::invalid("template", "Give either a template or a definition, not both."));
        }
        (Some(name), None) => {
            let t = templates::template(name).ok_or_else(|| {
                let names: Vec<String> = templates::templates().into_iter().map(|t| t.name).collect();
                AppError::invalid("template", format!("No template '{name}'; there are {}.", names.join(", ")))
            })?;
            (t.workflow, t.title)
        }
        (None, Some(w)) => (w, "Imported workflow".to_string()),
        (None, None) => (blank(), "Untitled workflow".to_string()),
    };
    let name = check_name(input.name.as_deref().unwrap_or(&default_name))?;
    let draft = check_definition(&definition)?;
    let workflow_id = store::new_id();
    store::workflows::insert(&ctx.db, &workflow_id, &name, &draft, &by(actor)).await?;
    tracing::info!(workflow = %workflow_id, name = %name, "Workflow created.");
    detail(&row(ctx, &workflow_id).await?)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkflowFilter {
    /// One status; none means every status but archived.
    pub status: Option<WorkflowStatus>,
    /// Part of the name, any case.
    pub q: Option<String>,
}

pub async fn list(
    ctx: &Ctx,
    actor: &Actor,
    filter: &WorkflowFilter,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> AppResult<Page<WorkflowSummary>> {
    actor.require(Role::Viewer)?;
    let limit = page_limit(limit);
    let search = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let status = filter.status.map(WorkflowStatus::as_str);
    let rows = store::workflows::list(&ctx.db, status, search, cursor, limit + 1).await?;
    Ok(paginate(rows, limit, |r| r.workflow_id.clone(), summary))
}

pub async fn get(ctx: &Ctx, actor: &Actor, workflow_id: &str) -> AppResult<WorkflowDetail> {
    actor.require(Role::Viewer)?;
    detail(&row(ctx, workflow_id).await?)
}

/// A change to the draft; absent fields stay.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DraftUpdate {
    /// The revision the change was made on (from the last read or save).
    pub revision: i64,
    pub name: Option<String>,
    pub definition: Option<Workflow>,
}

pub async fn save_draft(ctx: &Ctx, actor: &Actor, workflow_id: &str, update: DraftUpdate) -> AppResult<WorkflowDetail> {
    let current = editable(ctx, actor, workflow_id).await?;
    let name = match &update.name {
        Some(n) => check_name(n)?,
        None => current.name.clone(),
    };
    let draft = match &update.definition {
        Some(w) => check_definition(w)?,
        None => current.draft.clone(),
    };
    let changed = match current.latest_version {
        0 => true,
        n => store::workflows::version(&ctx.db, workflow_id, n).await?.is_none_or(|v| v.definition != draft),
    };
    let saved =
        store::workflows::save_draft(&ctx.db, workflow_id, &name, &draft, changed, update.revision, &by(actor)).await?;
    if saved.is_none() {
        let latest = row(ctx, workflow_id).await?;
        return Err(AppError::Conflict(format!(
            "{} saved this workflow meanwhile (revision {}, yours is {}); reload to see their changes.",
            latest.updated_by, latest.revision, update.revision
        )));
    }
    detail(&row(ctx, workflow_id).await?)
}

pub async fn duplicate(ctx: &Ctx, actor: &Actor, workflow_id: &str) -> AppResult<WorkflowDetail> {
    actor.require(Role::Editor)?;
    let source = row(ctx, workflow_id).await?;
    let name: String = format!("Copy of {}", source.name).chars().take(100).collect();
    let copy = store::new_id();
    store::workflows::insert(&ctx.db, &copy, &name, &source.draft, &by(actor)).await?;
    tracing::info!(workflow = %copy, from = %workflow_id, "Workflow duplicated.");
    detail(&row(ctx, &copy).await?)
}

/// Archives: the workflow stops running and leaves the list; versions stay readable.
pub async fn archive(ctx: &Ctx, actor: &Actor, workflow_id: &str) -> AppResult<()> {
    let current = editable(ctx, actor, workflow_id).await?;
    let cancelled = ctx.engine.archive(&current.workflow_id, &by(actor)).await?;
    tracing::info!(workflow = %workflow_id, cancelled_runs = cancelled, "Workflow archived.");
    Ok(())
}

/// Problems of `definition`, or of the stored draft when none is given.
pub async fn validate(
    ctx: &Ctx,
    actor: &Actor,
    workflow_id: &str,
    definition: Option<Workflow>,
) -> AppResult<Vec<Issue>> {
    actor.require(Role::Viewer)?;
    let current = row(ctx, workflow_id).await?;
    let w = match definition {
        Some(w) => w,
        None => parse(&current.draft, "draft")?,
    };
    Ok(validate_workflow(&w))
}

fn not_publishable(issues: Vec<Issue>) -> AppError {
    let n = issues.len();
    let first = issues.first().map(|i| i.message.clone()).unwrap_or_default();
    let detail = if n == 1 {
        format!("1 problem blocks publishing: {first}.")
    } else {
        format!("{n} problems block publishing; the first: {first}.")
    };
    AppError::NotPublishable { detail, issues }
}

/// Publishes `definition`; `rollback` also makes it the draft.
async fn publish_definition(
    ctx: &Ctx,
    actor: &Actor,
    current: &WorkflowRow,
    definition: &Workflow,
    note: Option<&str>,
    rollback: bool,
) -> AppResult<WorkflowDetail> {
    let issues = validate_workflow(definition);
    if !issues.is_empty() {
        return Err(not_publishable(issues));
    }
    let text = check_definition(definition)?;
    let version = current.latest_version + 1;
    let next_status = match status(current) {
        WorkflowStatus::Paused => WorkflowStatus::Paused,
        _ => WorkflowStatus::Active,
    };
    let published = store::workflows::publish(
        &ctx.db,
        &current.workflow_id,
        current.revision,
        version,
        &text,
        rollback.then_some(text.as_str()),
        next_status.as_str(),
        note,
        &by(actor),
    )
    .await
    .map_err(|e| match AppError::from(e) {
        AppError::Conflict(_) => AppError::Conflict("Someone published this workflow at the same moment.".into()),
        other => other,
    })?;
    if !published {
        return Err(AppError::Conflict(
            "The draft was saved again while publishing; publish once more to include that change.".into(),
        ));
    }
    ctx.signals.workflows_changed();
    tracing::info!(workflow = %current.workflow_id, version, "Workflow published.");
    detail(&row(ctx, &current.workflow_id).await?)
}

/// Publishes the draft as the next version; 409 with the issues when it is not valid.
pub async fn publish(ctx: &Ctx, actor: &Actor, workflow_id: &str) -> AppResult<WorkflowDetail> {
    let current = editable(ctx, actor, workflow_id).await?;
    let draft = parse(&current.draft, "draft")?;
    publish_definition(ctx, actor, &current, &draft, None, false).await
}

/// Publishes an old version's definition as the next version (and the draft).
pub async fn rollback(ctx: &Ctx, actor: &Actor, workflow_id: &str, version: i64) -> AppResult<WorkflowDetail> {
    let current = editable(ctx, actor, workflow_id).await?;
    let old = store::workflows::version(&ctx.db, workflow_id, version)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("This workflow has no version {version}.")))?;
    let definition = parse(&old.definition, "version")?;
    let note = format!("Rolled back to version {version}");
    publish_definition(ctx, actor, &current, &definition, Some(&note), true).await
}

pub async fn pause(ctx: &Ctx, actor: &Actor, workflow_id: &str) -> AppResult<WorkflowDetail> {
    let current = editable(ctx, actor, workflow_id).await?;
    if status(&current) != WorkflowStatus::Active {
        return Err(AppError::Conflict(format!(
            "Only an active workflow can be paused; this one is {}.",
            current.status
        )));
    }
    store::workflows::set_status(&ctx.db, workflow_id, WorkflowStatus::Paused.as_str(), &by(actor)).await?;
    ctx.signals.workflows_changed();
    tracing::info!(workflow = %workflow_id, "Workflow paused.");
    detail(&row(ctx, workflow_id).await?)
}

pub async fn resume(ctx: &Ctx, actor: &Actor, workflow_id: &str) -> AppResult<WorkflowDetail> {
    let current = editable(ctx, actor, workflow_id).await?;
    if status(&current) != WorkflowStatus::Paused {
        return Err(AppError::Conflict(format!(
            "Only a paused workflow can be resumed; this one is {}.",
            current.status
        )));
    }
    store::workflows::set_status(&ctx.db, workflow_id, WorkflowStatus::Active.as_str(), &by(actor)).await?;
    ctx.signals.workflows_changed();
    tracing::info!(workflow = %workflow_id, "Workflow resumed.");
    detail(&row(ctx, workflow_id).await?)
}

pub async fn versions(ctx: &Ctx, actor: &Actor, workflow_id: &str) -> AppResult<Vec<WorkflowVersion>> {
    actor.require(Role::Viewer)?;
    row(ctx, workflow_id).await?;
    store::workflows::versions(&ctx.db, workflow_id).await?.into_iter().map(version_of).collect()
}

pub async fn version(ctx: &Ctx, actor: &Actor, workflow_id: &str, version: i64) -> AppResult<WorkflowVersion> {
    actor.require(Role::Viewer)?;
    row(ctx, workflow_id).await?;
    let found = store::workflows::version(&ctx.db, workflow_id, version)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("This workflow has no version {version}.")))?;
    version_of(found)
}

/// A side of a diff: a version number, or `draft`.
pub fn parse_side(text: &str) -> AppResult<Option<i64>> {
    match text.trim() {
        "draft" => Ok(None),
        n => n
            .parse::<i64>()
            .map(Some)
            .map_err(|_| AppError::invalid("version", format!("'{n}' is neither a version number nor 'draft'."))),
    }
}

async fn side(ctx: &Ctx, actor: &Actor, current: &WorkflowRow, v: Option<i64>) -> AppResult<Workflow> {
    match v {
        None => parse(&current.draft, "draft"),
        Some(n) => Ok(version(ctx, actor, &current.workflow_id, n).await?.definition),
    }
}

/// Node-level differences from one version (or the draft, `None`) to another.
pub async fn diff(ctx: &Ctx, actor: &Actor, workflow_id: &str, from: Option<i64>, to: Option<i64>) -> AppResult<Diff> {
    actor.require(Role::Viewer)?;
    let current = row(ctx, workflow_id).await?;
    let from = side(ctx, actor, &current, from).await?;
    let to = side(ctx, actor, &current, to).await?;
    Ok(diff_workflows(&from, &to))
}

pub fn list_templates() -> Vec<Template> {
    templates::templates()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Principal;
    use crate::store::testing;

    fn editor() -> Actor {
        Actor {
            principal: Principal::User { user_id: "u1".into(), email: "ed@example.com".into() },
            role: Role::Editor,
        }
    }

    fn viewer() -> Actor {
        Actor {
            principal: Principal::User { user_id: "u2".into(), email: "vi@example.com".into() },
            role: Role::Viewer,
        }
    }

    #[tokio::test]
    async fn drafts_publish_into_numbered_versions_with_diffs_and_rollback() {
        for db in testing::all().await {
            let ctx = Ctx::new(db);
            let (ed, vi) = (editor(), viewer());
            let blank = create(&ctx, &ed, NewWorkflow::default()).await.unwrap();
            assert_eq!(blank.summary.name, "Untitled workflow");
            assert_eq!(blank.summary.status, WorkflowStatus::Draft);
            let id = blank.summary.workflow_id.clone();
            let Err(AppError::NotPublishable { issues, .. }) = publish(&ctx, &ed, &id).await else {
                panic!("an empty workflow cannot be published");
            };
            assert!(issues.iter().any(|i| i.message.contains("trigger")));

            let cart = templates::abandoned_cart();
            let saved = save_draft(
                &ctx,
                &ed,
                &id,
                DraftUpdate {
                    revision: blank.revision,
                    name: Some("Cart rescue".into()),
                    definition: Some(cart.clone()),
                },
            )
            .await
            .unwrap();
            assert_eq!(saved.issues, vec![]);
            let stale = DraftUpdate { revision: blank.revision, name: None, definition: None };
            assert!(matches!(save_draft(&ctx, &ed, &id, stale).await, Err(AppError::Conflict(_))));

            let v1 = publish(&ctx, &ed, &id).await.unwrap();
            assert_eq!((v1.summary.status, v1.summary.active_version), (WorkflowStatus::Active, Some(1)));
            assert!(!v1.summary.unpublished_changes);

            let mut edited = cart.clone();
            edited.nodes.retain(|n| n.id != "reminder");
            edited.edges.retain(|e| e.from != "reminder");
            for e in edited.edges.iter_mut().filter(|e| e.to == "reminder") {
                e.to = crate::workflow::validate::END.into();
            }
            let saved =
                save_draft(&ctx, &ed, &id, DraftUpdate { revision: v1.revision, name: None, definition: Some(edited) })
                    .await
                    .unwrap();
            assert!(saved.summary.unpublished_changes);
            let d = diff(&ctx, &vi, &id, Some(1), None).await.unwrap();
            assert_eq!(d.nodes.len(), 2, "{d:?}");
            let v2 = publish(&ctx, &ed, &id).await.unwrap();
            assert_eq!(v2.summary.latest_version, 2);

            let back = rollback(&ctx, &ed, &id, 1).await.unwrap();
            assert_eq!((back.summary.latest_version, back.summary.active_version), (3, Some(3)));
            assert_eq!(back.draft, cart);
            let history = versions(&ctx, &vi, &id).await.unwrap();
            assert_eq!(history.iter().map(|v| v.version).collect::<Vec<_>>(), [3, 2, 1]);
            assert_eq!(history[0].note.as_deref(), Some("Rolled back to version 1"));
            assert_eq!(history[2].published_by, "ed@example.com");
            assert_eq!(version(&ctx, &vi, &id, 1).await.unwrap().definition, cart);
            assert_eq!(diff(&ctx, &vi, &id, Some(1), Some(3)).await.unwrap(), Diff::default());

            let paused = pause(&ctx, &ed, &id).await.unwrap();
            assert_eq!(paused.summary.status, WorkflowStatus::Paused);
            assert!(matches!(pause(&ctx, &ed, &id).await, Err(AppError::Conflict(_))));
            assert_eq!(resume(&ctx, &ed, &id).await.unwrap().summary.status, WorkflowStatus::Active);

            // A publish that read an older revision than the stored one changes nothing.
            let row = store::workflows::find(&ctx.db, &id).await.unwrap().unwrap();
            let stale =
                store::workflows::publish(&ctx.db, &id, row.revision - 1, 4, &row.draft, None, "active", None, "x")
                    .await
                    .unwrap();
            assert!(!stale);
            assert!(store::workflows::version(&ctx.db, &id, 4).await.unwrap().is_none(), "rolled back");

            assert!(matches!(publish(&ctx, &vi, &id).await, Err(AppError::Forbidden(_))));
            assert!(matches!(
                save_draft(&ctx, &vi, &id, DraftUpdate { revision: 99, name: None, definition: None }).await,
                Err(AppError::Forbidden(_))
            ));
        }
    }

    #[tokio::test]
    async fn templates_list_search_duplicate_and_archive() {
        for db in testing::all().await {
            let ctx = Ctx::new(db);
            let ed = editor();
            let input = |t: &str| NewWorkflow { template: Some(t.into()), ..Default::default() };
            let a = create(&ctx, &ed, input("abandoned_cart")).await.unwrap();
            let h = create(&ctx, &ed, input("high_value_transaction")).await.unwrap();
            assert_eq!(a.summary.name, "Abandoned cart rescue");
            assert!(matches!(
                create(&ctx, &ed, input("nope")).await,
                Err(AppError::Invalid { field: Some(f), detail }) if f == "template" && detail.contains("low_inventory")
            ));
            let future = Workflow { schema_version: 99, ..blank() };
            assert!(matches!(
                create(&ctx, &ed, NewWorkflow { definition: Some(future), ..Default::default() }).await,
                Err(AppError::Invalid { .. })
            ));

            let copy = duplicate(&ctx, &ed, &a.summary.workflow_id).await.unwrap();
            assert_eq!(copy.summary.name, "Copy of Abandoned cart rescue");
            assert_eq!(copy.draft, a.draft);

            let all = list(&ctx, &viewer(), &WorkflowFilter::default(), None, None).await.unwrap();
            assert_eq!(all.items.len(), 3);
            assert_eq!(all.items[0].workflow_id, copy.summary.workflow_id, "newest first");
            let found = list(&ctx, &viewer(), &WorkflowFilter { q: Some("CART".into()), status: None }, None, None)
                .await
                .unwrap();
            assert_eq!(found.items.len(), 2);

            archive(&ctx, &ed, &h.summary.workflow_id).await.unwrap();
            let left = list(&ctx, &viewer(), &WorkflowFilter::default(), None, Some(1)).await.unwrap();
            assert_eq!(left.items.len(), 1);
            let rest =
                list(&ctx, &viewer(), &WorkflowFilter::default(), left.next_cursor.as_deref(), Some(5)).await.unwrap();
            assert_eq!(rest.items.len(), 1, "the archived one is hidden");
            let archived = WorkflowFilter { status: Some(WorkflowStatus::Archived), q: None };
            assert_eq!(list(&ctx, &viewer(), &archived, None, None).await.unwrap().items.len(), 1);
            assert!(matches!(publish(&ctx, &ed, &h.summary.workflow_id).await, Err(AppError::Conflict(_))));
            assert!(matches!(get(&ctx, &ed, "missing").await, Err(AppError::NotFound(_))));
        }
    }
}
