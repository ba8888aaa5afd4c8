//! `/api/v1/workflows` and `/api/v1/workflow-templates`: thin adapters over
//! `app::service::workflows`.

use super::api::{ApiActor, Json};
use super::error::{ApiError, ApiResult, ErrorBody};
use crate::AppState;
use app::model::{Page, WorkflowDetail, WorkflowStatus, WorkflowSummary, WorkflowVersion};
use app::service::workflows::{self, DraftUpdate, NewWorkflow, WorkflowFilter};
use app::workflow::diff::Diff;
use app::workflow::templates::Template;
use app::workflow::{Issue, Workflow};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/workflows", get(list_workflows).post(create_workflow))
        .route("/workflows/{id}", get(get_workflow).put(update_workflow).delete(archive_workflow))
        .route("/workflows/{id}/duplicate", post(duplicate_workflow))
        .route("/workflows/{id}/validate", post(validate_workflow))
        .route("/workflows/{id}/publish", post(publish_workflow))
        .route("/workflows/{id}/pause", post(pause_workflow))
        .route("/workflows/{id}/resume", post(resume_workflow))
        .route("/workflows/{id}/versions", get(list_versions))
        .route("/workflows/{id}/versions/{version}", get(get_version))
        .route("/workflows/{id}/versions/{version}/rollback", post(rollback_workflow))
        .route("/workflows/{id}/diff", get(diff_workflow))
        .route("/workflow-templates", get(list_templates))
}

