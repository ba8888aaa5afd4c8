//! Helpers shared by the HTTP integration tests: a router without a socket,
//! requests with an API key or a session cookie, and decoded replies.

#![allow(dead_code, clippy::unwrap_used)] // Each test binary uses a subset; a panic is the failure report.

use app::model::Role;
use app::service::{self, Actor, Ctx};
use app::store::Db;
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use server::{AppState, Settings};
use tower::ServiceExt;

pub fn app(db: &Db) -> Router {
    router(&Ctx::new(db.clone()))
}

/// The router over a given context (tests that also run the executor share it).
pub fn router(ctx: &Ctx) -> Router {
    let opts = leptos::config::LeptosOptions::builder().output_name("nudge").site_root("target/site").build();
    server::router(AppState::new(ctx.clone(), opts, Settings::default()))
}

/// A webhook request signed with `secret` now.
pub fn hook(slug: &str, secret: &str, body: &str) -> Request<Body> {
    let sig = app::service::signature::header_value(secret, app::store::now_ms() / 1000, body.as_bytes());
    Request::post(format!("/hooks/{slug}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("nudge-signature", sig)
        .body(Body::from(body.to_string()))
        .unwrap()
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub async fn send(app: &Router, req: Request<Body>) -> Reply {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Reply { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

/// An `/api/v1` call with a bearer key (or a `Cookie` value when `auth` contains `=`).
pub async fn api(app: &Router, method: Method, uri: &str, auth: &str, body: Option<Value>) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if auth.contains('=') {
        req = req.header(header::COOKIE, auth);
    } else if !auth.is_empty() {
        req = req.header(header::AUTHORIZATION, format!("Bearer {auth}"));
    }
    let req = match body {
        Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    };
    send(app, req.unwrap()).await
}

/// A new API key's secret.
pub async fn key(db: &Db, role: Role) -> String {
    let ctx = Ctx::new(db.clone());
    service::api_keys::create(&ctx, &Actor::system(), &format!("{role} key"), role).await.unwrap().secret
}

/// Reads the stream until `needle` appears (or gives up after 5 s).
pub async fn read_until(body: &mut Body, needle: &str) -> String {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !seen.contains(needle) {
        let frame = tokio::time::timeout_at(deadline, body.frame()).await.expect("the stream delivers in time");
        let frame = frame.expect("the stream is open").unwrap();
        if let Ok(data) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
        }
    }
    seen
}
