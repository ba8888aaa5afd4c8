//! The executor end to end: signed events through the real webhook endpoint,
//! published templates, a hand-moved clock, and what lands in the database —
//! runs, steps, offers, alerts, profile changes and webhook deliveries.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

mod common;

use app::engine::clock::ManualClock;
use app::ingest::mapping::{Mapping, ProfileField};
use app::service::workflows::NewWorkflow;
use app::service::{self, Actor, Ctx};
use app::store::{testing, Db};
use axum::http::StatusCode;
use common::{hook, router, send};
use serde_json::json;
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
        offer_code: Some("$.coupon".into()),
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

/// Each database, with the engine's default hot state and with one that holds a single customer.
async fn hot_sizes() -> Vec<(Db, usize)> {
    let mut out = Vec::new();
    for db in testing::all().await {
        out.push((db.clone(), app::engine::hot::DEFAULT_CUSTOMERS));
    }
    for db in testing::all().await {
        out.push((db, 1));
    }
    out
}

async fn count(db: &Db, sql: &str) -> i64 {
    app::with_pool!(db, p => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await).unwrap()
}

/// One text value, or one of Nudge's ids (stored as a blob on SQLite) as its text.
async fn text(db: &Db, sql: &str) -> String {
    app::with_pool!(db, p => sqlx::query_scalar::<_, app::store::IdText>(sql).fetch_one(p).await).unwrap().0
}

/// Every trace step of a customer's runs, as the run page reads them (steps
/// inline in the run row, then those stored one per row).
async fn trace_of(db: &Db, customer: &str) -> Vec<app::model::RunStep> {
    let runs: Vec<app::store::IdText> = app::with_pool!(db, p => sqlx::query_scalar(
        "select run_id from run where customer_id = $1 order by run_id").bind(customer).fetch_all(p).await)
    .unwrap();
    let mut out = Vec::new();
    for app::store::IdText(run) in runs {
        out.extend(app::store::runs::steps(db, &run).await.unwrap());
    }
    out
}

#[tokio::test]
async fn abandoned_carts_checkout_in_time_or_get_an_offer_an_alert_and_convert_on_redemption() {
    // With the hot state holding everyone, and holding one customer (every
    // other one is read back from the database: runs, offers, entries).
    for (db, hot) in hot_sizes().await {
        let clock = Arc::new(ManualClock::default());
        clock.set(T0);
        let ctx = Ctx::with_engine(db.clone(), Default::default(), clock.clone(), hot);
        let app = router(&ctx);
        let secret = source(&ctx).await;
        publish_template(&ctx, "abandoned_cart").await;
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
        ctx.engine.tick().await.unwrap();
        assert_eq!(count(&db, "select count(*) from run where status = 'waiting'").await, 2);
        // The runs' stored states leave the trigger's payload to the event (the
        // alert below, rendered after the wait, reads the cart from it).
        // (`like '%640%'` would also match the runs' random ids.)
        assert_eq!(count(&db, "select count(*) from run where state like '%\"value\":640%'").await, 0);
        assert_eq!(count(&db, "select count(*) from run where state like '%\"payload\"%'").await, 0);
        // Nor what the row's columns hold.
        assert_eq!(count(&db, "select count(*) from run where state like '%run_id%'").await, 0);

        clock.set(T0 + 10 * MIN);
        post(json!({ "id": "e3", "type": "checkout_started", "customer": ana, "cart": { "id": "c1" } })).await;
        ctx.engine.tick().await.unwrap();
        let ana_status = text(&db, "select status from run where customer_id = 'ana'").await;
        assert_eq!(ana_status, "completed");

        clock.set(T0 + 30 * MIN);
        ctx.engine.tick().await.unwrap();
        assert_eq!(count(&db, "select count(*) from offer").await, 1, "only Bob gets an offer");
        let code = text(&db, "select code from offer where customer_id = 'bob'").await;
        assert!(code.starts_with("CART-"), "{code}");
        assert_eq!(count(&db, "select count(*) from alert where customer_id = 'bob' and status = 'open'").await, 1);
        let message = text(&db, "select message from alert").await;
        assert_eq!(message, "Cart c2 worth 640 abandoned by bob@example.com");
        assert_eq!(text(&db, "select at_node from run where customer_id = 'bob'").await, "converted");

        // Replaying the timers changes nothing: no second offer or alert.
        ctx.engine.tick().await.unwrap();
        assert_eq!(count(&db, "select count(*) from offer").await, 1);
        assert_eq!(count(&db, "select count(*) from action").await, 2);

        // The code in a field the source's mapping does not name for it (a
        // note, a list of promotions) redeems nothing and converts nothing.
        clock.set(T0 + 40 * MIN);
        let carried = json!({ "id": "e3b", "type": "order_completed", "customer": bob,
            "note": code, "order": { "promotions": [code.to_lowercase()] } });
        post(carried).await;
        ctx.engine.tick().await.unwrap();
        assert_eq!(text(&db, "select status from run where customer_id = 'bob'").await, "waiting");
        assert_eq!(count(&db, "select count(*) from offer where redeemed_at is null").await, 1);

        // Bob orders with the code where the mapping reads it: the run converts.
        clock.set(T0 + 50 * MIN);
        post(json!({ "id": "e4", "type": "order_completed", "customer": bob, "coupon": code })).await;
        ctx.engine.tick().await.unwrap();
        assert_eq!(text(&db, "select status from run where customer_id = 'bob'").await, "converted");
        assert_eq!(
            text(&db, "select redeemed_by from offer").await,
            "event e4".replace("e4", &text(&db, "select event_id from event where external_id = 'e4'").await)
        );
        let steps = trace_of(&db, "bob").await.len();
        assert!(steps >= 8, "the trace has every node passed: {steps}");

        // /metrics tells the executor's state from the database.
        let metrics = send(&app, axum::http::Request::get("/metrics").body(axum::body::Body::empty()).unwrap()).await;
        assert!(metrics.body.contains("nudge_executor_backlog_events 0"), "{}", metrics.body);
        assert!(metrics.body.contains("nudge_runs{status=\"converted\"} 1"), "{}", metrics.body);
        assert!(metrics.body.contains("nudge_actions{kind=\"issue_offer\",status=\"done\"} 1"), "{}", metrics.body);

        // Re-entry: Ana's new cart within 24 hours starts nothing.
        post(json!({ "id": "e5", "type": "cart_updated", "customer": ana, "cart": { "id": "c3", "value": 90 } })).await;
        ctx.engine.tick().await.unwrap();
        assert_eq!(count(&db, "select count(*) from run where customer_id = 'ana'").await, 1);
    }
}

#[tokio::test]
async fn a_wait_survives_a_restart_and_a_paused_workflow_holds_its_runs() {
    for db in testing::all().await {
        let clock = Arc::new(ManualClock::default());
        clock.set(T0);
        let ctx = Ctx::with_clock(db.clone(), Default::default(), clock.clone());
        let app = router(&ctx);
        let secret = source(&ctx).await;
        let id = publish_template(&ctx, "abandoned_cart").await;
        let body = json!({ "id": "e1", "type": "cart_updated", "customer": { "id": "cy" }, "cart": { "id": "c", "value": 60 } });
        assert_eq!(send(&app, hook("shop", &secret, &body.to_string())).await.status, StatusCode::ACCEPTED);
        ctx.engine.tick().await.unwrap();

        // A new process (a fresh context and engine) after the deadline.
        drop(app);
        drop(ctx);
        let ctx2 = Ctx::with_clock(db.clone(), Default::default(), clock.clone());
        service::workflows::pause(&ctx2, &Actor::system(), &id).await.unwrap();
        clock.set(T0 + 45 * MIN);
        ctx2.engine.tick().await.unwrap();
        assert_eq!(count(&db, "select count(*) from offer").await, 0, "paused: the run is held");
        service::workflows::resume(&ctx2, &Actor::system(), &id).await.unwrap();
        ctx2.engine.tick().await.unwrap();
        assert_eq!(count(&db, "select count(*) from offer").await, 1, "resumed: the overdue timer fires");
    }
}

