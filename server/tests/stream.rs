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

/// Reads from `tcp` until `needle` appears or the peer closes (5 s at most).
async fn read_tcp_until(tcp: &mut tokio::net::TcpStream, needle: &str) -> String {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut chunk)).await.expect("an answer in time").unwrap();
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

async fn send_raw(addr: std::net::SocketAddr, request: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    tcp
}

/// Over a real socket, a live stream is served on its own connection (not
/// through hyper's buffers) with the router's own authentication and
/// handler; every other request still reaches hyper; requests a stream's
/// connection cannot serve get a clear status.
#[tokio::test]
async fn streams_over_a_socket_are_served_apart_and_everything_else_by_hyper() {
    let db = testing::sqlite().await.unwrap();
    let ctx = Ctx::new(db.clone());
    let app = router(&ctx);
    let key = common::key(&db, Role::Viewer).await;
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = server::http::listen::Listener::new(tcp, app.clone(), ctx.live.closed()).unwrap();
    let listener = axum::serve::ListenerExt::tap_io(listener, |_| {});
    let serving = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.unwrap();
    });

    // A stream, sent in two pieces: the first one only part of the request line.
    let mut stream = send_raw(addr, "GET /api/v1/str").await;
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let rest = format!("eam?topics=runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut stream, rest.as_bytes()).await.unwrap();
    let head = read_tcp_until(&mut stream, "event: ready").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(head.contains("x-request-id"), "the router's middleware ran: {head}");
    assert!(!head.contains("content-length"), "{head}");
    // What happens next reaches it.
    ctx.live.publish("runs", json!({ "run_id": "r-live" }));
    assert!(read_tcp_until(&mut stream, "r-live").await.contains("event: runs"));

    // Without credentials: the router's 401, whole, with its length.
    let mut denied = send_raw(addr, "GET /api/v1/stream HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let reply = read_tcp_until(&mut denied, "}").await;
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
    assert!(reply.contains("content-length: ") && reply.contains("\"error\""), "{reply}");

    // A body on the stream's GET is refused, and so is a head too large.
    let with_body =
        format!("GET /api/v1/stream HTTP/1.1\r\nAuthorization: Bearer {key}\r\nContent-Length: 5\r\n\r\nhello");
    let mut refused = send_raw(addr, &with_body).await;
    assert!(read_tcp_until(&mut refused, "}").await.starts_with("HTTP/1.1 400"));
    let huge = format!("GET /api/v1/stream HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    let mut too_large = send_raw(addr, &huge).await;
    assert!(read_tcp_until(&mut too_large, "}").await.starts_with("HTTP/1.1 431"));

    // Everything else is hyper's, keep-alive and all: two requests on one connection.
    let mut other =
        send_raw(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut replies = String::new();
    while replies.matches("HTTP/1.1 200").count() < 2 {
        let more = read_tcp_until(&mut other, "HTTP/1.1 200").await;
        assert!(!more.is_empty(), "hyper answered both requests: {replies}");
        replies.push_str(&more);
    }
    // A path that only starts like the stream's is routed as any other.
    let mut near = send_raw(addr, "GET /api/v1/streams HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(read_tcp_until(&mut near, "\r\n").await.starts_with("HTTP/1.1 40"));

    // At shutdown the stream ends and its connection closes.
    ctx.live.close();
    let rest = read_tcp_until(&mut stream, "never sent").await;
    assert!(!rest.contains("never sent"));
    serving.abort();
}
