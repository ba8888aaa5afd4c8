//! The crash test: the real `nudge` binary takes signed events for a published
//! workflow, is killed with SIGKILL mid-stream, and restarts. Every event that
//! got a 202 must be stored and run, and no offer or alert may exist twice.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use app::service::signature;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const EVENTS: usize = 3000;
const KILL_AFTER: usize = 1200;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn nudge(data: &std::path::Path, port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nudge"));
    cmd.env("NUDGE_DATA_DIR", data)
        .env("NUDGE_ADDR", format!("127.0.0.1:{port}"))
        .env("NUDGE_LOG", "warn")
        .env("NUDGE_INGEST_RATE_LIMIT", "0")
        .env("LEPTOS_SITE_ROOT", data.join("site"));
    cmd
}

async fn start(data: &std::path::Path, port: u16) -> Child {
    let mut child = nudge(data, port).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("http://127.0.0.1:{port}/healthz")).send().await {
            if r.status().is_success() {
                return child;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("nudge did not start on port {port}");
}

async fn metric(client: &reqwest::Client, base: &str, name: &str) -> Option<f64> {
    let text = client.get(format!("{base}/metrics")).send().await.ok()?.text().await.ok()?;
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigkill_mid_stream_loses_no_acknowledged_event_and_duplicates_no_action() {
    let data = std::env::temp_dir().join(format!("nudge-crash-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&data).unwrap();
    let key_out = nudge(&data, 0).args(["api-key", "create", "--name", "crash", "--role", "editor"]).output().unwrap();
    assert!(key_out.status.success(), "{}", String::from_utf8_lossy(&key_out.stderr));
    let key = String::from_utf8(key_out.stdout).unwrap().trim().to_string();

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start(&data, port).await;
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        let req = client
            .post(format!("{base}/api/v1{path}"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body.to_string());
        async move {
            let text = req.send().await.unwrap().text().await.unwrap();
            serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)
        }
    };

    let mapping = json!({ "event_name": "$.type", "customer_id": "$.customer", "event_id": "$.id" });
    let source = post("/sources", json!({ "name": "Bank", "slug": "bank", "mapping": mapping })).await;
    let secret = source["secret"].as_str().unwrap().to_string();
    let wf = post("/workflows", json!({ "template": "high_value_transaction" })).await;
    let id = wf["workflow_id"].as_str().unwrap();
    let published = post(&format!("/workflows/{id}/publish"), Value::Null).await;
    assert_eq!(published["active_version"], 1, "{published}");

    // 16 senders; each event a different customer, so each starts one run
    // that raises one alert and issues one offer.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..16 {
        let (acked, next, secret, base, client) =
            (acked.clone(), next.clone(), secret.clone(), base.clone(), client.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= EVENTS {
                    return;
                }
                let body = json!({ "id": format!("tx-{i}"), "type": "transaction_completed", "customer": format!("c-{i}"), "amount": 20000, "currency": "EUR" }).to_string();
                let sig = signature::header_value(&secret, app::store::now_ms() / 1000, body.as_bytes());
                let res = client
                    .post(format!("{base}/hooks/bank"))
                    .header("content-type", "application/json")
                    .header("nudge-signature", sig)
                    .body(body)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                if let Ok(r) = res {
                    if r.status() == reqwest::StatusCode::ACCEPTED {
                        acked.lock().unwrap().push(format!("tx-{i}"));
                    }
                }
            }
        }));
    }
    // SIGKILL once enough events are acknowledged; the senders keep going into the void.
    while acked.lock().unwrap().len() < KILL_AFTER {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    for s in senders {
        s.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= KILL_AFTER && acked.len() < EVENTS, "killed mid-stream: {} acknowledged", acked.len());

    // Restart: the executor catches up from the database.
    let mut child = start(&data, port).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let backlog = metric(&client, &base, "nudge_executor_backlog_events").await;
        if backlog == Some(0.0) {
            break;
        }
        assert!(Instant::now() < deadline, "the backlog never drained: {backlog:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", data.join("nudge.db").display())).await.unwrap();
    let stored: Vec<String> = sqlx::query_scalar("select external_id from event").fetch_all(&db).await.unwrap();
    let stored: std::collections::HashSet<String> = stored.into_iter().collect();
    let missing: Vec<&String> = acked.iter().filter(|e| !stored.contains(*e)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events are not stored: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );

    let one = |sql: &'static str| {
        let db = db.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&db).await.unwrap() }
    };
    assert_eq!(one("select count(*) from work_item").await, 0, "every stored event was run");
    let events = one("select count(*) from event").await;
    assert_eq!(one("select count(*) from run").await, events, "one run per stored event");
    assert_eq!(one("select count(*) from offer").await, events, "one offer per run");
    assert_eq!(one("select count(distinct run_id) from offer").await, events, "no run has two offers");
    assert_eq!(one("select count(*) from alert").await, events, "one alert per run");
    assert_eq!(one("select count(distinct run_id) from alert").await, events, "no run has two alerts");
    eprintln!(
        "{} of {EVENTS} events acknowledged before SIGKILL; {events} stored and run after the restart.",
        acked.len()
    );
    db.close().await;
    let _ = std::fs::remove_dir_all(&data);
}
