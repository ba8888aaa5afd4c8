//! The executor end to end: signed events through the real webhook endpoint,
//! published templates, a hand-moved clock, and what lands in the database —
//! runs, steps, offers, alerts, profile changes and webhook deliveries.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

mod common;

use app::ingest::mapping::{Mapping, ProfileField};
use app::service::workflows::NewWorkflow;
use app::service::{self, Actor, Ctx};
use app::store::{testing, Db};
use axum::http::StatusCode;
use common::{hook, router, send};
use serde_json::json;
use server::executor::{Executor, ManualClock};
use std::sync::Arc;

const T0: i64 = 1_900_000_000_000;
const MIN: i64 = 60_000;

async fn source(ctx: &Ctx) -> String {
    let mapping = Mapping {
        event_name: "$.type".into(),
        customer_id: "$.customer.id".into(),
        event_id: "$.id".into(),
        timestamp: None,
        profile: vec![ProfileField { attribute: "email".into(), path: "$.customer.email".into() }],
    };
    let input = service::sources::NewSourceInput { name: "Shop", slug: "shop", mapping: &mapping };
    service::sources::create(ctx, &Actor::system(), input).await.unwrap().secret
}

async fn publish_template(ctx: &Ctx, name: &str) -> String {
    let input = NewWorkflow { template: Some(name.into()), ..Default::default() };
    let w = service::workflows::create(ctx, &Actor::system(), input).await.unwrap();
    service::workflows::publish(ctx, &Actor::system(), &w.summary.workflow_id).await.unwrap();
    w.summary.workflow_id
}

async fn count(db: &Db, sql: &str) -> i64 {
    app::with_pool!(db, p => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await).unwrap()
}

async fn text(db: &Db, sql: &str) -> String {
    app::with_pool!(db, p => sqlx::query_scalar::<_, String>(sql).fetch_one(p).await).unwrap()
}

#[tokio::test]
async fn abandoned_carts_checkout_in_time_or_get_an_offer_an_alert_and_convert_on_redemption() {
    for db in testing::all().await {
        let ctx = Ctx::new(db.clone());
        let app = router(&ctx);
        let secret = source(&ctx).await;
        publish_template(&ctx, "abandoned_cart").await;
        let clock = Arc::new(ManualClock::default());
        clock.set(T0);
        let mut executor = Executor::new(ctx.clone(), clock.clone());
        let post = |body: serde_json::Value| {
            let req = hook("shop", &secret, &body.to_string());
            let app = app.clone();
            async move {
                let r = send(&app, req).await;
                assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
            }
        };
        let ana = json!({ "id": "ana", "email": "ana@example.com" });
        let bob = json!({ "id": "bob", "email": "bob@example.com" });

        // Ana checks out within the 30 minutes; Bob does not.
        post(json!({ "id": "e1", "type": "cart_updated", "customer": ana, "cart": { "id": "c1", "value": 80 } })).await;
        post(json!({ "id": "e2", "type": "cart_updated", "customer": bob, "cart": { "id": "c2", "value": 640 } }))
            .await;
        assert_eq!(executor.drain().await.unwrap(), 2);
        assert_eq!(count(&db, "select count(*) from run where status = 'waiting'").await, 2);
        assert_eq!(count(&db, "select count(*) from work_item").await, 0, "the queue is drained");

        clock.set(T0 + 10 * MIN);
        post(json!({ "id": "e3", "type": "checkout_started", "customer": ana, "cart": { "id": "c1" } })).await;
        executor.drain().await.unwrap();
        let ana_status = text(&db, "select status from run where customer_id = 'ana'").await;
        assert_eq!(ana_status, "completed");

        clock.set(T0 + 30 * MIN);
        executor.drain().await.unwrap();
        assert_eq!(count(&db, "select count(*) from offer").await, 1, "only Bob gets an offer");
        let code = text(&db, "select code from offer where customer_id = 'bob'").await;
        assert!(code.starts_with("CART-"), "{code}");
        assert_eq!(count(&db, "select count(*) from alert where customer_id = 'bob' and status = 'open'").await, 1);
        let message = text(&db, "select message from alert").await;
        assert_eq!(message, "Cart c2 worth 640 abandoned by bob@example.com");
        assert_eq!(text(&db, "select at_node from run where customer_id = 'bob'").await, "converted");

        // Replaying the timers changes nothing: no second offer or alert.
        executor.drain().await.unwrap();
        assert_eq!(count(&db, "select count(*) from offer").await, 1);
        assert_eq!(count(&db, "select count(*) from action").await, 2);

        // Bob orders with the code: the run converts.
        clock.set(T0 + 50 * MIN);
        post(json!({ "id": "e4", "type": "order_completed", "customer": bob, "order": { "coupon": code } })).await;
        executor.drain().await.unwrap();
        assert_eq!(text(&db, "select status from run where customer_id = 'bob'").await, "converted");
        assert_eq!(
            text(&db, "select redeemed_by from offer").await,
            "event e4".replace("e4", &text(&db, "select event_id from event where external_id = 'e4'").await)
        );
        let steps = count(
            &db,
            "select count(*) from run_step where run_id = (select run_id from run where customer_id = 'bob')",
        )
        .await;
        assert!(steps >= 8, "the trace has every node passed: {steps}");

        // /metrics tells the executor's state from the database.
        let metrics = send(&app, axum::http::Request::get("/metrics").body(axum::body::Body::empty()).unwrap()).await;
        assert!(metrics.body.contains("nudge_executor_backlog_events 0"), "{}", metrics.body);
        assert!(metrics.body.contains("nudge_runs{status=\"converted\"} 1"), "{}", metrics.body);
        assert!(metrics.body.contains("nudge_actions{kind=\"issue_offer\",status=\"done\"} 1"), "{}", metrics.body);

        // Re-entry: Ana's new cart within 24 hours starts nothing.
        post(json!({ "id": "e5", "type": "cart_updated", "customer": ana, "cart": { "id": "c3", "value": 90 } })).await;
        executor.drain().await.unwrap();
        assert_eq!(count(&db, "select count(*) from run where customer_id = 'ana'").await, 1);
    }
}

