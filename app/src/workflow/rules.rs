//! Conditions: groups of rules joined by all/any, nestable. A rule compares an
//! operand (an event field, a profile attribute, or an aggregate of the
//! customer's history) with a value, typed. A missing field is "not exists",
//! never an error.

use crate::ingest::mapping::{parse_time, Path};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RuleGroup {
    pub join: Join,
    pub items: Vec<RuleItem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Join {
    All,
    Any,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum RuleItem {
    #[cfg_attr(feature = "ssr", schema(no_recursion))]
    Group(RuleGroup),
    Rule(Rule),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Rule {
    pub operand: Operand,
    pub op: Op,
    /// How to compare: as numbers, text, booleans or times.
    #[serde(default = "default_type")]
    pub value_type: ValueType,
    /// The value to compare with (a list for `in`; ignored by `exists`/`not_exists`).
    #[serde(default)]
    pub value: Value,
}

fn default_type() -> ValueType {
    ValueType::String
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Operand {
    /// A field of the triggering event, by path (`cart.value`).
    Event { path: String },
    /// An attribute of the customer's profile.
    Profile { attribute: String },
    /// How many `event` events the customer sent in the last `hours`, counted
    /// by the hour (see `aggregate`: from the top of the hour `hours` ago).
    CountInWindow { event: String, hours: u32 },
    /// The sum of a numeric field over the customer's `event` events in the
    /// last `hours`, counted by the hour like `CountInWindow`.
    SumInWindow { event: String, path: String, hours: u32 },
    /// When the customer was last seen (unix ms).
    LastSeen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    StartsWith,
    In,
    Exists,
    NotExists,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    Number,
    String,
    Bool,
    Time,
}

/// What a rule can look at. The executor fills aggregates from storage; tests
/// and the designer's backtest fill them from data they hold.
pub trait Facts {
    fn event(&self) -> &Value;
    fn profile(&self) -> &Value;
    /// The value of an aggregate operand, if known.
    fn aggregate(&self, operand: &Operand) -> Option<Value>;
}

fn operand_value<F: Facts>(operand: &Operand, facts: &F) -> Option<Value> {
    match operand {
        Operand::Event { path } => Path::parse(path).ok()?.get(facts.event()).cloned(),
        Operand::Profile { attribute } => facts.profile().get(attribute).filter(|v| !v.is_null()).cloned(),
        other => facts.aggregate(other),
    }
}

pub(crate) fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Some(true),
            "false" | "no" | "0" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        _ => None,
    }
}

/// Compares two values of one type; `None` when either side does not have that type.
fn compare(a: &Value, b: &Value, t: ValueType) -> Option<std::cmp::Ordering> {
    match t {
        ValueType::Number => as_number(a)?.partial_cmp(&as_number(b)?),
        ValueType::String => Some(as_text(a)?.cmp(&as_text(b)?)),
        ValueType::Bool => Some(as_bool(a)?.cmp(&as_bool(b)?)),
        ValueType::Time => Some(parse_time(a)?.cmp(&parse_time(b)?)),
    }
}

impl Rule {
    pub fn eval<F: Facts>(&self, facts: &F) -> bool {
        use std::cmp::Ordering::*;
        let actual = operand_value(&self.operand, facts);
        let Some(actual) = actual else { return self.op == Op::NotExists };
        let expected = &self.value;
        match self.op {
            Op::Exists => true,
            Op::NotExists => false,
            Op::Eq => compare(&actual, expected, self.value_type) == Some(Equal),
            Op::Ne => compare(&actual, expected, self.value_type).is_some_and(|o| o != Equal),
            Op::Lt => compare(&actual, expected, self.value_type) == Some(Less),
            Op::Le => matches!(compare(&actual, expected, self.value_type), Some(Less | Equal)),
            Op::Gt => compare(&actual, expected, self.value_type) == Some(Greater),
            Op::Ge => matches!(compare(&actual, expected, self.value_type), Some(Greater | Equal)),
            Op::Contains => match (&actual, as_text(expected)) {
                (Value::Array(items), _) => items.iter().any(|i| compare(i, expected, self.value_type) == Some(Equal)),
                (_, Some(needle)) => as_text(&actual).is_some_and(|t| t.contains(&needle)),
                _ => false,
            },
            Op::StartsWith => match (as_text(&actual), as_text(expected)) {
                (Some(t), Some(p)) => t.starts_with(&p),
                _ => false,
            },
            Op::In => match expected {
                Value::Array(options) => options.iter().any(|o| compare(&actual, o, self.value_type) == Some(Equal)),
                _ => false,
            },
        }
    }
}

impl RuleGroup {
    pub fn eval<F: Facts>(&self, facts: &F) -> bool {
        let item = |i: &RuleItem| match i {
            RuleItem::Group(g) => g.eval(facts),
            RuleItem::Rule(r) => r.eval(facts),
        };
        match self.join {
            Join::All => self.items.iter().all(item),
            Join::Any => self.items.iter().any(item),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct F {
        event: Value,
        profile: Value,
    }

    impl Facts for F {
        fn event(&self) -> &Value {
            &self.event
        }
        fn profile(&self) -> &Value {
            &self.profile
        }
        fn aggregate(&self, operand: &Operand) -> Option<Value> {
            match operand {
                Operand::CountInWindow { event, .. } if event == "page_viewed" => Some(json!(7)),
                Operand::LastSeen => Some(json!(1_700_000_000_000i64)),
                _ => None,
            }
        }
    }

    fn rule(operand: Operand, op: Op, value_type: ValueType, value: Value) -> RuleItem {
        RuleItem::Rule(Rule { operand, op, value_type, value })
    }

    fn ev(path: &str) -> Operand {
        Operand::Event { path: path.into() }
    }

    #[test]
    fn typed_comparisons_of_event_fields_profile_and_aggregates() {
        let f = F {
            event: json!({ "cart": { "value": "80.5", "items": ["TEE", "CAP"] }, "coupon": "SUMMER24", "vip": true }),
            profile: json!({ "tier": "gold", "signed_up": "2024-01-01T00:00:00Z" }),
        };
        let yes = |item: RuleItem| RuleGroup { join: Join::All, items: vec![item] }.eval(&f);
        assert!(yes(rule(ev("cart.value"), Op::Gt, ValueType::Number, json!(50))), "text numbers compare as numbers");
        assert!(!yes(rule(ev("cart.value"), Op::Gt, ValueType::String, json!("9"))), "…but as text when asked");
        assert!(yes(rule(ev("cart.items"), Op::Contains, ValueType::String, json!("CAP"))));
        assert!(yes(rule(ev("coupon"), Op::StartsWith, ValueType::String, json!("SUMMER"))));
        assert!(yes(rule(ev("vip"), Op::Eq, ValueType::Bool, json!("yes"))));
        assert!(yes(rule(
            Operand::Profile { attribute: "tier".into() },
            Op::In,
            ValueType::String,
            json!(["gold", "platinum"])
        )));
        assert!(yes(rule(
            Operand::Profile { attribute: "signed_up".into() },
            Op::Lt,
            ValueType::Time,
            json!("2025-01-01T00:00:00Z")
        )));
        let views = Operand::CountInWindow { event: "page_viewed".into(), hours: 24 };
        assert!(yes(rule(views, Op::Ge, ValueType::Number, json!(5))));
        assert!(yes(rule(Operand::LastSeen, Op::Gt, ValueType::Time, json!(1_600_000_000))));
    }

    #[test]
    fn missing_fields_are_not_exists_and_never_match_comparisons() {
        let f = F { event: json!({ "a": null }), profile: json!({}) };
        let one = |op, v| {
            RuleGroup { join: Join::All, items: vec![rule(ev("nope.deeper[3]"), op, ValueType::Number, v)] }.eval(&f)
        };
        assert!(one(Op::NotExists, Value::Null));
        assert!(!one(Op::Exists, Value::Null));
        for op in [Op::Eq, Op::Ne, Op::Lt, Op::Gt, Op::Contains, Op::In] {
            assert!(!one(op, json!(1)), "{op:?}");
        }
        let null =
            RuleGroup { join: Join::All, items: vec![rule(ev("a"), Op::NotExists, ValueType::String, Value::Null)] };
        assert!(null.eval(&f), "null counts as absent");
        let bad_type = RuleGroup { join: Join::All, items: vec![rule(ev("a"), Op::Gt, ValueType::Number, json!("x"))] };
        assert!(!bad_type.eval(&f));
    }

    #[test]
    fn groups_nest_with_all_and_any() {
        let f = F { event: json!({ "n": 3 }), profile: json!({}) };
        let is = |v: i64| rule(ev("n"), Op::Eq, ValueType::Number, json!(v));
        let any = RuleGroup { join: Join::Any, items: vec![is(1), is(3)] };
        let all = RuleGroup { join: Join::All, items: vec![RuleItem::Group(any.clone()), is(3)] };
        assert!(any.eval(&f) && all.eval(&f));
        let none = RuleGroup { join: Join::All, items: vec![RuleItem::Group(any), is(4)] };
        assert!(!none.eval(&f));
        assert!(RuleGroup { join: Join::All, items: vec![] }.eval(&f), "an empty 'all' holds");
    }
}
