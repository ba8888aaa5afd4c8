//! The benchmark's workflows: the three starter templates and seventeen variations a
//! marketing team might run beside them, published through the REST API.

use super::client::{api_request, Conn};
use anyhow::{bail, Context};
use app::workflow::rules::{Join, Op, Operand, Rule, RuleGroup, RuleItem, ValueType};
use app::workflow::templates;
use app::workflow::validate::END;
use app::workflow::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

fn node(id: &str, kind: NodeKind) -> Node {
    Node { id: id.into(), x: 0.0, y: 0.0, kind }
}

fn edge(from: &str, port: &str, to: &str) -> Edge {
    Edge { from: from.into(), port: port.into(), to: to.into() }
}

fn span(amount: u32, unit: Unit) -> Span {
    Span { amount, unit }
}

fn rule(operand: Operand, op: Op, value_type: ValueType, value: Value) -> RuleItem {
    RuleItem::Rule(Rule { operand, op, value_type, value })
}

/// `event.<path> <op> <number>`.
fn num(path: &str, op: Op, value: f64) -> RuleItem {
    rule(Operand::Event { path: path.into() }, op, ValueType::Number, json!(value))
}

/// `event.<path> == <text>`.
fn text(path: &str, value: &str) -> RuleItem {
    rule(Operand::Event { path: path.into() }, Op::Eq, ValueType::String, json!(value))
}

fn all(items: Vec<RuleItem>) -> RuleGroup {
    RuleGroup { join: Join::All, items }
}

fn any(items: Vec<RuleItem>) -> RuleGroup {
    RuleGroup { join: Join::Any, items }
}

fn trigger(event: &str, filter: Option<RuleGroup>) -> Node {
    node("trigger", NodeKind::Trigger { sources: vec![], event: event.into(), filter })
}

/// Waits for the cart's checkout or order, as the abandoned-cart template does.
fn wait_for_checkout(minutes: u32) -> Node {
    node(
        "wait",
        NodeKind::WaitForEvent {
            events: vec!["checkout_started".into(), "order_completed".into()],
            correlate_field: Some("cart.id".into()),
            timeout: span(minutes, Unit::Minutes),
        },
    )
}

fn offer(id: &str, discount: DiscountKind, value: f64, prefix: &str, valid_for: Span) -> Node {
    node(id, NodeKind::Offer { discount, value, code_prefix: prefix.into(), valid_for })
}

fn alert(id: &str, severity: Severity, audience: &str, message: &str) -> Node {
    node(id, NodeKind::Alert { severity, message: message.into(), audience: audience.into() })
}

fn webhook(id: &str, url: &str, body: &str) -> Node {
    node(
        id,
        NodeKind::Webhook {
            method: "POST".into(),
            url: url.into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into(),
        },
    )
}

fn goal(event: &str, within: Span) -> Node {
    node("goal", NodeKind::Goal { event: event.into(), match_offer_code: true, within })
}

fn workflow(re_entry: ReEntry, nodes: Vec<Node>, edges: Vec<Edge>) -> Workflow {
    Workflow { schema_version: SCHEMA_VERSION, nodes, edges, settings: Settings { re_entry } }
}

/// A trigger on cart_updated, a wait for the checkout, and on time-out an offer with a goal.
fn cart_offer(filter: RuleGroup, wait_minutes: u32, discount: DiscountKind, value: f64, prefix: &str) -> Workflow {
    workflow(
        ReEntry::AfterHours { hours: 12 },
        vec![
            trigger("cart_updated", Some(filter)),
            wait_for_checkout(wait_minutes),
            offer("offer", discount, value, prefix, span(48, Unit::Hours)),
            goal("order_completed", span(48, Unit::Hours)),
        ],
        vec![
            edge("trigger", "next", "wait"),
            edge("wait", "received", END),
            edge("wait", "timed_out", "offer"),
            edge("offer", "next", "goal"),
        ],
    )
}

