//! The live stream's guarantees: a client that reconnects with `Last-Event-ID`
//! gets exactly what it missed (only its topics), a client from before a
//! restart or too far behind is told to resync, and a client that stops
//! reading is told to resync instead of holding the publisher up.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

mod common;

use app::model::Role;
use app::service::Ctx;
use app::store::testing;
use axum::body::Body;
use axum::http::{header, Request};
use common::{read_until, router};
use serde_json::json;
use tower::ServiceExt;

fn stream_request(key: &str, topics: &str, last_id: Option<&str>) -> Request<Body> {
    let mut req =
        Request::get(format!("/api/v1/stream?topics={topics}")).header(header::AUTHORIZATION, format!("Bearer {key}"));
    if let Some(id) = last_id {
        req = req.header("last-event-id", id);
    }
    req.body(Body::empty()).unwrap()
}

/// The `id:` of the last message in `text`.
fn last_id(text: &str) -> String {
    text.lines().filter_map(|l| l.strip_prefix("id:")).next_back().unwrap().trim().to_string()
}

#[tokio::test]
async fn a_reconnecting_client_resumes_from_last_event_id_without_gaps_or_repeats() {
    let db = testing::sqlite().await.unwrap();
    let ctx = Ctx::new(db.clone());
    let app = router(&ctx);
    let key = common::key(&db, Role::Viewer).await;

    let mut body = app.clone().oneshot(stream_request(&key, "runs,alerts", None)).await.unwrap().into_body();
    read_until(&mut body, "event: ready").await;
    ctx.live.publish("runs", json!({ "n": 1 }));
    let seen = read_until(&mut body, "\"n\":1").await;
    let resume_from = last_id(&seen);
    drop(body); // the connection drops

    // While it is away: two runs messages and an events one (not its topic).
    ctx.live.publish("runs", json!({ "n": 2 }));
    ctx.live.publish("events", json!({ "n": 3 }));
    ctx.live.publish("alerts", json!({ "n": 4 }));

    let mut body =
        app.clone().oneshot(stream_request(&key, "runs,alerts", Some(&resume_from))).await.unwrap().into_body();
    let replay = read_until(&mut body, "\"n\":4").await;
    assert!(replay.contains("\"n\":2"), "{replay}");
    assert!(!replay.contains("\"n\":3"), "not its topic: {replay}");
    assert!(!replay.contains("\"n\":1"), "not a repeat: {replay}");
    assert!(!replay.contains("event: resync"), "{replay}");
    // Then it follows live, each message once.
    ctx.live.publish("runs", json!({ "n": 5 }));
    let more = read_until(&mut body, "\"n\":5").await;
    assert_eq!(more.matches("\"n\":5").count(), 1);
    assert!(!more.contains("\"n\":4"), "{more}");

    // An id from another process (the server restarted): refetch.
    let mut body = app.clone().oneshot(stream_request(&key, "runs", Some("1a2b3c-17"))).await.unwrap().into_body();
    let text = read_until(&mut body, "event: resync").await;
    assert!(text.contains("event: ready"), "{text}");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_told_to_resync_then_carries_on() {
    let db = testing::sqlite().await.unwrap();
    let ctx = Ctx::new(db.clone());
    let app = router(&ctx);
    let key = common::key(&db, Role::Viewer).await;

    let mut stuck = app.clone().oneshot(stream_request(&key, "events", None)).await.unwrap().into_body();
    read_until(&mut stuck, "event: ready").await;
    // Far more than a subscriber's buffer: the publisher never waits for it.
    for n in 0..10_000 {
        ctx.live.publish("events", json!({ "n": n }));
    }
    // The stuck client, when it reads again, is told it missed messages...
    let text = read_until(&mut stuck, "event: resync").await;
    assert!(text.contains("event: resync"));
    // ...and carries on with what comes next.
    ctx.live.publish("events", json!({ "n": "after" }));
    let after = read_until(&mut stuck, "\"n\":\"after\"").await;
    assert!(!after.contains("{\"n\":0}"), "the oldest messages were dropped, not queued: {after}");
}

#[tokio::test]
async fn open_streams_end_when_the_server_shuts_down() {
    use http_body_util::BodyExt;
    let db = testing::sqlite().await.unwrap();
    let ctx = Ctx::new(db.clone());
    let app = router(&ctx);
    let key = common::key(&db, Role::Viewer).await;

    let mut body = app.clone().oneshot(stream_request(&key, "events", None)).await.unwrap().into_body();
    read_until(&mut body, "event: ready").await;
    ctx.live.close();
    // The body ends (`None`) instead of waiting for messages or keep-alives:
    // the graceful shutdown does not wait for open browser tabs.
    let mut rest = String::new();
    loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
            .await
            .expect("the stream ends at shutdown, not at the next keep-alive");
        match frame {
            None => break,
            Some(frame) => {
                if let Ok(data) = frame.unwrap().into_data() {
                    rest.push_str(&String::from_utf8_lossy(&data));
                }
            }
        }
    }
    assert!(!rest.contains("event:"), "nothing more was sent: {rest}");
    // A client connecting while the server stops is ended too.
    let mut late = app.oneshot(stream_request(&key, "events", None)).await.unwrap().into_body();
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(frame) = late.frame().await {
            frame.unwrap();
        }
    })
    .await;
    assert!(end.is_ok(), "a stream opened while stopping ends too");
}
