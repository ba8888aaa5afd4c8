//! Starter workflows from the product's core scenarios. Each is a complete,
//! valid workflow a marketer can create, adjust and publish.

use super::model::*;
use super::rules::{Join, Op, Operand, Rule, RuleGroup, RuleItem, ValueType};
use super::validate::END;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Template {
    /// The name used by the API, e.g. `abandoned_cart`.
    pub name: String,
    pub title: String,
    pub description: String,
    pub workflow: Workflow,
}

// The layouts run left to right in columns 40 to 50 px apart, 80 to 150
// where a labelled output's edge ("yes", "timed out") or end marker
// ("received ▢ end") needs the gap, and
// in rows about 120 apart, which leaves room for a node's live counters
// above it. Along the main path a node sits level with the output that
// leads to it, so those edges are straight and their labels clear.
// The designer opens them at a readable zoom and scrolls to the rest; the
// canvas's tests check the room.
fn node(id: &str, x: f64, y: f64, kind: NodeKind) -> Node {
    Node { id: id.into(), x, y, kind }
}

fn edge(from: &str, port: &str, to: &str) -> Edge {
    Edge { from: from.into(), port: port.into(), to: to.into() }
}

fn minutes(amount: u32) -> Span {
    Span { amount, unit: Unit::Minutes }
}

fn hours(amount: u32) -> Span {
    Span { amount, unit: Unit::Hours }
}

fn days(amount: u32) -> Span {
    Span { amount, unit: Unit::Days }
}

/// `path > value`, as numbers.
fn above(path: &str, value: i64) -> RuleGroup {
    RuleGroup {
        join: Join::All,
        items: vec![RuleItem::Rule(Rule {
            operand: Operand::Event { path: path.into() },
            op: Op::Gt,
            value_type: ValueType::Number,
            value: json!(value),
        })],
    }
}

pub fn abandoned_cart() -> Workflow {
    Workflow {
        schema_version: SCHEMA_VERSION,
        settings: Settings { re_entry: ReEntry::AfterHours { hours: 24 } },
        nodes: vec![
            node(
                "trigger",
                40.0,
                150.0,
                NodeKind::Trigger { sources: vec![], event: "cart_updated".into(), filter: None },
            ),
            node(
                "wait_checkout",
                310.0,
                150.0,
                NodeKind::WaitForEvent {
                    events: vec!["checkout_started".into(), "order_completed".into()],
                    correlate_field: Some("cart.id".into()),
                    timeout: minutes(30),
                },
            ),
            node("big_cart", 680.0, 166.0, NodeKind::Condition { rules: above("cart.value", 500) }),
            node(
                "alert_service",
                980.0,
                30.0,
                NodeKind::Alert {
                    severity: Severity::Warning,
                    message: "Cart {{event.cart.id}} worth {{event.cart.value}} abandoned by {{customer.email}}".into(),
                    audience: "Customer service".into(),
                },
            ),
            node("worth_offer", 1250.0, 182.0, NodeKind::Condition { rules: above("cart.value", 50) }),
            node(
                "offer",
                1550.0,
                166.0,
                NodeKind::Offer {
                    discount: DiscountKind::Percent,
                    value: 10.0,
                    code_prefix: "CART".into(),
                    valid_for: hours(24),
                },
            ),
            node(
                "converted",
                1820.0,
                166.0,
                NodeKind::Goal { event: "order_completed".into(), match_offer_code: true, within: hours(24) },
            ),
            node(
                "reminder",
                1550.0,
                310.0,
                NodeKind::Webhook {
                    method: "POST".into(),
                    url: "https://crm.example.com/cart-reminders".into(),
                    headers: vec![("Content-Type".into(), "application/json".into())],
                    body: r#"{"customer":"{{customer.id}}","email":"{{customer.email}}","cart":"{{event.cart.id}}"}"#
                        .into(),
                },
            ),
        ],
        edges: vec![
            edge("trigger", "next", "wait_checkout"),
            edge("wait_checkout", "received", END),
            edge("wait_checkout", "timed_out", "big_cart"),
            edge("big_cart", "yes", "alert_service"),
            edge("big_cart", "no", "worth_offer"),
            edge("alert_service", "next", "worth_offer"),
            edge("worth_offer", "yes", "offer"),
            edge("worth_offer", "no", "reminder"),
            edge("offer", "next", "converted"),
            edge("reminder", "next", END),
        ],
    }
}

