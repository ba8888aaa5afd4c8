//! Glue between server fns and the service layer: the shared `Ctx`, the
//! tower-sessions session, and the logged-in actor.

use crate::error::{AppError, AppResult};
use crate::service::{auth, Actor, Ctx};
use leptos::prelude::use_context;
use tower_sessions::Session;

/// Session key holding the logged-in user's id.
pub const SESSION_USER_KEY: &str = "user_id";

pub fn ctx() -> AppResult<Ctx> {
    use_context::<Ctx>().ok_or_else(|| {
        tracing::error!("Service context missing from the server-fn context.");
        AppError::Internal
    })
}

pub async fn session() -> AppResult<Session> {
    leptos_axum::extract::<Session>().await.map_err(|err| {
        tracing::error!(error = %err, "Session layer missing.");
        AppError::Internal
    })
}

pub fn session_error(err: tower_sessions::session::Error) -> AppError {
    tracing::error!(error = %err, "Session store failed.");
    AppError::Internal
}

/// The logged-in actor, if any.
pub async fn current_actor() -> AppResult<Option<Actor>> {
    let ctx = ctx()?;
    let session = session().await?;
    let user_id: Option<String> = session.get(SESSION_USER_KEY).await.map_err(session_error)?;
    match user_id {
        Some(id) => auth::actor_for_user(&ctx, &id).await,
        None => Ok(None),
    }
}

/// The logged-in actor, or 401.
pub async fn actor() -> AppResult<Actor> {
    current_actor().await?.ok_or_else(|| AppError::Unauthorized("Your session has ended; log in again.".into()))
}

/// Starts a fresh session for `user_id` (a new id, against fixation).
pub async fn start_session(user_id: &str) -> AppResult<()> {
    let session = session().await?;
    session.cycle_id().await.map_err(session_error)?;
    session.insert(SESSION_USER_KEY, user_id).await.map_err(session_error)?;
    Ok(())
}

/// The client's IP address, for login throttling.
pub async fn client_address() -> Option<String> {
    use axum::extract::ConnectInfo;
    use std::net::SocketAddr;
    leptos_axum::extract::<ConnectInfo<SocketAddr>>().await.ok().map(|ConnectInfo(addr)| addr.ip().to_string())
}

/// Runs a server fn body and gives its error the HTTP status it deserves
/// (401, 403, 422, …) instead of the default 500, so logs and proxies see
/// failures for what they are.
pub async fn respond<T>(body: impl std::future::Future<Output = AppResult<T>>) -> AppResult<T> {
    let result = body.await;
    if let Err(err) = &result {
        if let (Some(opts), Ok(status)) =
            (use_context::<leptos_axum::ResponseOptions>(), axum::http::StatusCode::from_u16(err.status()))
        {
            opts.set_status(status);
        }
        if let AppError::TooManyRequests { retry_after_secs, .. } = err {
            if let (Some(opts), Ok(v)) = (
                use_context::<leptos_axum::ResponseOptions>(),
                axum::http::HeaderValue::from_str(&retry_after_secs.to_string()),
            ) {
                opts.insert_header(axum::http::header::RETRY_AFTER, v);
            }
        }
    }
    result
}
