//! Request guards: CSRF protection for state-changing requests, and the
//! redirects that send a browser to set-up or login before any page.

use super::error::ApiError;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use tower_sessions::Session;

/// Refuses cookie-authenticated, state-changing requests that a browser made
/// from another site. Cookies are SameSite=Lax too; this is the second line.
pub async fn csrf(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) || req.uri().path().starts_with("/hooks/")
    {
        return next.run(req).await;
    }
    let headers = req.headers();
    let has_cookie = headers.contains_key(header::COOKIE);
    let has_bearer = headers.get(header::AUTHORIZATION).is_some();
    if has_bearer && !has_cookie {
        return next.run(req).await;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    let allowed = |origin: &str| {
        origin == format!("http://{host}")
            || origin == format!("https://{host}")
            || state.settings.public_origin.as_deref() == Some(origin)
    };
    let refused = if let Some(origin) = headers.get(header::ORIGIN) {
        !origin.to_str().is_ok_and(allowed)
    } else if let Some(site) = headers.get("sec-fetch-site") {
        // Browsers that omit Origin still say where the request came from.
        !matches!(site.to_str().unwrap_or_default(), "same-origin" | "none")
    } else {
        false
    };
    if refused {
        tracing::warn!(path = %req.uri().path(), host = %host, "Cross-site request refused.");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "Cross-site request refused: the Origin does not match this site.",
        )
        .into_response();
    }
    next.run(req).await
}

/// Paths that are not pages (API, assets, probes): the guard leaves them alone.
fn is_page(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or_default();
    !(path.starts_with("/api/")
        || path.starts_with("/pkg/")
        || path.starts_with("/hooks/")
        || matches!(path, "/healthz" | "/readyz" | "/metrics")
        || last.contains('.'))
}

/// Percent-encodes a path for the `next` query parameter.
fn encode(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Before set-up every page leads to `/setup`; after it, pages need a login.
pub async fn pages(State(state): State<AppState>, session: Session, req: Request, next: Next) -> Response {
    if req.method() != Method::GET || !is_page(req.uri().path()) {
        return next.run(req).await;
    }
    let path = req.uri().path().to_string();
    let needs_setup = match state.ctx.needs_setup().await {
        Ok(v) => v,
        // The page will show the failure; /readyz reports it too.
        Err(_) => return next.run(req).await,
    };
    if needs_setup {
        return if path == "/setup" { next.run(req).await } else { Redirect::to("/setup").into_response() };
    }
    let user_id: Option<String> = session.get(app::web::SESSION_USER_KEY).await.ok().flatten();
    let logged_in = match user_id {
        Some(id) => app::service::auth::actor_for_user(&state.ctx, &id).await.ok().flatten().is_some(),
        None => false,
    };
    match path.as_str() {
        "/setup" => Redirect::to(if logged_in { "/" } else { "/login" }).into_response(),
        "/login" if logged_in => Redirect::to("/").into_response(),
        "/login" => next.run(req).await,
        _ if !logged_in => {
            let target = match req.uri().path_and_query() {
                Some(pq) if pq.as_str() != "/" => format!("/login?next={}", encode(pq.as_str())),
                _ => "/login".to_string(),
            };
            Redirect::to(&target).into_response()
        }
        _ => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_page_paths_are_guarded() {
        assert!(is_page("/"));
        assert!(is_page("/settings"));
        assert!(is_page("/no/such/page"));
        assert!(!is_page("/api/v1/me"));
        assert!(!is_page("/pkg/nudge.wasm"));
        assert!(!is_page("/favicon.svg"));
        assert!(!is_page("/healthz"));
    }

    #[test]
    fn next_parameter_is_percent_encoded() {
        assert_eq!(encode("/settings?tab=keys&x=1"), "/settings%3Ftab%3Dkeys%26x%3D1");
    }
}