#[tokio::test]
async fn a_wait_survives_a_restart_and_a_paused_workflow_holds_its_runs() {
    for db in testing::all().await {
        let ctx = Ctx::new(db.clone());
        let app = router(&ctx);
        let secret = source(&ctx).await;
        let id = publish_template(&ctx, "abandoned_cart").await;
        let clock = Arc::new(ManualClock::default());
        clock.set(T0);
        let body = json!({ "id": "e1", "type": "cart_updated", "customer": { "id": "cy" }, "cart": { "id": "c", "value": 60 } });
        assert_eq!(send(&app, hook("shop", &secret, &body.to_string())).await.status, StatusCode::ACCEPTED);
        Executor::new(ctx.clone(), clock.clone()).drain().await.unwrap();

        // A new process (a fresh context and executor) after the deadline.
        let ctx2 = Ctx::new(db.clone());
        service::workflows::pause(&ctx2, &Actor::system(), &id).await.unwrap();
        clock.set(T0 + 45 * MIN);
        let mut later = Executor::new(ctx2.clone(), clock.clone());
        later.drain().await.unwrap();
        assert_eq!(count(&db, "select count(*) from offer").await, 0, "paused: the run is held");
        service::workflows::resume(&ctx2, &Actor::system(), &id).await.unwrap();
        later.drain().await.unwrap();
        assert_eq!(count(&db, "select count(*) from offer").await, 1, "resumed: the overdue timer fires");
    }
}

/// A receiver that fails twice with 503, then answers 200, recording each
/// request's Idempotency-Key and body.
async fn flaky_receiver() -> (String, Arc<std::sync::Mutex<Vec<(String, String)>>>) {
    use axum::routing::post;
    let seen: Arc<std::sync::Mutex<Vec<(String, String)>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/remind",
        post(move |headers: axum::http::HeaderMap, body: String| {
            let log = log.clone();
            async move {
                let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                let n = {
                    let mut l = log.lock().unwrap();
                    l.push((key, body));
                    l.len()
                };
                if n <= 2 {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/remind"), seen)
}

#[tokio::test]
async fn a_webhook_is_retried_with_backoff_and_the_same_idempotency_key_until_it_succeeds() {
    use server::executor::delivery::{Delivery, DeliveryConfig};
    for db in testing::all().await {
        let ctx = Ctx::new(db.clone());
        let app = router(&ctx);
        let secret = source(&ctx).await;
        let (url, seen) = flaky_receiver().await;

        // The abandoned-cart template, its reminder pointed at the receiver.
        let mut w = app::workflow::templates::abandoned_cart();
        for n in &mut w.nodes {
            if let app::workflow::NodeKind::Webhook { url: u, .. } = &mut n.kind {
                *u = url.clone();
            }
        }
        let input = NewWorkflow { definition: Some(w), ..Default::default() };
        let created = service::workflows::create(&ctx, &Actor::system(), input).await.unwrap();
        service::workflows::publish(&ctx, &Actor::system(), &created.summary.workflow_id).await.unwrap();

        let clock = Arc::new(ManualClock::default());
        clock.set(T0);
        let body = json!({ "id": "e1", "type": "cart_updated", "customer": { "id": "cy", "email": "c@y.io" }, "cart": { "id": "c9", "value": 20 } });
        assert_eq!(send(&app, hook("shop", &secret, &body.to_string())).await.status, StatusCode::ACCEPTED);
        let mut executor = Executor::new(ctx.clone(), clock.clone());
        executor.drain().await.unwrap();
        clock.set(T0 + 30 * MIN);
        executor.drain().await.unwrap();
        assert_eq!(text(&db, "select status from action where kind = 'call_webhook'").await, "pending");

        let config = DeliveryConfig { base_delay: std::time::Duration::from_secs(2), ..Default::default() };
        let delivery = Arc::new(Delivery::new(ctx.clone(), clock.clone(), config).unwrap());
        assert_eq!(delivery.clone().deliver_due().await.unwrap(), 1);
        assert_eq!(text(&db, "select last_error from action").await, "HTTP 503");
        assert_eq!(delivery.clone().deliver_due().await.unwrap(), 0, "not before the backoff");
        clock.set(T0 + 30 * MIN + 3_000);
        assert_eq!(delivery.clone().deliver_due().await.unwrap(), 1);
        clock.set(T0 + 30 * MIN + 10_000);
        assert_eq!(delivery.clone().deliver_due().await.unwrap(), 1);
        assert_eq!(text(&db, "select status from action where kind = 'call_webhook'").await, "done");
        assert_eq!(count(&db, "select attempts from action").await, 3);

        let requests = seen.lock().unwrap().clone();
        assert_eq!(requests.len(), 3);
        let key = &requests[0].0;
        assert!(key.ends_with(":reminder"), "{key}");
        assert!(requests.iter().all(|(k, b)| k == key && b.contains("\"cart\":\"c9\"")), "{requests:?}");
    }
}
