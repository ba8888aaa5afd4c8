//! `POST /hooks/{slug}`: the inbound webhook. Thin: read the body within the
//! limit, hand it to `service::ingest::receive`, answer with its outcome.

use super::error::{ApiError, ErrorBody};
use crate::AppState;
use app::service::ingest::{self, BatchResult, HookOutcome, ItemResult};
use app::service::signature;
use axum::body::{to_bytes, Body};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

pub fn routes() -> Router<AppState> {
    Router::new().route("/hooks/{slug}", post(receive))
}

/// Receives one event (a JSON object) or a batch (an array).
///
/// Sign each request: `Nudge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
/// A single event answers 202 (accepted) or 200 (duplicate of an accepted event id);
/// a batch answers 202 with each item's outcome.
#[utoipa::path(post, path = "/hooks/{slug}", tag = "webhooks",
    params(
        ("slug" = String, Path, description = "The source's slug"),
        ("Nudge-Signature" = String, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.<raw body>\")>; several v1 allowed"),
    ),
    request_body(content = Object, content_type = "application/json", description = "One event object, or an array of up to 500"),
    responses(
        (status = 202, description = "Accepted (single event) or batch outcome", body = BatchResult),
        (status = 200, description = "Duplicate of an already accepted event id", body = ItemResult),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody),
    ),
    security(()))]
pub async fn receive(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let limit = state.ctx.ingest_limits.max_body_bytes;
    let bytes = match to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("The body exceeds the limit of {limit} bytes."),
            )
            .into_response()
        }
    };
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let hook = ingest::Hook {
        slug: &slug,
        content_type: text(header::CONTENT_TYPE.as_str()),
        signature: text(signature::HEADER),
        body: &bytes,
    };
    match ingest::receive(&state.ctx, hook, app::store::now_ms()).await {
        Ok(HookOutcome::Single(one)) if one.status == "duplicate" => (StatusCode::OK, axum::Json(one)).into_response(),
        Ok(HookOutcome::Single(one)) => (StatusCode::ACCEPTED, axum::Json(one)).into_response(),
        Ok(HookOutcome::Batch(batch)) => (StatusCode::ACCEPTED, axum::Json(batch)).into_response(),
        Err(err) => ApiError::from(err).into_response(),
    }
}