type QueryResult<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;
type PathResult<T> = Result<Path<T>, axum::extract::rejection::PathRejection>;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListParams {
    /// `draft`, `active`, `paused` or `archived`; default: all but archived.
    pub status: Option<WorkflowStatus>,
    /// Part of the name, any case.
    pub q: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Workflows, newest first (any role).
#[utoipa::path(get, path = "/api/v1/workflows", tag = "workflows", params(ListParams),
    responses((status = 200, body = Page<WorkflowSummary>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_workflows(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    params: QueryResult<ListParams>,
) -> ApiResult<Json<Page<WorkflowSummary>>> {
    let Query(p) = params?;
    let filter = WorkflowFilter { status: p.status, q: p.q };
    Ok(Json(workflows::list(&state.ctx, &actor, &filter, p.cursor.as_deref(), p.limit).await?))
}

/// Creates a draft (editor): empty, from a template name, or from a workflow's JSON (an import).
#[utoipa::path(post, path = "/api/v1/workflows", tag = "workflows", request_body = NewWorkflow,
    responses((status = 201, body = WorkflowDetail), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn create_workflow(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Json(body): Json<NewWorkflow>,
) -> ApiResult<(StatusCode, Json<WorkflowDetail>)> {
    Ok((StatusCode::CREATED, Json(workflows::create(&state.ctx, &actor, body).await?)))
}

/// One workflow with its draft and the draft's validation issues (any role).
#[utoipa::path(get, path = "/api/v1/workflows/{id}", tag = "workflows",
    params(("id" = String, Path, description = "The workflow's id")),
    responses((status = 200, body = WorkflowDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_workflow(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    path: PathResult<String>,
) -> ApiResult<Json<WorkflowDetail>> {
    let Path(id) = path?;
    Ok(Json(workflows::get(&state.ctx, &actor, &id).await?))
}

/// Saves the draft (editor). Send the `revision` you read; a stale one gets 409.
#[utoipa::path(put, path = "/api/v1/workflows/{id}", tag = "workflows", request_body = DraftUpdate,
    params(("id" = String, Path, description = "The workflow's id")),
    responses((status = 200, body = WorkflowDetail), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_workflow(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    path: PathResult<String>,
    Json(body): Json<DraftUpdate>,
) -> ApiResult<Json<WorkflowDetail>> {
    let Path(id) = path?;
    Ok(Json(workflows::save_draft(&state.ctx, &actor, &id, body).await?))
}

/// Archives the workflow (editor): it stops running and leaves the list, its waiting runs are cancelled (status `cancelled`, the reason in each trace); its versions stay readable.
#[utoipa::path(delete, path = "/api/v1/workflows/{id}", tag = "workflows",
    params(("id" = String, Path, description = "The workflow's id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn archive_workflow(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    path: PathResult<String>,
) -> ApiResult<StatusCode> {
    let Path(id) = path?;
    workflows::archive(&state.ctx, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Copies the draft into a new workflow named "Copy of …" (editor).
#[utoipa::path(post, path = "/api/v1/workflows/{id}/duplicate", tag = "workflows",
    params(("id" = String, Path, description = "The workflow's id")),
    responses((status = 201, body = WorkflowDetail), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn duplicate_workflow(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    path: PathResult<String>,
) -> ApiResult<(StatusCode, Json<WorkflowDetail>)> {
    let Path(id) = path?;
    Ok((StatusCode::CREATED, Json(workflows::duplicate(&state.ctx, &actor, &id).await?)))
}

/// Node-level validation of a workflow JSON in the body, or of the stored draft when the body is empty (any role).
#[utoipa::path(post, path = "/api/v1/workflows/{id}/validate", tag = "workflows",
    request_body(content = Option<Workflow>, description = "A workflow to check instead of the stored draft"),
    params(("id" = String, Path, description = "The workflow's id")),
    responses((status = 200, body = Vec<Issue>, description = "Empty when the workflow can be published"),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn validate_workflow(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    path: PathResult<String>,
    body: Bytes,
) -> ApiResult<Json<Vec<Issue>>> {
    let Path(id) = path?;
    let definition = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let parsed: Workflow = serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", format!("The workflow JSON: {e}"))
        })?;
        Some(parsed)
    };
    Ok(Json(workflows::validate(&state.ctx, &actor, &id, definition).await?))
}

/// Publishes the draft as the next numbered version (editor); 409 `invalid_workflow` with `issues` when it is not valid.
#[utoipa::path(post, path = "/api/v1/workflows/{id}/publish", tag = "workflows",
    params(("id" = String, Path, description = "The workflow's id")),
    responses((status = 200, body = WorkflowDetail), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn publish_workflow(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    path: PathResult<String>,
) -> ApiResult<Json<WorkflowDetail>> {
    let Path(id) = path?;
    Ok(Json(workflows::publish(&state.ctx, &actor, &id).await?))
}

/// Stops an active workflow from starting or advancing runs (editor).
#[utoipa::path(post, path = "/api/v1/workflows/{id}/pause", tag = "workflows",
    params(("id" = String, Path, description = "The workflow's id")),
    responses((status = 200, body = WorkflowDetail), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn pause_workflow(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    path: PathResult<String>,
) -> ApiResult<Json<WorkflowDetail>> {
    let Path(id) = path?;
    Ok(Json(workflows::pause(&state.ctx, &actor, &id).await?))
}

/// Makes a paused workflow active again (editor).
#[utoipa::path(post, path = "/api/v1/workflows/{id}/resume", tag = "workflows",
    params(("id" = String, Path, description = "The workflow's id")),
    responses((status = 200, body = WorkflowDetail), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn resume_workflow(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    path: PathResult<String>,
) -> ApiResult<Json<WorkflowDetail>> {
    let Path(id) = path?;
    Ok(Json(workflows::resume(&state.ctx, &actor, &id).await?))
}

/// Published versions, newest first, with author, time and definition (any role).
#[utoipa::path(get, path = "/api/v1/workflows/{id}/versions", tag = "workflows",
    params(("id" = String, Path, description = "The workflow's id")),
    responses((status = 200, body = Vec<WorkflowVersion>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_versions(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    path: PathResult<String>,
) -> ApiResult<Json<Vec<WorkflowVersion>>> {
    let Path(id) = path?;
    Ok(Json(workflows::versions(&state.ctx, &actor, &id).await?))
}

/// One published version (any role).
#[utoipa::path(get, path = "/api/v1/workflows/{id}/versions/{version}", tag = "workflows",
    params(("id" = String, Path, description = "The workflow's id"), ("version" = i64, Path, description = "The version number")),
    responses((status = 200, body = WorkflowVersion), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn get_version(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    path: PathResult<(String, i64)>,
) -> ApiResult<Json<WorkflowVersion>> {
    let Path((id, version)) = path?;
    Ok(Json(workflows::version(&state.ctx, &actor, &id, version).await?))
}

/// Publishes an old version again as the next version, and makes it the draft (editor).
#[utoipa::path(post, path = "/api/v1/workflows/{id}/versions/{version}/rollback", tag = "workflows",
    params(("id" = String, Path, description = "The workflow's id"), ("version" = i64, Path, description = "The version to restore")),
    responses((status = 200, body = WorkflowDetail), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn rollback_workflow(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    path: PathResult<(String, i64)>,
) -> ApiResult<Json<WorkflowDetail>> {
    let Path((id, version)) = path?;
    Ok(Json(workflows::rollback(&state.ctx, &actor, &id, version).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DiffParams {
    /// A version number, or `draft`.
    pub from: String,
    /// A version number, or `draft` (the default).
    pub to: Option<String>,
}

/// Nodes added, removed or changed between two versions (or a version and the draft) (any role).
#[utoipa::path(get, path = "/api/v1/workflows/{id}/diff", tag = "workflows", params(("id" = String, Path, description = "The workflow's id"), DiffParams),
    responses((status = 200, body = Diff), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn diff_workflow(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    path: PathResult<String>,
    params: QueryResult<DiffParams>,
) -> ApiResult<Json<Diff>> {
    let Path(id) = path?;
    let Query(p) = params?;
    let from = workflows::parse_side(&p.from)?;
    let to = workflows::parse_side(p.to.as_deref().unwrap_or("draft"))?;
    Ok(Json(workflows::diff(&state.ctx, &actor, &id, from, to).await?))
}

/// Starter workflows to create from by name (any role).
#[utoipa::path(get, path = "/api/v1/workflow-templates", tag = "workflows",
    responses((status = 200, body = Vec<Template>), (status = 401, body = ErrorBody)))]
pub async fn list_templates(ApiActor(_actor): ApiActor) -> Json<Vec<Template>> {
    Json(workflows::list_templates())
}