/// The twenty workflows, named. Every webhook points at `sink` (the load
/// generator's own receiver), keeping the original host as the first path segment.
pub fn bench_workflows(sink: &str) -> Vec<(String, Workflow)> {
    use DiscountKind::{FreeShipping, Percent};
    let mut list: Vec<(&str, Workflow)> = vec![
        ("Abandoned cart rescue", templates::abandoned_cart()),
        ("High-value transaction offer", templates::high_value_transaction()),
        ("Low-inventory alert", templates::low_inventory()),
        (
            "Gold cart rescue, 15 % after 15 min",
            cart_offer(all(vec![text("customer.tier", "gold")]), 15, Percent, 15.0, "GOLD"),
        ),
        (
            "Carts above 200: 5 % after 10 min",
            cart_offer(all(vec![num("cart.value", Op::Gt, 200.0)]), 10, Percent, 5.0, "QUICK"),
        ),
        (
            "Six items or more: free shipping after 2 h",
            cart_offer(all(vec![num("cart.items", Op::Ge, 6.0)]), 120, FreeShipping, 0.0, "SHIP"),
        ),
        (
            "Carts above 800: concierge alert",
            workflow(
                ReEntry::AfterHours { hours: 24 },
                vec![
                    trigger("cart_updated", Some(all(vec![num("cart.value", Op::Gt, 800.0)]))),
                    alert(
                        "alert",
                        Severity::Warning,
                        "Concierge",
                        "Call {{customer.email}}: cart {{event.cart.id}} holds {{event.cart.value}}",
                    ),
                ],
                vec![edge("trigger", "next", "alert"), edge("alert", "next", END)],
            ),
        ),
        (
            "Small-cart reminder after an hour",
            workflow(
                ReEntry::Once,
                vec![
                    trigger("cart_updated", Some(all(vec![num("cart.value", Op::Lt, 30.0)]))),
                    wait_for_checkout(60),
                    webhook(
                        "remind",
                        "https://crm.example.com/small-cart",
                        r#"{"customer":"{{customer.id}}","cart":"{{event.cart.id}}"}"#,
                    ),
                ],
                vec![
                    edge("trigger", "next", "wait"),
                    edge("wait", "received", END),
                    edge("wait", "timed_out", "remind"),
                    edge("remind", "next", END),
                ],
            ),
        ),
        (
            "Standard carts above 100: A/B 10 % or 20 %",
            workflow(
                ReEntry::AfterHours { hours: 24 },
                vec![
                    trigger(
                        "cart_updated",
                        Some(all(vec![text("customer.tier", "standard"), num("cart.value", Op::Gt, 100.0)])),
                    ),
                    wait_for_checkout(45),
                    node(
                        "split",
                        NodeKind::Split {
                            branches: vec![
                                SplitBranch { label: "A".into(), weight: 50 },
                                SplitBranch { label: "B".into(), weight: 50 },
                            ],
                        },
                    ),
                    offer("offer_a", Percent, 10.0, "AB-TEN", span(24, Unit::Hours)),
                    offer("offer_b", Percent, 20.0, "AB-TWENTY", span(24, Unit::Hours)),
                ],
                vec![
                    edge("trigger", "next", "wait"),
                    edge("wait", "received", END),
                    edge("wait", "timed_out", "split"),
                    edge("split", "A", "offer_a"),
                    edge("split", "B", "offer_b"),
                    edge("offer_a", "next", END),
                    edge("offer_b", "next", END),
                ],
            ),
        ),
        (
            "Gold tier or cart above 600: service heads-up",
            workflow(
                ReEntry::AfterHours { hours: 6 },
                vec![
                    trigger(
                        "cart_updated",
                        Some(any(vec![
                            rule(
                                Operand::Profile { attribute: "tier".into() },
                                Op::Eq,
                                ValueType::String,
                                json!("gold"),
                            ),
                            num("cart.value", Op::Gt, 600.0),
                        ])),
                    ),
                    wait_for_checkout(20),
                    node("huge", NodeKind::Condition { rules: all(vec![num("cart.value", Op::Gt, 900.0)]) }),
                    alert(
                        "urgent",
                        Severity::Critical,
                        "Customer service",
                        "{{customer.email}} left {{event.cart.value}} in cart {{event.cart.id}}",
                    ),
                    alert("note", Severity::Info, "Customer service", "{{customer.email}} left cart {{event.cart.id}}"),
                ],
                vec![
                    edge("trigger", "next", "wait"),
                    edge("wait", "received", END),
                    edge("wait", "timed_out", "huge"),
                    edge("huge", "yes", "urgent"),
                    edge("huge", "no", "note"),
                    edge("urgent", "next", END),
                    edge("note", "next", END),
                ],
            ),
        ),
        (
            "Transactions above 5,000: advisor note",
            workflow(
                ReEntry::EveryTime,
                vec![
                    trigger("transaction_completed", Some(all(vec![num("amount", Op::Gt, 5_000.0)]))),
                    alert(
                        "alert",
                        Severity::Info,
                        "Advisors",
                        "{{customer.id}} moved {{event.amount}} {{event.currency}}",
                    ),
                ],
                vec![edge("trigger", "next", "alert"), edge("alert", "next", END)],
            ),
        ),
        (
            "Gold transactions above 15,000: 30 % for a month",
            workflow(
                ReEntry::AfterHours { hours: 720 },
                vec![
                    trigger(
                        "transaction_completed",
                        Some(all(vec![num("amount", Op::Gt, 15_000.0), text("customer.tier", "gold")])),
                    ),
                    offer("offer", Percent, 30.0, "PLATINUM", span(30, Unit::Days)),
                    goal("offer_accepted", span(30, Unit::Days)),
                ],
                vec![edge("trigger", "next", "offer"), edge("offer", "next", "goal")],
            ),
        ),
        (
            "USD transactions above 8,000: compliance feed",
            workflow(
                ReEntry::EveryTime,
                vec![
                    trigger(
                        "transaction_completed",
                        Some(all(vec![text("currency", "USD"), num("amount", Op::Gt, 8_000.0)])),
                    ),
                    webhook(
                        "report",
                        "https://compliance.example.com/large-usd",
                        r#"{"customer":"{{customer.id}}","amount":"{{event.amount}}"}"#,
                    ),
                ],
                vec![edge("trigger", "next", "report"), edge("report", "next", END)],
            ),
        ),
        (
            "Three transactions in a day: frequent-buyer tag",
            workflow(
                ReEntry::EveryTime,
                vec![
                    trigger("transaction_completed", None),
                    node(
                        "frequent",
                        NodeKind::Condition {
                            rules: all(vec![rule(
                                Operand::CountInWindow { event: "transaction_completed".into(), hours: 24 },
                                Op::Ge,
                                ValueType::Number,
                                json!(3),
                            )]),
                        },
                    ),
                    node(
                        "tag",
                        NodeKind::UpdateProfile {
                            changes: vec![ProfileChange::AddTag { tag: "frequent_buyer".into() }],
                        },
                    ),
                ],
                vec![
                    edge("trigger", "next", "frequent"),
                    edge("frequent", "yes", "tag"),
                    edge("frequent", "no", END),
                    edge("tag", "next", END),
                ],
            ),
        ),
        (
            "Transactions above 2,000: high-spender segment",
            workflow(
                ReEntry::AfterHours { hours: 24 },
                vec![
                    trigger("transaction_completed", Some(all(vec![num("amount", Op::Gt, 2_000.0)]))),
                    node(
                        "segment",
                        NodeKind::UpdateProfile {
                            changes: vec![
                                ProfileChange::Set { attribute: "segment".into(), value: "high_spender".into() },
                                ProfileChange::AddTag { tag: "high_spender".into() },
                            ],
                        },
                    ),
                ],
                vec![edge("trigger", "next", "segment"), edge("segment", "next", END)],
            ),
        ),
        (
            "Stock below 5: critical alert",
            workflow(
                ReEntry::AfterHours { hours: 6 },
                vec![
                    trigger("inventory_updated", Some(all(vec![num("stock", Op::Lt, 5.0)]))),
                    alert(
                        "alert",
                        Severity::Critical,
                        "Merchandising",
                        "{{event.sku}} is down to {{event.stock}} at {{event.store}}",
                    ),
                ],
                vec![edge("trigger", "next", "alert"), edge("alert", "next", END)],
            ),
        ),
        (
            "Store 3 below 25: restock request",
            workflow(
                ReEntry::AfterHours { hours: 12 },
                vec![
                    trigger("inventory_updated", Some(all(vec![num("stock", Op::Lt, 25.0), text("store", "store-3")]))),
                    webhook(
                        "restock",
                        "https://erp.example.com/store-3/restock",
                        r#"{"sku":"{{event.sku}}","stock":"{{event.stock}}"}"#,
                    ),
                ],
                vec![edge("trigger", "next", "restock"), edge("restock", "next", END)],
            ),
        ),
        (
            "Out of stock: alert and delist",
            workflow(
                ReEntry::EveryTime,
                vec![
                    trigger("inventory_updated", Some(all(vec![num("stock", Op::Eq, 0.0)]))),
                    alert("alert", Severity::Critical, "Merchandising", "{{event.sku}} is sold out at {{event.store}}"),
                    webhook(
                        "delist",
                        "https://shop.example.com/delist",
                        r#"{"sku":"{{event.sku}}","store":"{{event.store}}"}"#,
                    ),
                ],
                vec![edge("trigger", "next", "alert"), edge("alert", "next", "delist"), edge("delist", "next", END)],
            ),
        ),
        (
            "Welcome: 10 % a day after sign-up",
            workflow(
                ReEntry::Once,
                vec![
                    trigger("signed_up", None),
                    node("delay", NodeKind::Delay { span: Some(span(1, Unit::Days)), until_time_of_day: None }),
                    offer("offer", Percent, 10.0, "WELCOME", span(7, Unit::Days)),
                    goal("order_completed", span(7, Unit::Days)),
                ],
                vec![edge("trigger", "next", "delay"), edge("delay", "next", "offer"), edge("offer", "next", "goal")],
            ),
        ),
        (
            "Failed payment: billing alert and dunning",
            workflow(
                ReEntry::EveryTime,
                vec![
                    trigger("payment_failed", None),
                    alert(
                        "alert",
                        Severity::Warning,
                        "Billing",
                        "Payment of {{event.amount}} {{event.currency}} failed for {{customer.email}}",
                    ),
                    webhook(
                        "dunning",
                        "https://billing.example.com/dunning",
                        r#"{"customer":"{{customer.id}}","amount":"{{event.amount}}"}"#,
                    ),
                ],
                vec![edge("trigger", "next", "alert"), edge("alert", "next", "dunning"), edge("dunning", "next", END)],
            ),
        ),
    ];
    for (_, w) in &mut list {
        point_webhooks_at(w, sink);
    }
    list.into_iter().map(|(name, w)| (name.to_string(), w)).collect()
}

