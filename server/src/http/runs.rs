//! `/api/v1/runs`, `/api/v1/actions`, `/api/v1/offers` and `/api/v1/alerts`:
//! thin adapters over `app::service::runs`.

use super::api::{ApiActor, Json};
use super::error::{ApiResult, ErrorBody};
use crate::AppState;
use app::model::{Alert, Offer, Page, Run, RunAction, RunDetail};
use app::service::runs::{self, AlertFilter, OfferFilter, RunFilter};
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/runs", get(list_runs))
        .route("/runs/{run_id}", get(get_run))
        .route("/actions/{action_key}/retry", post(retry_action))
        .route("/offers", get(list_offers))
        .route("/offers/{code}", get(get_offer))
        .route("/offers/{code}/redeem", post(redeem_offer))
        .route("/alerts", get(list_alerts))
        .route("/alerts/{alert_id}/ack", post(acknowledge_alert))
        .route("/alerts/{alert_id}/resolve", post(resolve_alert))
}

type QueryResult<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;
type PathResult<T> = Result<Path<T>, axum::extract::rejection::PathRejection>;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RunParams {
    /// A workflow id.
    pub workflow: Option<String>,
    /// `waiting` (or `running`), `completed`, `converted`, `failed` or `cancelled`.
    pub status: Option<String>,
    /// A customer id.
    pub customer: Option<String>,
    /// `failing`: runs with a webhook that failed (for good, or an attempt and is
    /// retrying); `pending`: runs with a webhook not delivered yet.
    pub actions: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Runs, newest first, each with its webhooks' health (any role).
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(RunParams),
    responses((status = 200, body = Page<Run>), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_runs(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    params: QueryResult<RunParams>,
) -> ApiResult<Json<Page<Run>>> {
    let Query(p) = params?;
    let filter = RunFilter { workflow: p.workflow, status: p.status, customer: p.customer, actions: p.actions };
    Ok(Json(runs::list_runs(&state.ctx, &actor, &filter, p.cursor.as_deref(), p.limit).await?))
}

/// One run with its step trace and actions (any role).
#[utoipa::path(get, path = "/api/v1/runs/{run_id}", tag = "runs",
    params(("run_id" = String, Path, description = "The run's id")),
    responses((status = 200, body = RunDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_run(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    path: PathResult<String>,
) -> ApiResult<Json<RunDetail>> {
    let Path(id) = path?;
    Ok(Json(runs::get_run(&state.ctx, &actor, &id).await?))
}

/// Queues a failed webhook again (editor): due now, with a new round of
/// attempts and the same `Idempotency-Key`. 409 when the action is not a
/// failed webhook (still pending, delivered, or not a webhook).
#[utoipa::path(post, path = "/api/v1/actions/{action_key}/retry", tag = "runs",
    params(("action_key" = String, Path, description = "The action's key, `<run id>:<node>`")),
    responses((status = 200, body = RunAction), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn retry_action(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    path: PathResult<String>,
) -> ApiResult<Json<RunAction>> {
    let Path(key) = path?;
    Ok(Json(runs::retry_action(&state.ctx, &actor, &key, app::store::now_ms()).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct OfferParams {
    /// `active`, `redeemed` or `expired`.
    pub status: Option<String>,
    pub customer: Option<String>,
    pub workflow: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Issued offers, newest first (any role).
#[utoipa::path(get, path = "/api/v1/offers", tag = "offers", params(OfferParams),
    responses((status = 200, body = Page<Offer>), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_offers(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    params: QueryResult<OfferParams>,
) -> ApiResult<Json<Page<Offer>>> {
    let Query(p) = params?;
    let filter = OfferFilter { status: p.status, customer: p.customer, workflow: p.workflow };
    Ok(Json(runs::list_offers(&state.ctx, &actor, &filter, p.cursor.as_deref(), p.limit).await?))
}

/// One offer by its code, any case (any role).
#[utoipa::path(get, path = "/api/v1/offers/{code}", tag = "offers",
    params(("code" = String, Path, description = "The discount code")),
    responses((status = 200, body = Offer), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_offer(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    path: PathResult<String>,
) -> ApiResult<Json<Offer>> {
    let Path(code) = path?;
    Ok(Json(runs::get_offer(&state.ctx, &actor, &code).await?))
}

/// Redeems a code, once (editor): 409 with the reason when it is used or expired.
#[utoipa::path(post, path = "/api/v1/offers/{code}/redeem", tag = "offers",
    params(("code" = String, Path, description = "The discount code")),
    responses((status = 200, body = Offer), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn redeem_offer(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    path: PathResult<String>,
) -> ApiResult<Json<Offer>> {
    let Path(code) = path?;
    Ok(Json(runs::redeem_offer(&state.ctx, &actor, &code, app::store::now_ms()).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AlertParams {
    /// `open`, `acknowledged` or `resolved`.
    pub status: Option<String>,
    /// `info`, `warning` or `critical`.
    pub severity: Option<String>,
    pub customer: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The alert inbox, newest first (any role).
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertParams),
    responses((status = 200, body = Page<Alert>), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_alerts(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    params: QueryResult<AlertParams>,
) -> ApiResult<Json<Page<Alert>>> {
    let Query(p) = params?;
    let filter = AlertFilter { status: p.status, severity: p.severity, customer: p.customer };
    Ok(Json(runs::list_alerts(&state.ctx, &actor, &filter, p.cursor.as_deref(), p.limit).await?))
}

/// Acknowledges an open alert (editor), recording who and when.
#[utoipa::path(post, path = "/api/v1/alerts/{alert_id}/ack", tag = "alerts",
    params(("alert_id" = String, Path, description = "The alert's id")),
    responses((status = 200, body = Alert), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn acknowledge_alert(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    path: PathResult<String>,
) -> ApiResult<Json<Alert>> {
    let Path(id) = path?;
    Ok(Json(runs::acknowledge_alert(&state.ctx, &actor, &id).await?))
}

/// Resolves an alert (editor), recording who and when.
#[utoipa::path(post, path = "/api/v1/alerts/{alert_id}/resolve", tag = "alerts",
    params(("alert_id" = String, Path, description = "The alert's id")),
    responses((status = 200, body = Alert), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn resolve_alert(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    path: PathResult<String>,
) -> ApiResult<Json<Alert>> {
    let Path(id) = path?;
    Ok(Json(runs::resolve_alert(&state.ctx, &actor, &id).await?))
}
