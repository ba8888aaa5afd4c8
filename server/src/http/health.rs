//! Liveness, readiness and Prometheus metrics.

use crate::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

/// The process is alive.
async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// The database answers.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.ctx.db.ping().await {
        Ok(()) => {
            (StatusCode::OK, axum::Json(serde_json::json!({ "status": "ready", "database": state.ctx.db.backend() })))
        }
        Err(err) => {
            tracing::warn!(error = %err, "Readiness check failed: database unreachable.");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({ "error": "not_ready", "detail": "The database is unreachable." })),
            )
        }
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.metrics.render();
    match app::store::runs::gauges(&state.ctx.db, app::store::now_ms()).await {
        Ok(gauges) => text.push_str(&state.metrics.render_executor(&state.ctx.engine.counters.snapshot(), &gauges)),
        Err(err) => tracing::warn!(error = %err, "Reading executor gauges failed."),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
