//! `/api/v1/metrics/…` and `/api/v1/workflows/{id}/funnel`: the dashboards'
//! figures, thin adapters over `app::service::metrics`.

use super::api::{ApiActor, Json};
use super::error::{ApiResult, ErrorBody};
use crate::AppState;
use app::model::{Funnel, MetricsSummary, TimeSeries};
use app::service::metrics;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/metrics/summary", get(summary))
        .route("/metrics/timeseries", get(timeseries))
        .route("/workflows/{workflow_id}/funnel", get(funnel))
}

type QueryResult<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SummaryParams {
    /// `1h`, `24h` (default), `7d` or `30d`.
    pub range: Option<String>,
    /// Only this workflow's figures.
    pub workflow: Option<String>,
}

/// Figures for a range and the one before it: events, runs started and
/// converted, offers issued and redeemed, alerts, conversion rate, event →
/// action p50/p95; open alerts, top event names and sources, offers by workflow.
#[utoipa::path(get, path = "/api/v1/metrics/summary", tag = "metrics", params(SummaryParams),
    responses((status = 200, body = MetricsSummary), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn summary(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    params: QueryResult<SummaryParams>,
) -> ApiResult<Json<MetricsSummary>> {
    let Query(p) = params?;
    let range = p.range.as_deref().unwrap_or("24h");
    let now = state.ctx.now();
    Ok(Json(metrics::summary(&state.ctx, &actor, range, p.workflow.as_deref(), now).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SeriesParams {
    /// `events`, `runs_started`, `runs_converted`, `runs_completed`,
    /// `offers_issued`, `offers_redeemed`, `alerts_raised` or `webhooks`.
    pub metric: String,
    /// `1h`, `24h` (default), `7d` or `30d`.
    pub range: Option<String>,
    /// Bucket width in ms (default: 1 min for 1h, 15 min for 24h, 2 h for 7d, 6 h for 30d).
    pub step: Option<i64>,
    pub workflow: Option<String>,
}

/// One counter over a range, every bucket present (zeros included).
#[utoipa::path(get, path = "/api/v1/metrics/timeseries", tag = "metrics", params(SeriesParams),
    responses((status = 200, body = TimeSeries), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn timeseries(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    params: QueryResult<SeriesParams>,
) -> ApiResult<Json<TimeSeries>> {
    let Query(p) = params?;
    let range = p.range.as_deref().unwrap_or("24h");
    let now = state.ctx.now();
    Ok(Json(metrics::timeseries(&state.ctx, &actor, &p.metric, range, p.step, p.workflow.as_deref(), now).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct FunnelParams {
    /// A published version (default: the running one).
    pub version: Option<i64>,
    /// `1h`, `24h` (default), `7d` or `30d`.
    pub range: Option<String>,
}

/// A workflow version's funnel: each node in path order with runs entered,
/// waiting there now and leaving by each output, and conversions.
#[utoipa::path(get, path = "/api/v1/workflows/{workflow_id}/funnel", tag = "metrics",
    params(("workflow_id" = String, Path, description = "The workflow's id"), FunnelParams),
    responses((status = 200, body = Funnel), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn funnel(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Path(workflow_id): Path<String>,
    params: QueryResult<FunnelParams>,
) -> ApiResult<Json<Funnel>> {
    let Query(p) = params?;
    let range = p.range.as_deref().unwrap_or("24h");
    let now = state.ctx.now();
    Ok(Json(metrics::funnel(&state.ctx, &actor, &workflow_id, p.version, range, now).await?))
}
