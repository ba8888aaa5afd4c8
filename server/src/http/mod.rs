//! HTTP adapters: the REST API, health, metrics, OpenAPI and the security middleware.

pub mod api;
pub mod dashboard;
pub mod error;
pub mod guard;
pub mod health;
pub mod hooks;
pub mod listen;
pub mod metrics;
pub mod openapi;
pub mod runs;
pub mod stream;
pub mod workflows;

use crate::AppState;
use app::App;
use axum::http::{HeaderName, Request};
use axum::{middleware, Router};
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::time::Duration;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application as one axum `Router`; tests drive it without a socket.
pub fn router(state: AppState) -> Router {
    let ctx = state.ctx.clone();
    let leptos_options = state.leptos.clone();
    let routes = generate_route_list(App);

    let sessions = SessionManagerLayer::new(app::store::sessions::DbSessionStore::new(state.ctx.db.clone()))
        .with_name("nudge_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.settings.secure_cookies)
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(i64::from(state.settings.session_ttl_hours))));

    Router::new()
        .merge(health::routes())
        .merge(openapi::routes())
        .merge(hooks::routes())
        .nest("/api/v1", api::routes())
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(ctx.clone()),
            move || app::shell(leptos_options.clone()),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), metrics::track))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(app::shell))
        .layer(middleware::from_fn_with_state(state.clone(), guard::pages))
        .layer(middleware::from_fn_with_state(state.clone(), guard::csrf))
        .layer(sessions)
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                .on_response(
                    tower_http::trace::DefaultOnResponse::new()
                        .level(tracing::Level::DEBUG)
                        .latency_unit(tower_http::LatencyUnit::Micros),
                ),
        )
        // gzip/brotli for pages and the wasm bundle; event streams are left alone.
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(60),
        ))
        .with_state(state)
}