pub fn high_value_transaction() -> Workflow {
    Workflow {
        schema_version: SCHEMA_VERSION,
        settings: Settings { re_entry: ReEntry::AfterHours { hours: 720 } },
        nodes: vec![
            node(
                "trigger",
                40.0,
                40.0,
                NodeKind::Trigger {
                    sources: vec![],
                    event: "transaction_completed".into(),
                    filter: Some(above("amount", 10_000)),
                },
            ),
            node(
                "alert_advisor",
                300.0,
                40.0,
                NodeKind::Alert {
                    severity: Severity::Info,
                    message: "{{customer.id}} moved {{event.amount}} {{event.currency}}: call them within a day".into(),
                    audience: "Advisors".into(),
                },
            ),
            node(
                "offer",
                560.0,
                40.0,
                NodeKind::Offer {
                    discount: DiscountKind::Percent,
                    value: 25.0,
                    code_prefix: "PRIORITY".into(),
                    valid_for: days(14),
                },
            ),
            node(
                "accepted",
                820.0,
                40.0,
                NodeKind::Goal { event: "offer_accepted".into(), match_offer_code: true, within: days(14) },
            ),
        ],
        edges: vec![
            edge("trigger", "next", "alert_advisor"),
            edge("alert_advisor", "next", "offer"),
            edge("offer", "next", "accepted"),
        ],
    }
}

pub fn low_inventory() -> Workflow {
    Workflow {
        schema_version: SCHEMA_VERSION,
        settings: Settings { re_entry: ReEntry::AfterHours { hours: 12 } },
        nodes: vec![
            node(
                "trigger",
                40.0,
                40.0,
                NodeKind::Trigger {
                    sources: vec![],
                    event: "inventory_updated".into(),
                    filter: Some(RuleGroup {
                        join: Join::All,
                        items: vec![RuleItem::Rule(Rule {
                            operand: Operand::Event { path: "stock".into() },
                            op: Op::Lt,
                            value_type: ValueType::Number,
                            value: json!(10),
                        })],
                    }),
                },
            ),
            node(
                "alert_buyer",
                300.0,
                40.0,
                NodeKind::Alert {
                    severity: Severity::Critical,
                    message: "Only {{event.stock}} left of {{event.sku}} at {{event.store}}".into(),
                    audience: "Merchandising".into(),
                },
            ),
            node(
                "reorder",
                560.0,
                40.0,
                NodeKind::Webhook {
                    method: "POST".into(),
                    url: "https://erp.example.com/reorders".into(),
                    headers: vec![("Content-Type".into(), "application/json".into())],
                    body: r#"{"sku":"{{event.sku}}","store":"{{event.store}}","stock":"{{event.stock}}"}"#.into(),
                },
            ),
        ],
        edges: vec![
            edge("trigger", "next", "alert_buyer"),
            edge("alert_buyer", "next", "reorder"),
            edge("reorder", "next", END),
        ],
    }
}

/// All starter templates, in the order the designer lists them.
pub fn templates() -> Vec<Template> {
    vec![
        Template {
            name: "abandoned_cart".into(),
            title: "Abandoned cart rescue".into(),
            description: "A cart goes quiet for 30 minutes: offer 10 % for 24 hours on carts above 50, send a \
                          reminder otherwise, and alert customer service about carts above 500."
                .into(),
            workflow: abandoned_cart(),
        },
        Template {
            name: "high_value_transaction".into(),
            title: "High-value transaction offer".into(),
            description: "A transaction above 10,000: alert the customer's advisor and issue a tailored offer.".into(),
            workflow: high_value_transaction(),
        },
        Template {
            name: "low_inventory".into(),
            title: "Low-inventory alert".into(),
            description: "Stock falls below 10: alert merchandising and ask the ERP to reorder.".into(),
            workflow: low_inventory(),
        },
    ]
}

pub fn template(name: &str) -> Option<Template> {
    templates().into_iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::validate;

    #[test]
    fn every_template_is_valid_and_round_trips_as_json() {
        for t in templates() {
            assert_eq!(validate(&t.workflow), vec![], "{}", t.name);
            let text = serde_json::to_string(&t.workflow).unwrap();
            assert_eq!(serde_json::from_str::<Workflow>(&text).unwrap(), t.workflow, "{}", t.name);
            assert_eq!(template(&t.name).map(|t| t.title), Some(t.title));
        }
        assert!(template("nope").is_none());
    }

    #[test]
    fn every_palette_kind_has_a_blank_that_names_its_type() {
        for name in KINDS {
            let kind = NodeKind::blank(name).unwrap();
            assert_eq!(kind.type_name(), name);
            let json = serde_json::to_value(Node { id: "n".into(), x: 0.0, y: 0.0, kind }).unwrap();
            assert_eq!(json["type"], name, "the serde tag and the palette agree");
        }
        assert!(NodeKind::blank("teleport").is_none());
    }
}
