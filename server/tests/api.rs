//! The HTTP surface, driven through `router(state)` without a socket: set-up and
//! login redirects, API authentication and roles, CSRF, throttling, probes.
//! Every test runs on SQLite, and on Postgres when TEST_POSTGRES_URL is set.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use app::model::Role;
use app::service::{self, Actor, Ctx};
use app::store::{testing, Db};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use leptos::server_fn::ServerFn;
use serde_json::{json, Value};
use server::{AppState, Settings};
use tower::ServiceExt;

fn app(db: &Db) -> Router {
    let opts = leptos::config::LeptosOptions::builder().output_name("nudge").site_root("target/site").build();
    server::router(AppState::new(Ctx::new(db.clone()), opts, Settings::default()))
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
    /// The session cookie set by this reply, as a `Cookie` header value.
    fn cookie(&self) -> String {
        let set = self.headers.get(header::SET_COOKIE).expect("a session cookie").to_str().unwrap();
        set.split(';').next().unwrap().to_string()
    }
}

async fn send(app: &Router, req: Request<Body>) -> Reply {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Reply { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

fn get(uri: &str) -> axum::http::request::Builder {
    Request::builder().method(Method::GET).uri(uri)
}

/// Calls a server fn the way the browser does: a url-encoded form POST.
async fn call<S: ServerFn>(app: &Router, form: &[(&str, &str)], cookie: Option<&str>) -> Reply {
    let body: Vec<String> = form.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect();
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(S::PATH)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json");
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    send(app, req.body(Body::from(body.join("&"))).unwrap()).await
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn api(app: &Router, method: Method, uri: &str, auth: &str, body: Option<Value>) -> Reply {
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

async fn key(db: &Db, role: Role) -> String {
    let ctx = Ctx::new(db.clone());
    service::api_keys::create(&ctx, &Actor::system(), &format!("{role} key"), role).await.unwrap().secret
}

use app::pages::auth::{Login, Logout, SetupAdmin};
use app::pages::settings::CreateApiKey;

#[tokio::test]
async fn a_fresh_install_leads_to_setup_then_to_login() {
    for db in testing::all().await {
        let app = app(&db);
        let r = send(&app, get("/").body(Body::empty()).unwrap()).await;
        assert!(r.status.is_redirection(), "{}", r.status);
        assert_eq!(r.location(), "/setup");
        assert!(send(&app, get("/workflows").body(Body::empty()).unwrap()).await.location() == "/setup");

        let setup = send(&app, get("/setup").body(Body::empty()).unwrap()).await;
        assert_eq!(setup.status, StatusCode::OK);
        assert!(setup.body.contains("Create the first admin"));

        let weak = call::<SetupAdmin>(
            &app,
            &[("email", "a@x.io"), ("password", "short"), ("password_confirm", "short")],
            None,
        )
        .await;
        assert!(!weak.status.is_success());
        assert!(weak.body.contains("at least 10 characters"), "{}", weak.body);

        let form = [
            ("email", "admin@example.com"),
            ("password", "a long passphrase"),
            ("password_confirm", "a long passphrase"),
        ];
        let done = call::<SetupAdmin>(&app, &form, None).await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.body);
        let cookie = done.cookie();
        assert!(done.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().contains("HttpOnly"));
        assert!(done.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().contains("SameSite=Lax"));

        // Set-up is one-time.
        let again = call::<SetupAdmin>(&app, &form, None).await;
        assert!(again.body.contains("already set up"), "{}", again.body);
        let r = send(&app, get("/setup").body(Body::empty()).unwrap()).await;
        assert_eq!(r.location(), "/login");

        // Logged in: the dashboard renders with the shell.
        let dash = send(&app, get("/").header(header::COOKIE, &cookie).body(Body::empty()).unwrap()).await;
        assert_eq!(dash.status, StatusCode::OK);
        assert!(dash.body.contains("Getting started") && dash.body.contains("Workflows"));
        // Every page renders completely on the server (a panic would cut the stream short).
        for (path, marker) in [("/events", "No events yet"), ("/sources", "No sources yet"), ("/settings", "API keys")]
        {
            let page = send(&app, get(path).header(header::COOKIE, &cookie).body(Body::empty()).unwrap()).await;
            assert_eq!(page.status, StatusCode::OK, "{path}");
            assert!(page.body.contains(marker), "{path} renders its content: {}", page.body);
        }

        // Logged out: pages lead to the login, remembering where to return.
        let out = call::<Logout>(&app, &[], Some(&cookie)).await;
        assert_eq!(out.status, StatusCode::OK);
        let r = send(&app, get("/settings").header(header::COOKIE, &cookie).body(Body::empty()).unwrap()).await;
        assert_eq!(r.location(), "/login?next=/settings");

        let missing =
            send(&app, get("/no/such/page").header(header::COOKIE, &cookie).body(Body::empty()).unwrap()).await;
        assert!(missing.status.is_redirection());
    }
}

#[tokio::test]
async fn every_api_endpoint_answers_401_without_credentials() {
    for db in testing::all().await {
        let app = app(&db);
        let calls = [
            (Method::GET, "/api/v1/me"),
            (Method::GET, "/api/v1/status"),
            (Method::GET, "/api/v1/users"),
            (Method::POST, "/api/v1/users"),
            (Method::PATCH, "/api/v1/users/x"),
            (Method::DELETE, "/api/v1/users/x"),
            (Method::GET, "/api/v1/api-keys"),
            (Method::POST, "/api/v1/api-keys"),
            (Method::DELETE, "/api/v1/api-keys/x"),
            (Method::POST, "/api/v1/actions/x/retry"),
            (Method::GET, "/api/v1/no-such-endpoint"),
        ];
        for (method, uri) in calls {
            let r = api(&app, method.clone(), uri, "", Some(json!({}))).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
            assert_eq!(r.json()["error"], "unauthorized", "{method} {uri}");
            assert!(r.json()["detail"].as_str().unwrap().contains("Bearer"));
        }
        let real = key(&db, Role::Admin).await;
        // The real key with its last digit changed.
        let last = if real.ends_with('0') { '1' } else { '0' };
        let bogus = format!("{}{last}", &real[..real.len() - 1]);
        let r = api(&app, Method::GET, "/api/v1/me", &bogus, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn a_viewer_key_reads_but_cannot_administer() {
    for db in testing::all().await {
        let app = app(&db);
        let viewer = key(&db, Role::Viewer).await;
        let admin = key(&db, Role::Admin).await;

        let me = api(&app, Method::GET, "/api/v1/me", &viewer, None).await;
        assert_eq!(me.status, StatusCode::OK);
        assert_eq!(me.json()["role"], "viewer");
        assert_eq!(me.json()["kind"], "api_key");
        assert_eq!(api(&app, Method::GET, "/api/v1/status", &viewer, None).await.status, StatusCode::OK);

        let body = json!({ "name": "sneaky", "role": "admin" });
        let denied = api(&app, Method::POST, "/api/v1/api-keys", &viewer, Some(body.clone())).await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
        assert_eq!(denied.json()["error"], "forbidden");
        assert_eq!(api(&app, Method::GET, "/api/v1/users", &viewer, None).await.status, StatusCode::FORBIDDEN);

        let created = api(&app, Method::POST, "/api/v1/api-keys", &admin, Some(body)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let secret = created.json()["secret"].as_str().unwrap().to_string();
        assert_eq!(api(&app, Method::GET, "/api/v1/me", &secret, None).await.json()["role"], "admin");

        // Cursor pagination over the three keys.
        let p1 = api(&app, Method::GET, "/api/v1/api-keys?limit=2", &admin, None).await.json();
        assert_eq!(p1["items"].as_array().unwrap().len(), 2);
        let cursor = p1["next_cursor"].as_str().expect("a next page").to_string();
        let p2 =
            api(&app, Method::GET, &format!("/api/v1/api-keys?limit=2&cursor={cursor}"), &admin, None).await.json();
        assert_eq!(p2["items"].as_array().unwrap().len(), 1);
        assert!(p2["next_cursor"].is_null());
        assert!(!p2.to_string().contains(&secret), "secrets are never listed");

        // Revoke: the key stops working at once.
        let id = created.json()["api_key"]["api_key_id"].as_str().unwrap().to_string();
        let r = api(&app, Method::DELETE, &format!("/api/v1/api-keys/{id}"), &admin, None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(api(&app, Method::GET, "/api/v1/me", &secret, None).await.status, StatusCode::UNAUTHORIZED);

        // Bad input is a clear 4xx, never a 500.
        let r = api(
            &app,
            Method::POST,
            "/api/v1/users",
            &admin,
            Some(json!({ "email": "x@y.io", "password": "long enough!", "role": "owner" })),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(r.json()["error"], "invalid_input");
        let r = api(
            &app,
            Method::POST,
            "/api/v1/users",
            &admin,
            Some(json!({ "email": "nope", "password": "long enough!", "role": "editor" })),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.json()["detail"].as_str().unwrap().starts_with("email:"));
        let r = api(&app, Method::GET, "/api/v1/users?limit=lots", &admin, None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.json()["error"], "bad_request");
        let r = api(&app, Method::GET, "/api/v1/no-such-endpoint", &admin, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
}

/// Creates the admin and a viewer; returns the viewer's session cookie.
async fn viewer_session(db: &Db, app: &Router) -> String {
    let ctx = Ctx::new(db.clone());
    service::auth::setup_first_admin(&ctx, "admin@example.com", "admin password 1").await.unwrap();
    let new =
        service::users::NewUser { email: "viewer@example.com", password: "viewer password 1", role: Role::Viewer };
    service::users::create(&ctx, &Actor::system(), new).await.unwrap();
    let r = call::<Login>(app, &[("email", "viewer@example.com"), ("password", "viewer password 1")], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.cookie()
}

#[tokio::test]
async fn a_viewer_session_cannot_call_admin_server_fns_or_endpoints() {
    for db in testing::all().await {
        let app = app(&db);
        let cookie = viewer_session(&db, &app).await;

        let r = call::<CreateApiKey>(&app, &[("name", "mine"), ("role", "admin")], Some(&cookie)).await;
        assert!(!r.status.is_success());
        assert!(r.body.contains("forbidden"), "{}", r.body);
        assert_eq!(app::store::api_keys::count_active(&db).await.unwrap(), 0, "nothing was created");

        let me = api(&app, Method::GET, "/api/v1/me", &cookie, None).await;
        assert_eq!(me.json()["role"], "viewer");
        assert_eq!(me.json()["name"], "viewer@example.com");
        let r = api(&app, Method::GET, "/api/v1/users", &cookie, None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);

        // Without a session the same server fn is refused as unauthenticated.
        let r = call::<CreateApiKey>(&app, &[("name", "mine"), ("role", "admin")], None).await;
        assert!(r.body.contains("unauthorized"), "{}", r.body);
    }
}

#[tokio::test]
async fn cross_site_requests_with_a_session_are_refused() {
    for db in testing::all().await {
        let app = app(&db);
        let cookie = viewer_session(&db, &app).await;
        let req = Request::builder()
            .method(Method::POST)
            .uri(Logout::PATH)
            .header(header::HOST, "nudge.example.com")
            .header(header::ORIGIN, "https://evil.example")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap();
        let r = send(&app, req).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(r.json()["error"], "csrf");

        let req = Request::builder()
            .method(Method::POST)
            .uri(Logout::PATH)
            .header(header::COOKIE, &cookie)
            .header("sec-fetch-site", "cross-site")
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, req).await.status, StatusCode::FORBIDDEN);

        // The same request from the site itself goes through.
        let req = Request::builder()
            .method(Method::POST)
            .uri(Logout::PATH)
            .header(header::HOST, "nudge.example.com")
            .header(header::ORIGIN, "http://nudge.example.com")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, req).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_account_with_the_same_message_for_unknown_users() {
    for db in testing::all().await {
        let app = app(&db);
        viewer_session(&db, &app).await;
        let wrong = call::<Login>(&app, &[("email", "viewer@example.com"), ("password", "not it at all")], None).await;
        let unknown = call::<Login>(&app, &[("email", "ghost@example.com"), ("password", "not it at all")], None).await;
        assert!(wrong.body.contains("Wrong email or password."), "{}", wrong.body);
        assert_eq!(wrong.body, unknown.body, "no hint whether the account exists");
        for _ in 0..4 {
            call::<Login>(&app, &[("email", "viewer@example.com"), ("password", "not it at all")], None).await;
        }
        let locked =
            call::<Login>(&app, &[("email", "viewer@example.com"), ("password", "viewer password 1")], None).await;
        assert!(locked.body.contains("too_many_requests"), "{}", locked.body);
        assert!(locked.headers.get(header::SET_COOKIE).is_none());
    }
}

#[tokio::test]
async fn probes_metrics_and_openapi_are_served() {
    for db in testing::all().await {
        let app = app(&db);
        let r = send(&app, get("/healthz").body(Body::empty()).unwrap()).await;
        assert_eq!(r.status, StatusCode::OK);
        let r = send(&app, get("/readyz").body(Body::empty()).unwrap()).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json()["database"], db.backend());
        assert!(r.headers.contains_key("x-request-id"));

        api(&app, Method::GET, "/api/v1/me", "", None).await;
        let m = send(&app, get("/metrics").body(Body::empty()).unwrap()).await;
        assert!(
            m.body.contains("nudge_http_requests_total{method=\"GET\",route=\"/api/v1/me\",status=\"401\"} 1"),
            "{}",
            m.body
        );
        assert!(m.body.contains("nudge_http_request_duration_seconds_bucket{route=\"/healthz\""));

        let doc = send(&app, get("/api/openapi.json").body(Body::empty()).unwrap()).await.json();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        for path in [
            "/api/v1/me",
            "/api/v1/users",
            "/api/v1/users/{user_id}",
            "/api/v1/api-keys",
            "/api/v1/api-keys/{api_key_id}",
            "/api/v1/actions/{action_key}/retry",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} is documented");
        }
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        let runs = &doc["paths"]["/api/v1/runs"]["get"]["parameters"];
        assert!(
            runs.as_array().unwrap().iter().any(|p| p["name"] == "actions"),
            "the runs filter `actions` is documented"
        );
        // Every schema the document refers to is in it: a client generator
        // stops at a dangling `$ref`.
        fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                        out.push(r.to_string());
                    }
                    m.values().for_each(|x| refs(x, out));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.iter().any(|r| r.ends_with("/RunStatus")), "runs name the core's status type");
        for r in all {
            let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {r}"));
            assert!(doc["components"]["schemas"][name].is_object(), "{r} is not in the document");
        }
    }
}