/// `https://crm.example.com/x` becomes `<sink>/crm.example.com/x`.
fn point_webhooks_at(w: &mut Workflow, sink: &str) {
    for n in &mut w.nodes {
        if let NodeKind::Webhook { url, .. } = &mut n.kind {
            let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
            *url = format!("{}/{rest}", sink.trim_end_matches('/'));
        }
    }
}

/// Creates and publishes `n` benchmark workflows (the twenty in turn, numbered
/// copies beyond twenty); a refusal is an error that quotes the server's answer.
pub async fn publish(addr: &str, key: &str, sink: &str, n: usize) -> anyhow::Result<()> {
    let list = bench_workflows(sink);
    let mut conn = Conn::open(addr).await?;
    for (i, (name, definition)) in list.iter().cycle().take(n).enumerate() {
        let name = if i < list.len() { name.clone() } else { format!("{name} #{}", i / list.len() + 1) };
        let body = json!({ "name": name, "definition": definition }).to_string();
        let (status, answer) = conn.send(api_request(addr, "POST", "/api/v1/workflows", key, body)?).await?;
        if status != 201 {
            bail!("creating workflow '{name}' answered {status}: {}", String::from_utf8_lossy(&answer));
        }
        let v: Value = serde_json::from_slice(&answer).context("the created workflow is not JSON")?;
        let id = v["workflow_id"].as_str().context("no workflow_id in the answer")?;
        let path = format!("/api/v1/workflows/{id}/publish");
        let (status, answer) = conn.send(api_request(addr, "POST", &path, key, String::new())?).await?;
        if status != 200 {
            bail!("publishing workflow '{name}' answered {status}: {}", String::from_utf8_lossy(&answer));
        }
    }
    Ok(())
}

