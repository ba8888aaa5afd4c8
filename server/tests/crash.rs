//! The crash test: the real `nudge` binary takes signed events, single and in
//! batches, for twenty published workflows (each event starts a run in every
//! one of them: twenty runs, offers and alerts in one transaction), and is
//! killed with SIGKILL mid-stream, five times. Every event that got a 202 must
//! be stored and evaluated, and no run, offer or alert may exist twice.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use app::service::signature;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Workflows every event starts a run in.
const WORKFLOWS: usize = 20;
/// Kills, each after this many more acknowledged events.
const ROUNDS: usize = 5;
const ROUND_ACKS: usize = 300;
/// Events per request of the batch senders.
const BATCH: usize = 10;

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

/// Sends signed events until `stop`: single ones, or batches of `BATCH`; the
/// ids of every event answered 202 go into `acked`.
fn sender(
    client: reqwest::Client,
    base: String,
    secret: String,
    batch: usize,
    next: Arc<AtomicUsize>,
    acked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::SeqCst) {
            let first = next.fetch_add(batch, Ordering::SeqCst);
            let ids: Vec<String> = (first..first + batch).map(|i| format!("tx-{i}")).collect();
            let events: Vec<Value> = ids
                .iter()
                .map(|id| json!({ "id": id, "type": "transaction_completed", "customer": format!("c-{id}"), "amount": 20000, "currency": "EUR" }))
                .collect();
            let body = if batch == 1 { events[0].to_string() } else { Value::Array(events).to_string() };
            let sig = signature::header_value(&secret, app::store::now_ms() / 1000, body.as_bytes());
            let res = client
                .post(format!("{base}/hooks/bank"))
                .header("content-type", "application/json")
                .header("nudge-signature", sig)
                .body(body)
                .timeout(Duration::from_secs(10))
                .send()
                .await;
            match res {
                Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED => acked.lock().unwrap().extend(ids),
                // The server is gone (killed): wait for the round to end.
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkills_mid_stream_under_twenty_workflows_lose_no_acknowledged_event_and_duplicate_nothing() {
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
    for n in 1..=WORKFLOWS {
        let wf =
            post("/workflows", json!({ "template": "high_value_transaction", "name": format!("Priority {n}") })).await;
        let id = wf["workflow_id"].as_str().unwrap();
        let published = post(&format!("/workflows/{id}/publish"), Value::Null).await;
        assert_eq!(published["active_version"], 1, "{published}");
    }

    // Each event is a different customer, so it starts one run in each
    // workflow, which raises one alert and issues one offer.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    for round in 1..=ROUNDS {
        if round > 1 {
            child = start(&data, port).await;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let senders: Vec<_> = (0..12)
            .map(|i| {
                let batch = if i % 3 == 0 { BATCH } else { 1 };
                sender(client.clone(), base.clone(), secret.clone(), batch, next.clone(), acked.clone(), stop.clone())
            })
            .collect();
        // SIGKILL once enough more events are acknowledged; requests in flight go into the void.
        let target = acked.lock().unwrap().len() + ROUND_ACKS;
        let deadline = Instant::now() + Duration::from_secs(120);
        while acked.lock().unwrap().len() < target {
            assert!(Instant::now() < deadline, "round {round}: too few events acknowledged");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        stop.store(true, Ordering::SeqCst);
        for s in senders {
            s.await.unwrap();
        }
    }
    let acked = acked.lock().unwrap().clone();
    let sent = next.load(Ordering::SeqCst);
    assert!(acked.len() >= ROUNDS * ROUND_ACKS && acked.len() < sent, "{} of {sent} acknowledged", acked.len());

    // Restart on what the last kill left: it starts, and finds nothing to redo.
    let mut child = start(&data, port).await;
    let backlog = metric(&client, &base, "nudge_executor_backlog_events").await;
    assert_eq!(backlog, Some(0.0), "a 202 means evaluated: nothing is left for later");
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
    let events = one("select count(*) from event").await;
    let w = WORKFLOWS as i64;
    assert_eq!(one("select count(*) from run").await, events * w, "one run per stored event and workflow");
    assert_eq!(
        one("select count(*) from (select 1 from run group by workflow_id, customer_id having count(*) > 1) as twice")
            .await,
        0,
        "no customer has two runs of one workflow"
    );
    assert_eq!(one("select count(*) from offer").await, events * w, "one offer per run");
    assert_eq!(one("select count(distinct run_id) from offer").await, events * w, "no run has two offers");
    assert_eq!(one("select count(*) from alert").await, events * w, "one alert per run");
    assert_eq!(one("select count(distinct run_id) from alert").await, events * w, "no run has two alerts");
    eprintln!(
        "{} of {sent} events acknowledged over {ROUNDS} SIGKILLs; {events} stored, each evaluated in {WORKFLOWS} workflows.",
        acked.len()
    );
    db.close().await;
    let _ = std::fs::remove_dir_all(&data);
}