#[tokio::test]
async fn an_api_redemption_converts_an_expired_code_is_refused_and_a_checkout_during_a_pause_counts() {
    for db in testing::all().await {
        let clock = Arc::new(ManualClock::default());
        clock.set(T0);
        let ctx = Ctx::with_clock(db.clone(), Default::default(), clock.clone());
        let app = router(&ctx);
        let secret = source(&ctx).await;
        let id = publish_template(&ctx, "abandoned_cart").await;
        let editor = common::key(&db, app::model::Role::Editor).await;
        let post = |body: serde_json::Value| {
            let req = hook("shop", &secret, &body.to_string());
            let app = app.clone();
            async move { assert_eq!(send(&app, req).await.status, StatusCode::ACCEPTED) }
        };
        for c in ["bob", "cy"] {
            let cart = json!({ "id": format!("cart-{c}"), "type": "cart_updated", "customer": { "id": c }, "cart": { "id": c, "value": 640 } });
            post(cart).await;
        }
        ctx.engine.tick().await.unwrap();
        clock.set(T0 + 30 * MIN);
        ctx.engine.tick().await.unwrap();
        assert_eq!(count(&db, "select count(*) from offer").await, 2);

        // The shop's backend redeems Bob's code: the run waiting for it converts.
        let bob_code = text(&db, "select code from offer where customer_id = 'bob'").await;
        let uri = format!("/api/v1/offers/{}/redeem", bob_code.to_lowercase());
        let r = common::api(&app, axum::http::Method::POST, &uri, &editor, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json()["status"], "redeemed");
        ctx.engine.tick().await.unwrap();
        assert_eq!(text(&db, "select status from run where customer_id = 'bob'").await, "converted");
        assert_eq!(
            text(
                &db,
                "select source_id || ' ' || name from event where customer_id = 'bob' and name = 'offer_redeemed'"
            )
            .await,
            "nudge offer_redeemed",
            "the redemption is on the customer's timeline"
        );
        let again = common::api(&app, axum::http::Method::POST, &uri, &editor, None).await;
        assert_eq!(again.status, StatusCode::CONFLICT);
        assert!(again.json()["detail"].as_str().unwrap().contains("already redeemed"), "{}", again.body);

        // Cy comes back a day later with the expired code: refused, with the reason in the trace.
        let cy_code = text(&db, "select code from offer where customer_id = 'cy'").await;
        clock.set(T0 + 30 * MIN + 25 * 60 * MIN);
        ctx.engine.tick().await.unwrap();
        post(json!({ "id": "order-cy", "type": "order_completed", "customer": { "id": "cy" }, "coupon": cy_code }))
            .await;
        ctx.engine.tick().await.unwrap();
        assert_eq!(count(&db, "select count(*) from offer where customer_id = 'cy' and redeemed_at is null").await, 1);
        let refusal = trace_of(&db, "cy").await.into_iter().find(|s| s.outcome == "redemption_refused");
        let refusal = refusal.and_then(|s| s.detail).unwrap_or_default();
        assert!(refusal.contains(&cy_code) && refusal.contains("expired"), "{refusal}");
        assert_eq!(text(&db, "select status from run where customer_id = 'cy'").await, "completed");

        // Dee checks out while the workflow is paused: when it resumes past the
        // deadline, the checkout counts and no offer is made.
        let t1 = T0 + 3 * 24 * 60 * MIN;
        clock.set(t1);
        post(json!({ "id": "cart-dee", "type": "cart_updated", "customer": { "id": "dee" }, "cart": { "id": "d", "value": 640 } })).await;
        ctx.engine.tick().await.unwrap();
        service::workflows::pause(&ctx, &Actor::system(), &id).await.unwrap();
        clock.set(t1 + 10 * MIN);
        post(json!({ "id": "co-dee", "type": "checkout_started", "customer": { "id": "dee" }, "cart": { "id": "d" } }))
            .await;
        ctx.engine.tick().await.unwrap();
        assert_eq!(text(&db, "select status from run where customer_id = 'dee'").await, "waiting");
        clock.set(t1 + 45 * MIN);
        service::workflows::resume(&ctx, &Actor::system(), &id).await.unwrap();
        ctx.engine.tick().await.unwrap();
        assert_eq!(text(&db, "select status from run where customer_id = 'dee'").await, "completed");
        assert_eq!(count(&db, "select count(*) from offer where customer_id = 'dee'").await, 0);
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

/// Publishes the abandoned-cart template with its reminder webhook pointed at `url`.
async fn publish_cart_reminder_to(ctx: &Ctx, url: &str) {
    let mut w = app::workflow::templates::abandoned_cart();
    for n in &mut w.nodes {
        if let app::workflow::NodeKind::Webhook { url: u, .. } = &mut n.kind {
            *u = url.to_string();
        }
    }
    let input = NewWorkflow { definition: Some(w), ..Default::default() };
    let created = service::workflows::create(ctx, &Actor::system(), input).await.unwrap();
    service::workflows::publish(ctx, &Actor::system(), &created.summary.workflow_id).await.unwrap();
}

#[tokio::test]
async fn a_webhook_is_retried_with_backoff_and_the_same_idempotency_key_until_it_succeeds() {
    use server::delivery::{Delivery, DeliveryConfig};
    for db in testing::all().await {
        let clock = Arc::new(ManualClock::default());
        clock.set(T0);
        let ctx = Ctx::with_clock(db.clone(), Default::default(), clock.clone());
        let app = router(&ctx);
        let secret = source(&ctx).await;
        let (url, seen) = flaky_receiver().await;

        // The abandoned-cart template, its reminder pointed at the receiver.
        publish_cart_reminder_to(&ctx, &url).await;

        let body = json!({ "id": "e1", "type": "cart_updated", "customer": { "id": "cy", "email": "c@y.io" }, "cart": { "id": "c9", "value": 20 } });
        assert_eq!(send(&app, hook("shop", &secret, &body.to_string())).await.status, StatusCode::ACCEPTED);
        ctx.engine.tick().await.unwrap();
        clock.set(T0 + 30 * MIN);
        ctx.engine.tick().await.unwrap();
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

/// Waits (in real time) until `sql` counts `want`, or fails after 10 s.
async fn eventually(db: &Db, sql: &str, want: i64) {
    for _ in 0..200 {
        if count(db, sql).await == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{sql} never counted {want} (counts {})", count(db, sql).await);
}

/// The running delivery worker: the engine commits a new webhook already
/// leased to it and hands it over, so it is sent before any lease round could
/// take it; the worker's attempts are recorded by the engine, and a retry
/// falls due on the worker's own schedule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_worker_is_handed_new_webhooks_and_its_attempts_are_recorded_by_the_engine() {
    use server::delivery::{Delivery, DeliveryConfig};
    for db in testing::all().await {
        let clock = Arc::new(ManualClock::default());
        clock.set(T0);
        let ctx = Ctx::with_clock(db.clone(), Default::default(), clock.clone());
        let app = router(&ctx);
        let secret = source(&ctx).await;
        let (url, seen) = flaky_receiver().await;
        publish_cart_reminder_to(&ctx, &url).await;
        let config = DeliveryConfig { base_delay: std::time::Duration::from_secs(2), ..Default::default() };
        let worker = Delivery::new(ctx.clone(), clock.clone(), config).unwrap().spawn();

        let body = json!({ "id": "e1", "type": "cart_updated", "customer": { "id": "cy" }, "cart": { "id": "c9", "value": 20 } });
        assert_eq!(send(&app, hook("shop", &secret, &body.to_string())).await.status, StatusCode::ACCEPTED);
        clock.set(T0 + 30 * MIN);
        ctx.engine.tick().await.unwrap();
        let lease_end = count(&db, "select next_attempt_at from action where kind = 'call_webhook'").await;
        assert!(lease_end > T0 + 30 * MIN, "inserted leased to the worker: {lease_end}");
        // Sent and recorded with the clock still at the timer: no lease round could have taken it.
        eventually(&db, "select attempts from action where kind = 'call_webhook'", 1).await;
        assert_eq!(text(&db, "select last_error from action").await, "HTTP 503");
        assert_eq!(seen.lock().unwrap().len(), 1);
        // The retries fall due on the clock and are leased by the worker's rounds.
        clock.set(T0 + 30 * MIN + 3_000);
        eventually(&db, "select attempts from action where kind = 'call_webhook'", 2).await;
        clock.set(T0 + 30 * MIN + 10_000);
        eventually(&db, "select count(*) from action where kind = 'call_webhook' and status = 'done'", 1).await;
        assert_eq!(count(&db, "select attempts from action").await, 3);
        let requests = seen.lock().unwrap().clone();
        assert_eq!(requests.len(), 3, "each attempt sent once: {requests:?}");
        assert!(requests.iter().all(|(k, _)| k == &requests[0].0), "{requests:?}");
        worker.abort();
    }
}

#[tokio::test]
async fn a_failed_webhook_shows_on_its_completed_run_and_an_editor_retries_it_with_the_same_key() {
    use axum::http::Method;
    use server::delivery::{Delivery, DeliveryConfig};
    for db in testing::all().await {
        let clock = Arc::new(ManualClock::default());
        clock.set(T0);
        let ctx = Ctx::with_clock(db.clone(), Default::default(), clock.clone());
        let app = router(&ctx);
        let secret = source(&ctx).await;
        let (url, seen) = flaky_receiver().await;
        let editor = common::key(&db, app::model::Role::Editor).await;
        let viewer = common::key(&db, app::model::Role::Viewer).await;

        // The abandoned-cart template, its reminder pointed at the receiver
        // (which fails twice): Cy's small cart gets the reminder, Dee's an offer.
        let mut w = app::workflow::templates::abandoned_cart();
        for n in &mut w.nodes {
            if let app::workflow::NodeKind::Webhook { url: u, .. } = &mut n.kind {
                *u = url.clone();
            }
        }
        let input = NewWorkflow { name: Some("Carts".into()), definition: Some(w), ..Default::default() };
        let created = service::workflows::create(&ctx, &Actor::system(), input).await.unwrap();
        service::workflows::publish(&ctx, &Actor::system(), &created.summary.workflow_id).await.unwrap();
        for (c, value) in [("cy", 20), ("dee", 80)] {
            let body = json!({ "id": format!("e-{c}"), "type": "cart_updated", "customer": { "id": c }, "cart": { "id": c, "value": value } });
            assert_eq!(send(&app, hook("shop", &secret, &body.to_string())).await.status, StatusCode::ACCEPTED);
        }
        ctx.engine.tick().await.unwrap();
        clock.set(T0 + 30 * MIN);
        ctx.engine.tick().await.unwrap();
        let cy_run = text(&db, "select run_id from run where customer_id = 'cy'").await;
        let dee_run = text(&db, "select run_id from run where customer_id = 'dee'").await;
        let runs = |query: &'static str| {
            let app = app.clone();
            let viewer = viewer.clone();
            async move {
                let r = common::api(&app, Method::GET, &format!("/api/v1/runs{query}"), &viewer, None).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.body);
                r.json()["items"].as_array().unwrap().clone()
            }
        };

        // The list says what each run waits for and how its webhook stands.
        let all = runs("").await;
        let by_customer = |items: &[serde_json::Value], c: &str| {
            items.iter().find(|r| r["customer_id"] == c).cloned().unwrap_or_else(|| panic!("no run of {c}"))
        };
        let dee = by_customer(&all, "dee");
        assert_eq!(dee["status"], "waiting");
        assert_eq!(dee["waiting_for"], "Waiting for goal: order completed with the code");
        assert_eq!(dee["workflow_name"], "Carts");
        let cy = by_customer(&all, "cy");
        assert_eq!(cy["status"], "completed", "the run is over while its webhook is not");
        assert!(cy["waiting_for"].is_null());
        assert_eq!(cy["action_health"], json!({ "pending": 1, "retrying": 0, "failed": 0 }));
        assert_eq!(runs("?actions=pending").await.len(), 1);
        assert!(runs("?actions=failing").await.is_empty());

        // Two attempts, both 503: failing, then failed for good.
        let config =
            DeliveryConfig { max_attempts: 2, base_delay: std::time::Duration::from_secs(2), ..Default::default() };
        let delivery = Arc::new(Delivery::new(ctx.clone(), clock.clone(), config).unwrap());
        assert_eq!(delivery.clone().deliver_due().await.unwrap(), 1);
        let failing = runs("?actions=failing").await;
        assert_eq!(failing.len(), 1);
        assert_eq!(failing[0]["action_health"]["retrying"], 1);
        clock.set(T0 + 30 * MIN + 3_000);
        assert_eq!(delivery.clone().deliver_due().await.unwrap(), 1);
        let failing = runs("?actions=failing&status=completed").await;
        assert_eq!(failing.len(), 1);
        assert_eq!(failing[0]["run_id"], cy_run.as_str());
        assert_eq!(failing[0]["action_health"], json!({ "pending": 0, "retrying": 0, "failed": 1 }));
        assert!(runs("?actions=pending").await.is_empty());
        let bad = common::api(&app, Method::GET, "/api/v1/runs?actions=broken", &viewer, None).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(bad.json()["error"], "invalid_input");
        let detail = common::api(&app, Method::GET, &format!("/api/v1/runs/{cy_run}"), &viewer, None).await.json();
        let action = &detail["actions"][0];
        assert_eq!((action["kind"].as_str(), action["status"].as_str()), (Some("call_webhook"), Some("failed")));
        assert_eq!((action["attempts"].as_i64(), action["last_error"].as_str()), (Some(2), Some("HTTP 503")));
        let key = action["action_key"].as_str().unwrap().to_string();

        // Who may retry what: a viewer may not; unknown keys, offers and
        // webhooks that are not failed are refused with the reason.
        let retry = |key: String, auth: String| {
            let app = app.clone();
            async move { common::api(&app, Method::POST, &format!("/api/v1/actions/{key}/retry"), &auth, None).await }
        };
        let r = retry(key.clone(), viewer.clone()).await;
        assert_eq!((r.status, r.json()["error"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
        let r = retry(format!("{cy_run}:nowhere"), editor.clone()).await;
        assert_eq!((r.status, r.json()["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
        let r = retry(format!("{dee_run}:offer"), editor.clone()).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert!(r.json()["detail"].as_str().unwrap().contains("issue offer"), "{}", r.body);

        // The editor's retry: pending again with a new round of attempts, once.
        let r = retry(key.clone(), editor.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!((r.json()["status"].as_str(), r.json()["attempts"].as_i64()), (Some("pending"), Some(0)));
        let again = retry(key.clone(), editor.clone()).await;
        assert_eq!((again.status, again.json()["error"].as_str()), (StatusCode::CONFLICT, Some("conflict")));
        assert!(again.json()["detail"].as_str().unwrap().contains("still being delivered"), "{}", again.body);

        // Delivery picks it up at once; the receiver now answers, and sees the same key.
        assert_eq!(delivery.clone().deliver_due().await.unwrap(), 1);
        let detail = common::api(&app, Method::GET, &format!("/api/v1/runs/{cy_run}"), &viewer, None).await.json();
        assert_eq!(detail["actions"][0]["status"], "done");
        assert_eq!(detail["actions"][0]["attempts"], 1);
        assert!(detail["actions"][0]["last_error"].is_null());
        assert_eq!(detail["action_health"], json!({ "pending": 0, "retrying": 0, "failed": 0 }));
        assert!(runs("?actions=failing").await.is_empty());
        let delivered = retry(key.clone(), editor.clone()).await;
        assert_eq!(delivered.status, StatusCode::CONFLICT);
        assert!(delivered.json()["detail"].as_str().unwrap().contains("was delivered"), "{}", delivered.body);
        let requests = seen.lock().unwrap().clone();
        assert_eq!(requests.len(), 3);
        assert!(requests.iter().all(|(k, _)| *k == key), "one idempotency key for every attempt: {requests:?}");
    }
}

#[tokio::test]
async fn a_high_value_transaction_alerts_an_advisor_and_offers_a_code_that_redeems_once() {
    use axum::http::Method;
    for db in testing::all().await {
        let clock = Arc::new(ManualClock::default());
        clock.set(T0);
        let ctx = Ctx::with_clock(db.clone(), Default::default(), clock.clone());
        let app = router(&ctx);
        let secret = source(&ctx).await;
        let editor = common::key(&db, app::model::Role::Editor).await;
        let created = common::api(
            &app,
            Method::POST,
            "/api/v1/workflows",
            &editor,
            Some(json!({ "template": "high_value_transaction" })),
        )
        .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let id = created.json()["workflow_id"].as_str().unwrap().to_string();
        let published =
            common::api(&app, Method::POST, &format!("/api/v1/workflows/{id}/publish"), &editor, None).await;
        assert_eq!(published.status, StatusCode::OK, "{}", published.body);

        for (n, (who, amount)) in [("ana", 12_500), ("bob", 800), ("cy", 64_000)].into_iter().enumerate() {
            let body = json!({ "id": format!("t{n}"), "type": "transaction_completed", "customer": { "id": who },
                               "amount": amount, "currency": "EUR" });
            assert_eq!(send(&app, hook("shop", &secret, &body.to_string())).await.status, StatusCode::ACCEPTED);
        }
        ctx.engine.tick().await.unwrap();

        // Two runs (800 EUR is below the trigger's filter), each waiting at the goal.
        let runs = common::api(&app, Method::GET, "/api/v1/runs?status=waiting", &editor, None).await.json();
        let runs = runs["items"].as_array().unwrap();
        assert_eq!(runs.len(), 2, "{runs:?}");
        assert!(runs.iter().all(|r| r["at_node"] == "accepted"), "{runs:?}");
        let alerts = common::api(&app, Method::GET, "/api/v1/alerts?status=open", &editor, None).await.json();
        let messages: Vec<&str> =
            alerts["items"].as_array().unwrap().iter().map(|a| a["message"].as_str().unwrap()).collect();
        assert!(messages.contains(&"cy moved 64000 EUR: call them within a day"), "{messages:?}");
        assert_eq!(messages.len(), 2);
        let offers = common::api(&app, Method::GET, "/api/v1/offers?status=active", &editor, None).await.json();
        let offers = offers["items"].as_array().unwrap().clone();
        assert_eq!(offers.len(), 2);
        let code_of =
            |who: &str| offers.iter().find(|o| o["customer_id"] == who).unwrap()["code"].as_str().unwrap().to_string();
        let (ana_code, cy_code) = (code_of("ana"), code_of("cy"));
        assert!(ana_code.starts_with("PRIORITY-") && ana_code != cy_code);

        // Ana accepts with her code: her run converts and the code is used.
        clock.set(T0 + 60 * MIN);
        let accept = json!({ "id": "a1", "type": "offer_accepted", "customer": { "id": "ana" }, "coupon": ana_code });
        assert_eq!(send(&app, hook("shop", &secret, &accept.to_string())).await.status, StatusCode::ACCEPTED);
        ctx.engine.tick().await.unwrap();
        let converted = common::api(&app, Method::GET, "/api/v1/runs?status=converted", &editor, None).await.json();
        assert_eq!(converted["items"][0]["customer_id"], "ana");
        let offer = common::api(&app, Method::GET, &format!("/api/v1/offers/{ana_code}"), &editor, None).await.json();
        assert_eq!(offer["status"], "redeemed");

        // The API redeems Cy's code once; the second try says why not, as does Ana's used code.
        let url = format!("/api/v1/offers/{cy_code}/redeem");
        let first = common::api(&app, Method::POST, &url, &editor, None).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.body);
        let again = common::api(&app, Method::POST, &url, &editor, None).await;
        assert_eq!(again.status, StatusCode::CONFLICT);
        assert!(again.json()["detail"].as_str().unwrap().contains("already redeemed"), "{}", again.body);
        let used = common::api(&app, Method::POST, &format!("/api/v1/offers/{ana_code}/redeem"), &editor, None).await;
        assert_eq!(used.status, StatusCode::CONFLICT);
        let unknown = common::api(&app, Method::POST, "/api/v1/offers/NOPE-1/redeem", &editor, None).await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);

        // An advisor acknowledges, then resolves, Cy's alert.
        let alert = alerts["items"].as_array().unwrap().iter().find(|a| a["customer_id"] == "cy").unwrap().clone();
        let alert_id = alert["alert_id"].as_str().unwrap();
        let ack = common::api(&app, Method::POST, &format!("/api/v1/alerts/{alert_id}/ack"), &editor, None).await;
        assert_eq!(ack.json()["status"], "acknowledged");
        let done = common::api(&app, Method::POST, &format!("/api/v1/alerts/{alert_id}/resolve"), &editor, None).await;
        assert_eq!(done.json()["status"], "resolved");
        let twice = common::api(&app, Method::POST, &format!("/api/v1/alerts/{alert_id}/resolve"), &editor, None).await;
        assert_eq!(twice.status, StatusCode::CONFLICT);
    }
}

/// Trigger → update profile → delay → condition on the updated profile → A/B
/// split → webhook (A) or alert (B): the kinds the templates do not use.
fn onboarding(url: &str) -> app::workflow::Workflow {
    use app::workflow::rules::{Join, Op, Operand, Rule, RuleGroup, RuleItem, ValueType};
    use app::workflow::validate::END;
    use app::workflow::*;
    let node = |id: &str, x: f64, kind: NodeKind| Node { id: id.into(), x, y: 100.0, kind };
    let edge = |from: &str, port: &str, to: &str| Edge { from: from.into(), port: port.into(), to: to.into() };
    Workflow {
        schema_version: SCHEMA_VERSION,
        settings: Settings::default(),
        nodes: vec![
            node("trigger", 0.0, NodeKind::Trigger { sources: vec![], event: "signed_up".into(), filter: None }),
            node(
                "tag",
                250.0,
                NodeKind::UpdateProfile {
                    changes: vec![
                        ProfileChange::Set { attribute: "tier".into(), value: "trial".into() },
                        ProfileChange::AddTag { tag: "onboarding".into() },
                    ],
                },
            ),
            node(
                "later",
                500.0,
                NodeKind::Delay { span: Some(Span { amount: 2, unit: Unit::Hours }), until_time_of_day: None },
            ),
            node(
                "still_trial",
                750.0,
                NodeKind::Condition {
                    rules: RuleGroup {
                        join: Join::All,
                        items: vec![RuleItem::Rule(Rule {
                            operand: Operand::Profile { attribute: "tier".into() },
                            op: Op::Eq,
                            value_type: ValueType::String,
                            value: json!("trial"),
                        })],
                    },
                },
            ),
            node(
                "ab",
                1000.0,
                NodeKind::Split {
                    branches: vec![
                        SplitBranch { label: "a".into(), weight: 50 },
                        SplitBranch { label: "b".into(), weight: 50 },
                    ],
                },
            ),
            node(
                "nudge",
                1250.0,
                NodeKind::Webhook {
                    method: "POST".into(),
                    url: url.into(),
                    headers: vec![],
                    body: r#"{"customer":"{{customer.id}}"}"#.into(),
                },
            ),
            node(
                "call",
                1250.0,
                NodeKind::Alert {
                    severity: Severity::Info,
                    message: "Call {{customer.id}}".into(),
                    audience: "Sales".into(),
                },
            ),
        ],
        edges: vec![
            edge("trigger", "next", "tag"),
            edge("tag", "next", "later"),
            edge("later", "next", "still_trial"),
            edge("still_trial", "yes", "ab"),
            edge("still_trial", "no", END),
            edge("ab", "a", "nudge"),
            edge("ab", "b", "call"),
            edge("nudge", "next", END),
            edge("call", "next", END),
        ],
    }
}

#[tokio::test]
async fn profile_updates_delays_conditions_and_splits_run_end_to_end() {
    use server::delivery::{Delivery, DeliveryConfig};
    for db in testing::all().await {
        let clock = Arc::new(ManualClock::default());
        clock.set(T0);
        let ctx = Ctx::with_clock(db.clone(), Default::default(), clock.clone());
        let app = router(&ctx);
        let secret = source(&ctx).await;
        let (url, seen) = flaky_receiver().await;
        let editor = common::key(&db, app::model::Role::Editor).await;
        let definition = serde_json::to_value(onboarding(&url)).unwrap();
        let created = common::api(
            &app,
            axum::http::Method::POST,
            "/api/v1/workflows",
            &editor,
            Some(json!({ "name": "Onboarding", "definition": definition })),
        )
        .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let id = created.json()["workflow_id"].as_str().unwrap().to_string();
        let url_publish = format!("/api/v1/workflows/{id}/publish");
        let published = common::api(&app, axum::http::Method::POST, &url_publish, &editor, None).await;
        assert_eq!(published.status, StatusCode::OK, "{}", published.body);

        for i in 0..20 {
            let body = json!({ "id": format!("s{i}"), "type": "signed_up", "customer": { "id": format!("u{i}") } });
            assert_eq!(send(&app, hook("shop", &secret, &body.to_string())).await.status, StatusCode::ACCEPTED);
        }
        ctx.engine.tick().await.unwrap();
        // The profile is updated at once; every run waits at the delay.
        let profile = text(&db, "select attributes from customer where customer_id = 'u7'").await;
        let profile: serde_json::Value = serde_json::from_str(&profile).unwrap();
        assert_eq!(profile["tier"], "trial", "{profile}");
        assert_eq!(count(&db, "select count(*) from run where status = 'waiting' and at_node = 'later'").await, 20);

        // One customer converts to paid meanwhile: the condition sends them to the end.
        let changed = json!({ "id": "p1", "type": "plan_changed", "customer": { "id": "u0", "tier": "paid" } });
        let mapped = app::ingest::mapping::Mapping {
            event_name: "$.type".into(),
            customer_id: "$.customer.id".into(),
            event_id: "$.id".into(),
            timestamp: None,
            profile: vec![app::ingest::mapping::ProfileField {
                attribute: "tier".into(),
                path: "$.customer.tier".into(),
            }],
            offer_code: None,
        };
        let input = service::sources::NewSourceInput { name: "Billing", slug: "billing", mapping: &mapped };
        let billing = service::sources::create(&ctx, &Actor::system(), input).await.unwrap().secret;
        assert_eq!(send(&app, hook("billing", &billing, &changed.to_string())).await.status, StatusCode::ACCEPTED);
        ctx.engine.tick().await.unwrap();

        clock.set(T0 + 119 * MIN);
        ctx.engine.tick().await.unwrap();
        assert_eq!(count(&db, "select count(*) from run where status = 'waiting'").await, 20, "not before two hours");
        clock.set(T0 + 120 * MIN);
        ctx.engine.tick().await.unwrap();
        assert_eq!(count(&db, "select count(*) from run where status = 'completed'").await, 20);
        let ended_early =
            trace_of(&db, "u0").await.iter().filter(|s| s.node == "still_trial" && s.outcome == "no").count();
        assert_eq!(ended_early, 1, "u0 is paid now");
        let webhooks = count(&db, "select count(*) from action where kind = 'call_webhook'").await;
        let alerts = count(&db, "select count(*) from alert").await;
        assert_eq!(webhooks + alerts, 19, "each trial customer takes one branch");
        assert!(webhooks >= 3 && alerts >= 3, "both branches are used: {webhooks} / {alerts}");
        assert_eq!(count(&db, "select count(*) from alert where message = 'Call u0'").await, 0);

        // The split is deterministic: the same customer always takes the same branch,
        // and replaying the timers does nothing.
        ctx.engine.tick().await.unwrap();
        assert_eq!(count(&db, "select count(*) from action where kind = 'update_profile'").await, 20);
        assert_eq!(count(&db, "select count(*) from action").await, 20 + 19);

        // Webhooks go out (the receiver fails twice first; retries follow the backoff).
        let config = DeliveryConfig { base_delay: std::time::Duration::from_millis(1), ..Default::default() };
        let delivery = Arc::new(Delivery::new(ctx.clone(), clock.clone(), config).unwrap());
        for step in 1..=5 {
            clock.set(T0 + 120 * MIN + step * MIN);
            delivery.clone().deliver_due().await.unwrap();
        }
        assert_eq!(
            count(&db, "select count(*) from action where kind = 'call_webhook' and status = 'done'").await,
            webhooks
        );
        let bodies: Vec<String> = seen.lock().unwrap().iter().map(|(_, b)| b.clone()).collect();
        assert!(bodies.iter().all(|b| b.starts_with("{\"customer\":\"u")), "{bodies:?}");
        assert_eq!(bodies.len() as i64, webhooks + 2);
    }
}

#[tokio::test]
async fn runs_offers_and_alerts_stream_live_as_the_executor_commits_them() {
    use axum::http::header;
    use tower::ServiceExt;
    for db in testing::all().await {
        let clock = Arc::new(ManualClock::default());
        clock.set(T0);
        let ctx = Ctx::with_clock(db.clone(), Default::default(), clock.clone());
        let app = router(&ctx);
        let secret = source(&ctx).await;
        publish_template(&ctx, "high_value_transaction").await;
        let viewer = common::key(&db, app::model::Role::Viewer).await;
        let req = axum::http::Request::get("/api/v1/stream?topics=runs,offers,alerts")
            .header(header::AUTHORIZATION, format!("Bearer {viewer}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let mut body = app.clone().oneshot(req).await.unwrap().into_body();
        common::read_until(&mut body, "event: ready").await;

        let body_json =
            json!({ "id": "t1", "type": "transaction_completed", "customer": { "id": "dee" }, "amount": 20_000 });
        assert_eq!(send(&app, hook("shop", &secret, &body_json.to_string())).await.status, StatusCode::ACCEPTED);
        ctx.engine.tick().await.unwrap();

        let mut text = common::read_until(&mut body, "event: offers").await;
        if !text.contains("event: alerts") {
            text += &common::read_until(&mut body, "event: alerts").await;
        }
        let data = |topic: &str| -> serde_json::Value {
            let mut lines = text.lines().skip_while(|l| *l != format!("event: {topic}"));
            let line = lines.find(|l| l.starts_with("data:")).unwrap();
            serde_json::from_str(line.trim_start_matches("data:").trim()).unwrap()
        };
        let run = data("runs");
        assert_eq!((run["customer_id"].as_str(), run["status"].as_str()), (Some("dee"), Some("waiting")));
        let offer = data("offers");
        assert!(offer["code"].as_str().unwrap().starts_with("PRIORITY-"), "{offer}");
        assert_eq!(offer["status"], "active");
        let alert = data("alerts");
        assert_eq!(alert["severity"], "info");
        assert_eq!(alert["run_id"], run["run_id"]);
        assert!(!text.contains("event: events"), "only the topics asked for");
    }
}

#[tokio::test]
async fn the_dashboard_figures_time_series_and_funnel_count_what_the_executor_did() {
    use axum::http::Method;
    for db in testing::all().await {
        let clock = Arc::new(ManualClock::default());
        clock.set(T0);
        let ctx = Ctx::with_clock(db.clone(), Default::default(), clock.clone());
        let app = router(&ctx);
        let secret = source(&ctx).await;
        let id = publish_template(&ctx, "abandoned_cart").await;
        publish_template(&ctx, "high_value_transaction").await;
        let viewer = common::key(&db, app::model::Role::Viewer).await;
        let post = |body: serde_json::Value| {
            let req = hook("shop", &secret, &body.to_string());
            let app = app.clone();
            async move { assert_eq!(send(&app, req).await.status, StatusCode::ACCEPTED) }
        };
        for (c, value) in [("ana", 80), ("bob", 640), ("cy", 20)] {
            post(json!({ "id": format!("cart-{c}"), "type": "cart_updated", "customer": { "id": c }, "cart": { "id": c, "value": value } })).await;
        }
        post(
            json!({ "id": "co-ana", "type": "checkout_started", "customer": { "id": "ana" }, "cart": { "id": "ana" } }),
        )
        .await;
        // A big transaction: its alert and offer follow the event at once.
        post(json!({ "id": "t1", "type": "transaction_completed", "customer": { "id": "dee" }, "amount": 20_000 }))
            .await;
        ctx.engine.tick().await.unwrap();
        clock.set(T0 + 30 * MIN);
        ctx.engine.tick().await.unwrap();
        let code = text(&db, "select code from offer where customer_id = 'bob'").await;
        post(json!({ "id": "order-bob", "type": "order_completed", "customer": { "id": "bob" }, "coupon": code }))
            .await;
        ctx.engine.tick().await.unwrap();
        // A replayed drain counts nothing twice.
        ctx.engine.tick().await.unwrap();

        let s = common::api(&app, Method::GET, "/api/v1/metrics/summary?range=1h", &viewer, None).await;
        assert_eq!(s.status, StatusCode::OK, "{}", s.body);
        let s = s.json();
        let now = &s["current"];
        assert_eq!(now["events"], 6);
        assert_eq!(now["runs_started"], 4);
        assert_eq!(now["runs_converted"], 1);
        assert_eq!((now["offers_issued"].as_i64(), now["offers_redeemed"].as_i64()), (Some(2), Some(1)));
        assert_eq!(now["alerts_raised"], 2);
        assert!((now["conversion_rate"].as_f64().unwrap() - 0.25).abs() < 1e-9);
        // Only actions an event caused count (a timer's are not "event to action").
        let p50 = now["latency_p50_ms"].as_f64().unwrap();
        assert!(p50 >= 0.0 && p50 <= now["latency_p95_ms"].as_f64().unwrap(), "{now}");
        assert_eq!(s["previous"]["events"], 0);
        assert_eq!(s["open_alerts"], 2);
        assert_eq!(s["top_events"][0], json!({ "name": "cart_updated", "id": "cart_updated", "count": 3 }));
        assert_eq!(s["top_sources"][0]["name"], "Shop");
        assert_eq!(s["top_sources"][0]["count"], 6);
        assert_eq!(s["offers_by_workflow"][0]["name"], "Abandoned cart rescue");
        assert_eq!(s["offers_by_workflow"][0]["redeemed"], 1);
        // Live counts carry ids: every source's and workflow's name comes along.
        let shop = s["top_sources"][0]["id"].as_str().unwrap();
        assert_eq!(s["source_names"][shop], "Shop");
        assert_eq!(s["workflow_names"][id.as_str()], "Abandoned cart rescue");
        assert_eq!(s["setup"], json!({ "source": true, "workflow": true, "events": true }));
        let histogram: Vec<i64> =
            now["latency_histogram"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        assert_eq!(histogram.len(), 20, "one count per bucket of LATENCY_BOUNDS_MS");
        assert!(histogram.iter().sum::<i64>() >= 2, "the alert and offer the big transaction caused: {histogram:?}");

        let series =
            common::api(&app, Method::GET, "/api/v1/metrics/timeseries?metric=events&range=1h", &viewer, None).await;
        let series = series.json();
        assert_eq!(series["step_ms"], 60_000);
        let points = series["points"].as_array().unwrap();
        assert_eq!(points.len(), 60);
        assert_eq!(points.iter().map(|p| p["v"].as_i64().unwrap()).sum::<i64>(), 6);

        let f = common::api(&app, Method::GET, &format!("/api/v1/workflows/{id}/funnel?range=1h"), &viewer, None).await;
        assert_eq!(f.status, StatusCode::OK, "{}", f.body);
        let f = f.json();
        assert_eq!(
            (f["version"].as_i64(), f["entered"].as_i64(), f["converted"].as_i64()),
            (Some(1), Some(3), Some(1))
        );
        let step = |node: &str| f["steps"].as_array().unwrap().iter().find(|s| s["node"] == node).unwrap().clone();
        assert_eq!(f["steps"][0]["node"], "trigger");
        let wait = step("wait_checkout");
        assert_eq!(wait["entered"], 3, "resuming is not entering again: {wait}");
        let exits: std::collections::HashMap<String, i64> = wait["exits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap().to_string(), e["count"].as_i64().unwrap()))
            .collect();
        assert_eq!(exits, [("received".to_string(), 1), ("timed_out".to_string(), 2)].into_iter().collect());
        assert_eq!(step("offer")["entered"], 1);
        assert_eq!(step("converted")["waiting"], 0);
        // Branches: the checkout ended ana's run at the wait; bob and cy went on
        // down `timed_out`, which is no loss. Bob converted, cy got the reminder.
        assert_eq!(
            wait["branches"],
            json!([
                { "output": "received", "count": 1, "to": null, "nested": false },
                { "output": "timed_out", "count": 2, "to": "big_cart", "nested": true },
            ])
        );
        assert_eq!(wait["left"], 1);
        let big = step("big_cart");
        assert_eq!(
            (big["depth"].as_i64(), big["via_output"].as_str(), big["left"].as_i64()),
            (Some(1), Some("timed_out"), Some(0))
        );
        assert_eq!(step("worth_offer")["via_node"], "alert_service", "drawn under the first path that reaches it");
        assert_eq!((step("reminder")["entered"].as_i64(), step("reminder")["left"].as_i64()), (Some(1), Some(1)));
        assert_eq!((step("converted")["converted"].as_i64(), step("converted")["left"].as_i64()), (Some(1), Some(0)));

        let bad = common::api(&app, Method::GET, "/api/v1/metrics/summary?range=2w", &viewer, None).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(bad.json()["detail"].as_str().unwrap().contains("1h, 24h, 7d, 30d"), "{}", bad.body);
        let bad = common::api(&app, Method::GET, "/api/v1/metrics/timeseries?metric=gossip", &viewer, None).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}

/// Event time, not processing time: a checkout accepted a millisecond before
/// the wait's deadline wins over the timeout, when the timer is looked at
/// 15 minutes late, and when the server restarts after the deadline.
#[tokio::test]
async fn a_checkout_accepted_just_before_the_deadline_wins_however_late_the_timer_and_across_a_restart() {
    for db in testing::all().await {
        let clock = Arc::new(ManualClock::default());
        clock.set(T0);
        let ctx = Ctx::with_clock(db.clone(), Default::default(), clock.clone());
        let app = router(&ctx);
        let secret = source(&ctx).await;
        publish_template(&ctx, "abandoned_cart").await;
        let post = |body: serde_json::Value| {
            let req = hook("shop", &secret, &body.to_string());
            let app = app.clone();
            async move { assert_eq!(send(&app, req).await.status, StatusCode::ACCEPTED) }
        };
        for c in ["ana", "bob", "cy"] {
            post(json!({ "id": format!("cart-{c}"), "type": "cart_updated", "customer": { "id": c }, "cart": { "id": c, "value": 90 } })).await;
        }
        // Ana and Bob check out 1 ms before the deadline; Cy at the deadline.
        clock.set(T0 + 30 * MIN - 1);
        for c in ["ana", "bob"] {
            post(json!({ "id": format!("co-{c}"), "type": "checkout_started", "customer": { "id": c }, "cart": { "id": c } })).await;
        }
        clock.set(T0 + 30 * MIN);
        post(json!({ "id": "co-cy", "type": "checkout_started", "customer": { "id": "cy" }, "cart": { "id": "cy" } }))
            .await;
        // The engine looks at the timers 15 minutes late, then restarts later still.
        clock.set(T0 + 45 * MIN);
        ctx.engine.tick().await.unwrap();
        drop(app);
        drop(ctx);
        clock.set(T0 + 3 * 60 * MIN);
        let ctx = Ctx::with_clock(db.clone(), Default::default(), clock.clone());
        ctx.engine.tick().await.unwrap();
        for c in ["ana", "bob"] {
            let status = text(&db, &format!("select status from run where customer_id = '{c}'")).await;
            assert_eq!(status, "completed", "{c}: the checkout in time won");
        }
        assert_eq!(count(&db, "select count(*) from offer").await, 1, "only Cy, at the deadline, gets an offer");
        assert_eq!(text(&db, "select customer_id from offer").await, "cy");
        let expires: i64 =
            app::with_pool!(&db, p => sqlx::query_scalar("select expires_at from offer").fetch_one(p).await).unwrap();
        assert_eq!(expires, T0 + 30 * MIN + 24 * 60 * MIN, "the late timer acted at its due time");
    }
}

/// One request, one group: two events of one customer are evaluated in the
/// order they came, and the runs they start commit with them.
#[tokio::test]
async fn events_of_one_customer_in_one_batch_are_evaluated_in_order() {
    for db in testing::all().await {
        let clock = Arc::new(ManualClock::default());
        clock.set(T0);
        let ctx = Ctx::with_clock(db.clone(), Default::default(), clock.clone());
        let app = router(&ctx);
        let secret = source(&ctx).await;
        publish_template(&ctx, "abandoned_cart").await;
        let cart = |id: &str, who: &str| json!({ "id": id, "type": "cart_updated", "customer": { "id": who }, "cart": { "id": who, "value": 50 } });
        let checkout = |id: &str, who: &str| json!({ "id": id, "type": "checkout_started", "customer": { "id": who }, "cart": { "id": who } });
        // Ana's cart, then her checkout; Bob's checkout, then his cart.
        let batch = json!([cart("a1", "ana"), checkout("a2", "ana"), checkout("b1", "bob"), cart("b2", "bob")]);
        let r = send(&app, hook("shop", &secret, &batch.to_string())).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        assert_eq!(r.json()["accepted"], 4);
        // Evaluated before the answer: no queue, no tick needed.
        assert_eq!(text(&db, "select status from run where customer_id = 'ana'").await, "completed");
        assert_eq!(text(&db, "select status from run where customer_id = 'bob'").await, "waiting");
        assert_eq!(count(&db, "select count(*) from run").await, 2);
        let steps = trace_of(&db, "ana").await.len();
        assert!(steps >= 3, "Ana's trace has the trigger, the wait and its end: {steps}");
    }
}

/// Webhooks sent at once: the engine evaluates a group while the group
/// before it commits. Whatever overlapped, each customer's cart and checkout
/// are evaluated in order (the checkout finds the run its cart started, still
/// committing), a resent cart is a duplicate of the first, and nothing runs
/// twice — with the default hot state and with one too small to hold the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_sent_at_once_are_evaluated_in_order_while_the_group_before_commits() {
    const CUSTOMERS: usize = 40;
    for (db, hot) in hot_sizes().await {
        let clock = Arc::new(ManualClock::default());
        clock.set(T0);
        let ctx = Ctx::with_engine(db.clone(), Default::default(), clock.clone(), hot);
        let app = router(&ctx);
        let secret = source(&ctx).await;
        publish_template(&ctx, "abandoned_cart").await;
        let mut senders = tokio::task::JoinSet::new();
        for i in 0..CUSTOMERS {
            let (app, secret) = (app.clone(), secret.clone());
            senders.spawn(async move {
                let who = format!("c{i}");
                let cart = json!({ "id": format!("{who}-cart"), "type": "cart_updated", "customer": { "id": who }, "cart": { "id": who, "value": 50 } });
                let checkout = json!({ "id": format!("{who}-checkout"), "type": "checkout_started", "customer": { "id": who }, "cart": { "id": who } });
                let mut ids = Vec::new();
                let steps = [
                    (&cart, StatusCode::ACCEPTED, "accepted"),
                    (&checkout, StatusCode::ACCEPTED, "accepted"),
                    (&cart, StatusCode::OK, "duplicate"),
                ];
                for (body, code, status) in steps {
                    let r = send(&app, hook("shop", &secret, &body.to_string())).await;
                    assert_eq!(r.status, code, "{}", r.body);
                    assert_eq!(r.json()["status"], status, "{who}: {}", r.body);
                    ids.push(r.json()["nudge_id"].as_str().unwrap().to_string());
                }
                assert_eq!(ids[2], ids[0], "{who}: the resent cart is the first one's duplicate");
            });
        }
        while let Some(done) = senders.join_next().await {
            done.unwrap();
        }
        let n = CUSTOMERS as i64;
        assert_eq!(count(&db, "select count(*) from event").await, 2 * n);
        assert_eq!(
            count(&db, "select count(*) from run").await,
            n,
            "one run per customer: the resent cart started none"
        );
        assert_eq!(
            count(&db, "select count(*) from run where status = 'completed' and wake_at is null").await,
            n,
            "every checkout ended its customer's wait"
        );
        assert_eq!(count(&db, "select count(*) from offer").await, 0);
        assert_eq!(count(&db, "select count(*) from alert").await, 0);
        let figures = ctx.engine.counters.snapshot();
        assert_eq!(figures.events, 2 * CUSTOMERS as u64);
        assert_eq!(figures.reevaluated, 0, "no group had to be evaluated again: {figures:?}");
        // Moving the clock past every wait fires nothing: no run is left waiting.
        clock.set(T0 + 120 * MIN);
        ctx.engine.tick().await.unwrap();
        assert_eq!(count(&db, "select count(*) from offer").await, 0);
    }
}

/// The engine learns of a source created after the last publish the moment
/// an event names it: a trigger limited to that source fires.
#[tokio::test]
async fn a_trigger_limited_to_a_source_created_after_publishing_fires() {
    for db in testing::all().await {
        let ctx = Ctx::new(db.clone());
        let app = router(&ctx);
        let shop = source(&ctx).await;
        let mut w = app::workflow::templates::abandoned_cart();
        for node in &mut w.nodes {
            if let app::workflow::NodeKind::Trigger { sources, .. } = &mut node.kind {
                *sources = vec!["pos".into()];
            }
        }
        let input = NewWorkflow { name: Some("Tills".into()), definition: Some(w), ..Default::default() };
        let created = service::workflows::create(&ctx, &Actor::system(), input).await.unwrap();
        service::workflows::publish(&ctx, &Actor::system(), &created.summary.workflow_id).await.unwrap();
        // An event from the shop: the engine loads its sources now.
        let body = json!({ "id": "s1", "type": "cart_updated", "customer": { "id": "ana" }, "cart": { "id": "c" } });
        assert_eq!(send(&app, hook("shop", &shop, &body.to_string())).await.status, StatusCode::ACCEPTED);
        assert_eq!(count(&db, "select count(*) from run").await, 0, "the shop is not the tills");

        let mapping = Mapping {
            event_name: "$.type".into(),
            customer_id: "$.customer.id".into(),
            event_id: "$.id".into(),
            timestamp: None,
            profile: vec![],
            offer_code: None,
        };
        let input = service::sources::NewSourceInput { name: "Tills", slug: "pos", mapping: &mapping };
        let pos = service::sources::create(&ctx, &Actor::system(), input).await.unwrap().secret;
        let body = json!({ "id": "p1", "type": "cart_updated", "customer": { "id": "bob" }, "cart": { "id": "c" } });
        assert_eq!(send(&app, hook("pos", &pos, &body.to_string())).await.status, StatusCode::ACCEPTED);
        assert_eq!(text(&db, "select customer_id from run").await, "bob");
    }
}

/// Archiving a workflow ends the runs it has waiting, each with the reason in
/// its trace, in the same transaction: no timer of theirs fires afterwards.
#[tokio::test]
async fn archiving_a_workflow_cancels_its_waiting_runs_with_the_reason() {
    use axum::http::Method;
    for db in testing::all().await {
        let clock = Arc::new(ManualClock::default());
        clock.set(T0);
        let ctx = Ctx::with_clock(db.clone(), Default::default(), clock.clone());
        let app = router(&ctx);
        let secret = source(&ctx).await;
        let editor = common::key(&db, app::model::Role::Editor).await;
        let workflow_id = publish_template(&ctx, "abandoned_cart").await;
        let cart = |id: &str, who: &str| json!({ "id": id, "type": "cart_updated", "customer": { "id": who }, "cart": { "id": who, "value": 500 } });
        let checkout =
            json!({ "id": "a2", "type": "checkout_started", "customer": { "id": "ana" }, "cart": { "id": "ana" } });
        let batch = json!([cart("a1", "ana"), checkout, cart("b1", "bob"), cart("c1", "cy")]);
        assert_eq!(send(&app, hook("shop", &secret, &batch.to_string())).await.status, StatusCode::ACCEPTED);
        assert_eq!(count(&db, "select count(*) from run where status = 'waiting'").await, 2);

        clock.set(T0 + 5 * MIN);
        let uri = format!("/api/v1/workflows/{workflow_id}");
        let archived = common::api(&app, Method::DELETE, &uri, &editor, None).await;
        assert!(archived.status.is_success(), "{}", archived.body);
        assert_eq!(count(&db, "select count(*) from run where status = 'waiting'").await, 0);
        assert_eq!(count(&db, "select count(*) from run where status = 'cancelled' and wake_at is null").await, 2);
        assert_eq!(text(&db, "select status from run where customer_id = 'ana'").await, "completed", "ended runs stay");
        let why = trace_of(&db, "bob").await.into_iter().find(|s| s.outcome == "cancelled");
        let why = why.and_then(|s| s.detail).unwrap_or_default();
        assert!(why.contains("archived"), "{why}");
        let listed = common::api(&app, Method::GET, "/api/v1/runs?status=cancelled", &editor, None).await.json();
        assert_eq!(listed["items"].as_array().map(Vec::len), Some(2), "{listed}");
        let bad = common::api(&app, Method::GET, "/api/v1/runs?status=paused", &editor, None).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);

        // The wait's deadline passes: nothing fires; new carts start nothing.
        clock.set(T0 + 31 * MIN);
        ctx.engine.tick().await.unwrap();
        assert_eq!(count(&db, "select count(*) from offer").await, 0);
        assert_eq!(count(&db, "select count(*) from alert").await, 0);
        let later = json!([cart("d1", "dee")]);
        assert_eq!(send(&app, hook("shop", &secret, &later.to_string())).await.status, StatusCode::ACCEPTED);
        assert_eq!(count(&db, "select count(*) from run").await, 3);
    }
}

/// Evaluation sees the profile as the event leaves it: the attributes the
/// source maps from this very event, and from the customer's earlier events
/// and profile updates in the same group, not the profile before the group.
#[tokio::test]
async fn an_events_own_profile_attributes_and_earlier_updates_in_its_group_are_what_evaluation_sees() {
    use app::workflow::*;
    let node = |id: &str, x: f64, kind: NodeKind| Node { id: id.into(), x, y: 100.0, kind };
    let edge = |from: &str, port: &str, to: &str| Edge { from: from.into(), port: port.into(), to: to.into() };
    let alert = |message: &str| NodeKind::Alert {
        severity: app::workflow::Severity::Info,
        message: message.into(),
        audience: "Team".into(),
    };
    // A signup alerts with the email it carries; an order then tags the
    // customer and a second node reads the tag back.
    let welcome = Workflow {
        schema_version: SCHEMA_VERSION,
        settings: Settings { re_entry: ReEntry::EveryTime },
        nodes: vec![
            node("trigger", 0.0, NodeKind::Trigger { sources: vec![], event: "signed_up".into(), filter: None }),
            node("hello", 250.0, alert("Welcome {{customer.email}}")),
            node(
                "tag",
                500.0,
                NodeKind::UpdateProfile {
                    changes: vec![ProfileChange::Set { attribute: "tier".into(), value: "new".into() }],
                },
            ),
        ],
        edges: vec![
            edge("trigger", "next", "hello"),
            edge("hello", "next", "tag"),
            edge("tag", "next", app::workflow::validate::END),
        ],
    };
    let orders = Workflow {
        schema_version: SCHEMA_VERSION,
        settings: Settings::default(),
        nodes: vec![
            node("trigger", 0.0, NodeKind::Trigger { sources: vec![], event: "order_completed".into(), filter: None }),
            node("seen", 250.0, alert("First order of a {{customer.tier}} customer, {{customer.email}}")),
        ],
        edges: vec![edge("trigger", "next", "seen"), edge("seen", "next", app::workflow::validate::END)],
    };
    for db in testing::all().await {
        let clock = Arc::new(ManualClock::default());
        clock.set(T0);
        let ctx = Ctx::with_clock(db.clone(), Default::default(), clock.clone());
        let app = router(&ctx);
        let mapping = Mapping {
            event_name: "$.type".into(),
            customer_id: "$.customer.id".into(),
            event_id: "$.id".into(),
            profile: vec![
                ProfileField { attribute: "email".into(), path: "$.customer.email".into() },
                ProfileField { attribute: "tier".into(), path: "$.customer.tier".into() },
            ],
            ..Mapping::default()
        };
        let input = service::sources::NewSourceInput { name: "Shop", slug: "shop", mapping: &mapping };
        let secret = service::sources::create(&ctx, &Actor::system(), input).await.unwrap().secret;
        for (name, w) in [("Welcome", &welcome), ("Orders", &orders)] {
            let input = NewWorkflow { name: Some(name.into()), definition: Some(w.clone()), ..Default::default() };
            let created = service::workflows::create(&ctx, &Actor::system(), input).await.unwrap();
            service::workflows::publish(&ctx, &Actor::system(), &created.summary.workflow_id).await.unwrap();
        }
        // The signup's run sets the tier to `new`; the order, later in the
        // same group, says `gold`: the later fact wins, in evaluation and in
        // the stored profile alike.
        let batch = json!([
            { "id": "s1", "type": "signed_up", "customer": { "id": "ana", "email": "ana@example.com" } },
            { "id": "o1", "type": "order_completed", "customer": { "id": "ana", "tier": "gold" } },
        ]);
        let r = send(&app, hook("shop", &secret, &batch.to_string())).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        let messages: Vec<String> =
            app::with_pool!(&db, p => sqlx::query_scalar("select message from alert order by message")
            .fetch_all(p)
            .await)
            .unwrap();
        assert_eq!(
            messages,
            ["First order of a gold customer, ana@example.com", "Welcome ana@example.com"],
            "{}",
            db.backend()
        );
        let stored: serde_json::Value =
            serde_json::from_str(&text(&db, "select attributes from customer where customer_id = 'ana'").await)
                .unwrap();
        assert_eq!(stored, json!({ "email": "ana@example.com", "tier": "gold" }), "{}", db.backend());

        // In another group, the signup's change is applied on top of what is stored.
        let later = json!({ "id": "s2", "type": "signed_up", "customer": { "id": "ana" } });
        assert_eq!(send(&app, hook("shop", &secret, &later.to_string())).await.status, StatusCode::ACCEPTED);
        let stored: serde_json::Value =
            serde_json::from_str(&text(&db, "select attributes from customer where customer_id = 'ana'").await)
                .unwrap();
        assert_eq!(stored, json!({ "email": "ana@example.com", "tier": "new" }), "{}", db.backend());
    }
}

/// Orders of a customer counted and summed over a day, by the hour.
fn loyal_spenders() -> app::workflow::Workflow {
    use app::workflow::rules::{Join, Op, Operand, Rule, RuleGroup, RuleItem, ValueType};
    use app::workflow::validate::END;
    use app::workflow::*;
    let node = |id: &str, x: f64, kind: NodeKind| Node { id: id.into(), x, y: 100.0, kind };
    let edge = |from: &str, port: &str, to: &str| Edge { from: from.into(), port: port.into(), to: to.into() };
    let rule = |operand: Operand, value: serde_json::Value| {
        RuleItem::Rule(Rule { operand, op: Op::Ge, value_type: ValueType::Number, value })
    };
    Workflow {
        schema_version: SCHEMA_VERSION,
        settings: Settings { re_entry: ReEntry::EveryTime },
        nodes: vec![
            node("trigger", 0.0, NodeKind::Trigger { sources: vec![], event: "order_completed".into(), filter: None }),
            node(
                "loyal",
                250.0,
                NodeKind::Condition {
                    rules: RuleGroup {
                        join: Join::All,
                        items: vec![
                            rule(Operand::CountInWindow { event: "order_completed".into(), hours: 24 }, json!(3)),
                            rule(
                                Operand::SumInWindow {
                                    event: "order_completed".into(),
                                    path: "$.total".into(),
                                    hours: 24,
                                },
                                json!(100),
                            ),
                        ],
                    },
                },
            ),
            node(
                "tag",
                500.0,
                NodeKind::UpdateProfile { changes: vec![ProfileChange::AddTag { tag: "loyal".into() }] },
            ),
        ],
        edges: vec![
            edge("trigger", "next", "loyal"),
            edge("loyal", "yes", "tag"),
            edge("loyal", "no", END),
            edge("tag", "next", END),
        ],
    }
}

#[tokio::test]
async fn counts_and_sums_in_a_window_count_each_customers_orders_by_the_hour_across_restarts_and_evictions() {
    for (db, hot) in hot_sizes().await {
        let clock = Arc::new(ManualClock::default());
        let start = T0 - T0 % (60 * MIN) + 30 * MIN;
        clock.set(start);
        let ctx = Ctx::with_engine(db.clone(), Default::default(), clock.clone(), hot);
        let secret = source(&ctx).await;
        let input = NewWorkflow {
            name: Some("Loyal spenders".into()),
            definition: Some(loyal_spenders()),
            ..Default::default()
        };
        let w = service::workflows::create(&ctx, &Actor::system(), input).await.unwrap();
        service::workflows::publish(&ctx, &Actor::system(), &w.summary.workflow_id).await.unwrap();
        let order = |app: axum::Router, id: &str, who: &str, total: serde_json::Value| {
            let body = json!({ "id": id, "type": "order_completed", "customer": { "id": who }, "total": total });
            let req = hook("shop", &secret, &body.to_string());
            async move { assert_eq!(send(&app, req).await.status, StatusCode::ACCEPTED) }
        };
        let loyal = |db: Db, who: &'static str| async move {
            trace_of(&db, who).await.iter().filter(|s| s.node == "loyal" && s.outcome == "yes").count() as i64
        };
        let app = router(&ctx);
        // Ana: an order 30 hours before the others (outside a day), then two
        // more; Bo's orders are his own.
        order(app.clone(), "o1", "ana", json!(500)).await;
        clock.set(start + 30 * 60 * MIN);
        order(app.clone(), "o2", "ana", json!(40)).await;
        order(app.clone(), "b1", "bo", json!(90)).await;
        order(app.clone(), "o3", "ana", json!("35.5")).await;
        assert_eq!(loyal(db.clone(), "ana").await, 0, "two orders in the day, the first is older");

        // A restart: the windows are counted again from the stored events.
        drop(app);
        let ctx = Ctx::with_engine(db.clone(), Default::default(), clock.clone(), hot);
        let app = router(&ctx);
        clock.set(start + 31 * 60 * MIN);
        order(app.clone(), "b2", "bo", json!(90)).await;
        order(app.clone(), "o4", "ana", json!(10)).await;
        assert_eq!(loyal(db.clone(), "ana").await, 0, "three orders but 85.5 in all");
        order(app.clone(), "o5", "ana", json!(20)).await;
        assert_eq!(loyal(db.clone(), "ana").await, 1, "four orders, 105.5 in all");
        assert_eq!(loyal(db.clone(), "bo").await, 0, "Bo has two");
        order(app.clone(), "b3", "bo", json!(1)).await;
        assert_eq!(loyal(db.clone(), "bo").await, 1, "three orders, 181 in all");
        let tags = text(&db, "select attributes from customer where customer_id = 'ana'").await;
        assert!(tags.contains("loyal"), "{tags}");

        // A day later Ana's orders have left the window.
        clock.set(start + 56 * 60 * MIN);
        order(app.clone(), "o6", "ana", json!(200)).await;
        assert_eq!(loyal(db.clone(), "ana").await, 1);

        // Each run ended in the group that started it: one row each, its
        // steps inline, found by the designer's "recent runs at this node".
        assert_eq!(count(&db, "select count(*) from run_step").await, 0);
        assert_eq!(count(&db, "select count(*) from run where steps is null").await, 0);
        let runs = count(&db, "select count(*) from run").await;
        let at_loyal = app::store::runs::recent_at_node(&db, &w.summary.workflow_id, "loyal", 100).await.unwrap();
        assert_eq!(at_loyal.len() as i64, runs, "every run passed the condition");
        let tagged = app::store::runs::recent_at_node(&db, &w.summary.workflow_id, "tag", 100).await.unwrap();
        assert_eq!(tagged.len(), 2, "Ana's and Bo's loyal runs");
        let none = app::store::runs::recent_at_node(&db, &w.summary.workflow_id, "loy", 100).await.unwrap();
        assert!(none.is_empty(), "a node id is matched whole");
    }
}