/// A local receiver for the workflows' webhooks: answers 204 to anything and
/// counts the calls, so deliveries succeed without leaving the machine.
pub struct Sink {
    pub base: String,
    pub calls: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    pub async fn start() -> anyhow::Result<Sink> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the webhook sink")?;
        let base = format!("http://{}", listener.local_addr()?);
        let calls = Arc::new(AtomicU64::new(0));
        let counter = calls.clone();
        let app = axum::Router::new().fallback(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        });
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                eprintln!("the webhook sink stopped: {err}");
            }
        });
        Ok(Sink { base, calls, task })
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_twenty_bench_workflows_are_valid_distinct_and_call_only_the_sink() {
        let list = bench_workflows("http://127.0.0.1:9");
        assert_eq!(list.len(), 20);
        let mut names: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 20, "names are unique");
        assert_eq!(list[0].1.nodes.len(), templates::abandoned_cart().nodes.len(), "the templates come first");
        for (name, w) in &list {
            assert_eq!(validate(w), vec![], "{name}");
            for n in &w.nodes {
                if let NodeKind::Webhook { url, .. } = &n.kind {
                    assert!(url.starts_with("http://127.0.0.1:9/") && url.contains(".example.com/"), "{name}: {url}");
                }
            }
        }
        let definitions: Vec<String> = list.iter().filter_map(|(_, w)| serde_json::to_string(w).ok()).collect();
        let mut unique = definitions.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 20, "no two workflows are the same graph");
    }
}
