//! The webhook gateway and the ingestion API, through `router(state)` on both
//! databases: every status the endpoint answers, signatures and rotation,
//! batches with partial success, duplicates, durability and dead-letter replay.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

mod common;

use app::model::Role;
use app::service::ingest::IngestLimits;
use app::service::{self, signature, Actor, Ctx};
use app::store::{self, testing, Db};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use common::read_until;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use server::{AppState, Settings};
use tower::ServiceExt;

fn app_with(db: &Db, limits: IngestLimits) -> Router {
    let opts = leptos::config::LeptosOptions::builder().output_name("nudge").site_root("target/site").build();
    server::router(AppState::new(Ctx::with_limits(db.clone(), limits), opts, Settings::default()))
}

fn app(db: &Db) -> Router {
    app_with(db, IngestLimits::default())
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    json: Value,
}

async fn send(app: &Router, req: Request<Body>) -> Reply {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply { status, headers, json }
}

fn now_secs() -> i64 {
    store::now_ms() / 1000
}

/// A webhook request signed with `secret` now.
fn hook(slug: &str, secret: &str, body: &str) -> Request<Body> {
    let sig = signature::header_value(secret, now_secs(), body.as_bytes());
    Request::post(format!("/hooks/{slug}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("nudge-signature", sig)
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn api(app: &Router, method: Method, uri: &str, key: &str, body: Option<Value>) -> Reply {
    let req = Request::builder().method(method).uri(uri).header(header::AUTHORIZATION, format!("Bearer {key}"));
    let req = match body {
        Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    };
    send(app, req.unwrap()).await
}

async fn key(db: &Db, role: Role) -> String {
    let ctx = Ctx::new(db.clone());
    service::api_keys::create(&ctx, &Actor::system(), "k", role).await.unwrap().secret
}

fn shop_mapping() -> Value {
    json!({
        "event_name": "$.type",
        "customer_id": "$.customer.id",
        "event_id": "$.id",
        "timestamp": "$.at",
        "profile": [{ "attribute": "email", "path": "$.customer.email" }]
    })
}

/// Creates the `shop` source through the API; returns (editor key, secret).
async fn shop(app: &Router, db: &Db) -> (String, String) {
    let editor = key(db, Role::Editor).await;
    let r = api(
        app,
        Method::POST,
        "/api/v1/sources",
        &editor,
        Some(json!({ "name": "Web shop", "slug": "shop", "mapping": shop_mapping() })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let secret = r.json["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    assert!(r.json["source"]["secret_hint"].as_str().unwrap().ends_with(&secret[secret.len() - 4..]));
    (editor, secret)
}

fn cart(id: &str, customer: &str) -> Value {
    json!({ "id": id, "type": "cart_updated", "at": "2026-11-27T10:00:00Z",
            "customer": { "id": customer, "email": format!("{customer}@example.com") }, "cart_value": 80 })
}

#[tokio::test]
async fn a_signed_event_is_committed_before_the_202_and_a_repeat_is_a_duplicate() {
    for db in testing::all().await {
        let app = app(&db);
        let (editor, secret) = shop(&app, &db).await;
        let body = cart("evt-1", "c-1").to_string();

        let r = send(&app, hook("shop", &secret, &body)).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
        assert_eq!(r.json["status"], "accepted");
        assert_eq!(r.json["event_id"], "evt-1");
        let nudge_id = r.json["nudge_id"].as_str().unwrap().to_string();

        // Durable: the event and the customer are in the database now.
        let stored = store::events::get(&db, &nudge_id).await.unwrap().expect("the event is stored");
        assert_eq!((stored.name.as_str(), stored.customer_id.as_str()), ("cart_updated", "c-1"));
        assert_eq!(stored.occurred_at, app::ingest::mapping::parse_rfc3339("2026-11-27T10:00:00Z").unwrap());

        let again = send(&app, hook("shop", &secret, &body)).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.json["status"], "duplicate");
        assert_eq!(again.json["nudge_id"], nudge_id.as_str(), "points at the first");

        let source = api(&app, Method::GET, "/api/v1/sources/shop", &editor, None).await.json;
        assert_eq!((source["accepted_count"].as_i64(), source["duplicate_count"].as_i64()), (Some(1), Some(1)));
        assert!(source["last_event_at"].as_i64().is_some());
        assert!(source.get("secret".to_string()).is_none(), "the secret is only in the create answer");

        let customer = api(&app, Method::GET, "/api/v1/customers/c-1", &editor, None).await.json;
        assert_eq!(customer["customer"]["attributes"]["email"], "c-1@example.com");
        assert_eq!(customer["customer"]["event_count"], 1);
        assert_eq!(customer["events"][0]["external_id"], "evt-1");
        assert_eq!(customer["events"][0]["payload"]["cart_value"], 80);
    }
}

#[tokio::test]
async fn every_refusal_has_its_status_and_a_clear_error() {
    for db in testing::all().await {
        let app = app_with(&db, IngestLimits { max_body_bytes: 4096, max_batch_events: 3, events_per_second: 0 });
        let (editor, secret) = shop(&app, &db).await;
        let body = cart("e", "c").to_string();

        // 401: missing, wrong secret, expired.
        let unsigned = Request::post("/hooks/shop")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.clone()))
            .unwrap();
        let r = send(&app, unsigned).await;
        assert_eq!((r.status, r.json["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
        assert!(r.json["detail"].as_str().unwrap().contains("missing"));
        assert_eq!(send(&app, hook("shop", "whsec_wrong", &body)).await.status, StatusCode::UNAUTHORIZED);
        let old = signature::header_value(&secret, now_secs() - 600, body.as_bytes());
        let req = Request::post("/hooks/shop")
            .header(header::CONTENT_TYPE, "application/json")
            .header("nudge-signature", old)
            .body(Body::from(body.clone()))
            .unwrap();
        let r = send(&app, req).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.json["detail"].as_str().unwrap().contains("5 minutes"));

        // 404: unknown and disabled sources answer alike.
        let unknown = send(&app, hook("nope", &secret, &body)).await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        api(&app, Method::PATCH, "/api/v1/sources/shop", &editor, Some(json!({ "enabled": false }))).await;
        let disabled = send(&app, hook("shop", &secret, &body)).await;
        assert_eq!(disabled.status, StatusCode::NOT_FOUND);
        assert_eq!(unknown.json, disabled.json);
        api(&app, Method::PATCH, "/api/v1/sources/shop", &editor, Some(json!({ "enabled": true }))).await;

        // 415: not JSON.
        let req = Request::post("/hooks/shop")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from(body.clone()))
            .unwrap();
        assert_eq!(send(&app, req).await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

        // 400: malformed JSON says where.
        let r = send(&app, hook("shop", &secret, "{\"id\": \"x\",\n \"type\": }")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.json["detail"].as_str().unwrap().contains("line 2"), "{}", r.json);

        // 413: body over the limit, batch over the limit.
        let big = json!({ "id": "big", "pad": "x".repeat(5000) }).to_string();
        assert_eq!(send(&app, hook("shop", &secret, &big)).await.status, StatusCode::PAYLOAD_TOO_LARGE);
        let four = json!([cart("a", "c"), cart("b", "c"), cart("c", "c"), cart("d", "c")]).to_string();
        let r = send(&app, hook("shop", &secret, &four)).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(r.json["detail"].as_str().unwrap().contains("at most 3"));

        // 422: the mapping cannot find the customer id; the path is named and the event kept.
        let r = send(&app, hook("shop", &secret, &json!({ "id": "no-customer", "type": "x" }).to_string())).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.json["detail"].as_str().unwrap().contains("$.customer.id"), "{}", r.json);
        let letters = api(&app, Method::GET, "/api/v1/dead-letters?source=shop", &editor, None).await.json;
        assert_eq!(letters["items"][0]["payload"]["id"], "no-customer");

        // A NUL character (which Postgres cannot store) is refused alike on every backend.
        let nul = json!({ "id": "nul", "type": "x", "customer": { "id": "a\u{0}b" } }).to_string();
        let r = send(&app, hook("shop", &secret, &nul)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.json);
        assert!(r.json["detail"].as_str().unwrap().contains("NUL"));
        assert_eq!(
            store::events::list(&db, None, &Default::default(), None, 10).await.unwrap().len(),
            0,
            "nothing was accepted"
        );
    }
}

#[tokio::test]
async fn a_source_over_its_rate_gets_429_with_retry_after() {
    for db in testing::all().await {
        let app = app_with(&db, IngestLimits { events_per_second: 1, ..Default::default() });
        let (_, secret) = shop(&app, &db).await;
        assert_eq!(send(&app, hook("shop", &secret, &cart("1", "c").to_string())).await.status, StatusCode::ACCEPTED);
        assert_eq!(send(&app, hook("shop", &secret, &cart("2", "c").to_string())).await.status, StatusCode::ACCEPTED);
        let r = send(&app, hook("shop", &secret, &cart("3", "c").to_string())).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.json["error"], "too_many_requests");
        assert!(r.headers.get(header::RETRY_AFTER).is_some());
    }
}

#[tokio::test]
async fn a_batch_keeps_the_good_items_and_reports_each_one() {
    for db in testing::all().await {
        let app = app(&db);
        let (editor, secret) = shop(&app, &db).await;
        send(&app, hook("shop", &secret, &cart("seen", "c-2").to_string())).await;
        let batch = json!([cart("b-1", "c-2"), { "id": "b-2", "type": "x" }, cart("seen", "c-2"), cart("b-1", "c-2")]);
        let r = send(&app, hook("shop", &secret, &batch.to_string())).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
        assert_eq!(
            (r.json["accepted"].as_i64(), r.json["duplicates"].as_i64(), r.json["rejected"].as_i64()),
            (Some(1), Some(2), Some(1))
        );
        let statuses: Vec<&str> =
            r.json["results"].as_array().unwrap().iter().map(|i| i["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["accepted", "rejected", "duplicate", "duplicate"]);
        assert_eq!(r.json["results"][0]["event_id"], "b-1");
        assert!(r.json["results"][1]["reason"].as_str().unwrap().contains("$.customer.id"));
        assert_eq!(r.json["results"][3]["nudge_id"], r.json["results"][0]["nudge_id"], "a repeat within the batch");

        let events = api(&app, Method::GET, "/api/v1/events?customer=c-2", &editor, None).await.json;
        assert_eq!(events["items"].as_array().unwrap().len(), 2);
        assert_eq!(events["items"][0]["external_id"], "b-1", "newest first");
    }
}

#[tokio::test]
async fn rotation_accepts_both_secrets_during_the_grace_period_only() {
    for db in testing::all().await {
        let app = app(&db);
        let (editor, old) = shop(&app, &db).await;
        let r =
            api(&app, Method::POST, "/api/v1/sources/shop/rotate-secret", &editor, Some(json!({ "grace_hours": 1 })))
                .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        let new = r.json["secret"].as_str().unwrap().to_string();
        assert_ne!(new, old);
        assert!(r.json["source"]["previous_secret_until"].as_i64().is_some());
        assert_eq!(send(&app, hook("shop", &old, &cart("r-1", "c").to_string())).await.status, StatusCode::ACCEPTED);
        assert_eq!(send(&app, hook("shop", &new, &cart("r-2", "c").to_string())).await.status, StatusCode::ACCEPTED);

        // Rotating with no grace ends the previous secret at once.
        let r =
            api(&app, Method::POST, "/api/v1/sources/shop/rotate-secret", &editor, Some(json!({ "grace_hours": 0 })))
                .await;
        let newest = r.json["secret"].as_str().unwrap().to_string();
        assert_eq!(
            send(&app, hook("shop", &new, &cart("r-3", "c").to_string())).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(send(&app, hook("shop", &newest, &cart("r-4", "c").to_string())).await.status, StatusCode::ACCEPTED);
    }
}

#[tokio::test]
async fn a_dead_letter_is_replayed_once_its_mapping_is_fixed() {
    for db in testing::all().await {
        let app = app(&db);
        let (editor, secret) = shop(&app, &db).await;
        let body = json!({ "id": "dl-1", "type": "order_completed", "buyer": { "id": "c-9" } }).to_string();
        assert_eq!(send(&app, hook("shop", &secret, &body)).await.status, StatusCode::UNPROCESSABLE_ENTITY);
        let letters = api(&app, Method::GET, "/api/v1/dead-letters", &editor, None).await.json;
        let id = letters["items"][0]["dead_letter_id"].as_str().unwrap().to_string();
        assert!(letters["items"][0]["reason"].as_str().unwrap().contains("$.customer.id"));
        // The source's only event so far is this dead letter: its last event is
        // the letter's arrival, not "never" and not 1970.
        let source = api(&app, Method::GET, "/api/v1/sources/shop", &editor, None).await.json;
        assert_eq!(source["rejected_count"], 1);
        assert_eq!(source["last_event_at"], letters["items"][0]["received_at"], "{source}");

        // Still broken: a clear 422, nothing stored.
        let r = api(&app, Method::POST, &format!("/api/v1/dead-letters/{id}/replay"), &editor, None).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

        let mut fixed = shop_mapping();
        fixed["customer_id"] = json!("$.buyer.id");
        let r = api(&app, Method::PATCH, "/api/v1/sources/shop", &editor, Some(json!({ "mapping": fixed }))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        let r = api(&app, Method::POST, &format!("/api/v1/dead-letters/{id}/replay"), &editor, None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        assert_eq!(r.json["customer_id"], "c-9");
        assert_eq!(r.json["external_id"], "dl-1");
        let again = api(&app, Method::POST, &format!("/api/v1/dead-letters/{id}/replay"), &editor, None).await;
        assert_eq!(again.status, StatusCode::CONFLICT);
        let letters = api(&app, Method::GET, "/api/v1/dead-letters", &editor, None).await.json;
        assert_eq!(letters["items"][0]["replayed_event_id"], r.json["event_id"]);
    }
}

#[tokio::test]
async fn sources_are_validated_and_only_editors_change_them() {
    for db in testing::all().await {
        let app = app(&db);
        let viewer = key(&db, Role::Viewer).await;
        let (editor, _) = shop(&app, &db).await;
        let body = json!({ "name": "Bank", "slug": "bank", "mapping": shop_mapping() });
        let r = api(&app, Method::POST, "/api/v1/sources", &viewer, Some(body)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(api(&app, Method::GET, "/api/v1/sources", &viewer, None).await.json["items"][0]["slug"], "shop");

        let dup = api(
            &app,
            Method::POST,
            "/api/v1/sources",
            &editor,
            Some(json!({ "name": "Again", "slug": "shop", "mapping": shop_mapping() })),
        )
        .await;
        assert_eq!(dup.status, StatusCode::CONFLICT);
        let bad_slug = api(
            &app,
            Method::POST,
            "/api/v1/sources",
            &editor,
            Some(json!({ "name": "X", "slug": "Not OK", "mapping": shop_mapping() })),
        )
        .await;
        assert_eq!(bad_slug.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(bad_slug.json["detail"].as_str().unwrap().starts_with("slug:"));
        let mut bad = shop_mapping();
        bad["event_id"] = json!("$.");
        let bad_path = api(
            &app,
            Method::POST,
            "/api/v1/sources",
            &editor,
            Some(json!({ "name": "X", "slug": "x", "mapping": bad })),
        )
        .await;
        assert_eq!(bad_path.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(bad_path.json["detail"].as_str().unwrap().starts_with("mapping.event_id:"));
        let mut bad = shop_mapping();
        bad["offer_code"] = json!("$.order[");
        let bad_code = api(
            &app,
            Method::POST,
            "/api/v1/sources",
            &editor,
            Some(json!({ "name": "X", "slug": "x", "mapping": bad })),
        )
        .await;
        assert_eq!(bad_code.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(bad_code.json["detail"].as_str().unwrap().starts_with("mapping.offer_code:"), "{}", bad_code.json);
        // Nudge's own records come from `nudge`: no source may pass for it.
        let reserved = api(
            &app,
            Method::POST,
            "/api/v1/sources",
            &editor,
            Some(json!({ "name": "Forger", "slug": "nudge", "mapping": shop_mapping() })),
        )
        .await;
        assert_eq!(reserved.status, StatusCode::UNPROCESSABLE_ENTITY);
        let detail = reserved.json["detail"].as_str().unwrap();
        assert!(detail.starts_with("slug:") && detail.contains("reserved"), "{detail}");
        let missing =
            api(&app, Method::POST, "/api/v1/sources", &editor, Some(json!({ "name": "X", "slug": "x" }))).await;
        assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);

        // The signed example is accepted by the real endpoint; the test event too.
        let ex = api(&app, Method::GET, "/api/v1/sources/shop/example", &editor, None).await.json;
        let req = Request::post(ex["path"].as_str().unwrap())
            .header(header::CONTENT_TYPE, "application/json")
            .header("nudge-signature", ex["signature"].as_str().unwrap())
            .body(Body::from(ex["body"].as_str().unwrap().to_string()))
            .unwrap();
        assert_eq!(send(&app, req).await.status, StatusCode::ACCEPTED);
        let t = api(&app, Method::POST, "/api/v1/sources/shop/test-event", &editor, None).await;
        assert_eq!(t.status, StatusCode::ACCEPTED, "{}", t.json);
        assert_eq!(t.json["status"], "accepted");

        assert_eq!(
            api(&app, Method::DELETE, "/api/v1/sources/shop", &viewer, None).await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            api(&app, Method::DELETE, "/api/v1/sources/shop", &editor, None).await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(api(&app, Method::GET, "/api/v1/sources/shop", &editor, None).await.status, StatusCode::NOT_FOUND);
        assert_eq!(
            api(&app, Method::GET, "/api/v1/events", &editor, None).await.json["items"].as_array().unwrap().len(),
            2,
            "events outlive their source"
        );
    }
}

#[tokio::test]
async fn events_are_filtered_by_source_name_customer_and_time_and_paged() {
    for db in testing::all().await {
        let app = app(&db);
        let (editor, secret) = shop(&app, &db).await;
        let before = store::now_ms();
        for i in 0..5 {
            let mut e = cart(&format!("p-{i}"), if i % 2 == 0 { "even" } else { "odd" });
            if i == 4 {
                e["type"] = json!("order_completed");
            }
            assert_eq!(send(&app, hook("shop", &secret, &e.to_string())).await.status, StatusCode::ACCEPTED);
        }
        let get = |q: String| {
            let (app, editor) = (app.clone(), editor.clone());
            async move { api(&app, Method::GET, &format!("/api/v1/events{q}"), &editor, None).await }
        };
        let page1 = get("?limit=2".to_string()).await.json;
        assert_eq!(page1["items"].as_array().unwrap().len(), 2);
        assert_eq!(page1["items"][0]["external_id"], "p-4");
        let cursor = page1["next_cursor"].as_str().unwrap().to_string();
        let page2 = get(format!("?limit=2&cursor={cursor}")).await.json;
        assert_eq!(page2["items"][0]["external_id"], "p-2");
        assert_eq!(get("?customer=even".to_string()).await.json["items"].as_array().unwrap().len(), 3);
        assert_eq!(get("?name=order_completed".to_string()).await.json["items"].as_array().unwrap().len(), 1);
        assert_eq!(get("?source=shop&customer=odd".to_string()).await.json["items"].as_array().unwrap().len(), 2);
        assert_eq!(get("?source=other".to_string()).await.json["items"].as_array().unwrap().len(), 0);
        assert_eq!(get(format!("?from={before}")).await.json["items"].as_array().unwrap().len(), 5);
        assert_eq!(get(format!("?to={before}")).await.json["items"].as_array().unwrap().len(), 0);
        assert_eq!(get("?from=yesterday".to_string()).await.status, StatusCode::BAD_REQUEST);
        let one = page1["items"][1]["event_id"].as_str().unwrap();
        let detail = api(&app, Method::GET, &format!("/api/v1/events/{one}"), &editor, None).await;
        assert_eq!(detail.json["external_id"], "p-3");
        assert_eq!(api(&app, Method::GET, "/api/v1/events/nope", &editor, None).await.status, StatusCode::NOT_FOUND);
        assert_eq!(
            api(&app, Method::GET, "/api/v1/customers/nobody", &editor, None).await.status,
            StatusCode::NOT_FOUND
        );
    }
}

#[tokio::test]
async fn accepted_events_stream_live_to_subscribers_as_whole_objects() {
    for db in testing::all().await {
        let app = app(&db);
        let (_, secret) = shop(&app, &db).await;
        let viewer = key(&db, Role::Viewer).await;

        let unauthenticated = send(&app, Request::get("/api/v1/stream").body(Body::empty()).unwrap()).await;
        assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
        let bad = api(&app, Method::GET, "/api/v1/stream?topics=gossip", &viewer, None).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(bad.json["detail"].as_str().unwrap().contains("events"));

        let req = Request::get("/api/v1/stream?topics=events")
            .header(header::AUTHORIZATION, format!("Bearer {viewer}"))
            .body(Body::empty())
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/event-stream"));
        let mut body = res.into_body();
        read_until(&mut body, "event: ready").await;

        assert_eq!(
            send(&app, hook("shop", &secret, &cart("live-1", "c-live").to_string())).await.status,
            StatusCode::ACCEPTED
        );
        let text = read_until(&mut body, "live-1").await;
        let line = text.lines().find(|l| l.starts_with("data:") && l.contains("live-1")).unwrap();
        let event: Value = serde_json::from_str(line.trim_start_matches("data:").trim()).unwrap();
        assert_eq!(event["external_id"], "live-1");
        assert_eq!(event["customer_id"], "c-live");
        assert_eq!(event["payload"]["cart_value"], 80);
        assert!(text.contains("event: events") && text.contains("\nid: "), "{text}");
    }
}
