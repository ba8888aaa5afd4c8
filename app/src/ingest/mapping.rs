//! A source's field mapping: JSON paths to the event name, customer id, event id,
//! optional timestamp and profile attributes, and their extraction from a payload.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a source's fields are in each payload. Paths look like `$.type`,
/// `data.customer.id` or `items[0].sku` (the leading `$.` is optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Mapping {
    /// Path of the event name, e.g. `$.type`.
    pub event_name: String,
    /// Path of the customer id, e.g. `$.customer.id`.
    pub customer_id: String,
    /// Path of the sender's event id, used to drop duplicates, e.g. `$.id`.
    pub event_id: String,
    /// Path of the event time (RFC 3339 text, or unix seconds or milliseconds); default: time received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Profile attributes set from each event: attribute name → path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profile: Vec<ProfileField>,
    /// Path of an offer code the event redeems, e.g. `$.order.coupon`. Only a
    /// code at this path redeems (a code elsewhere in the payload does not);
    /// without it, this source's events redeem nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ProfileField {
    /// The profile attribute, e.g. `email`.
    pub attribute: String,
    /// Its path in the payload, e.g. `$.customer.email`.
    pub path: String,
}

/// Reads profile fields written one per line as `attribute = path`.
pub fn parse_profile_lines(text: &str) -> Result<Vec<ProfileField>, String> {
    let mut fields = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (attribute, path) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: write `attribute = path`, e.g. email = $.customer.email", n + 1))?;
        fields.push(ProfileField { attribute: attribute.trim().to_string(), path: path.trim().to_string() });
    }
    Ok(fields)
}

/// The inverse of `parse_profile_lines`.
pub fn profile_lines(fields: &[ProfileField]) -> String {
    fields.iter().map(|f| format!("{} = {}", f.attribute, f.path)).collect::<Vec<_>>().join("\n")
}

/// One step of a parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// A parsed JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    text: String,
    steps: Vec<Step>,
}

impl Path {
    pub fn parse(text: &str) -> Result<Path, String> {
        let trimmed = text.trim();
        let rest = trimmed.strip_prefix("$.").or_else(|| trimmed.strip_prefix('$')).unwrap_or(trimmed);
        if rest.is_empty() {
            return Err("the path is empty; write e.g. $.type".into());
        }
        let mut steps = Vec::new();
        for segment in rest.split('.') {
            let (key, mut indices) = match segment.find('[') {
                Some(i) => (&segment[..i], &segment[i..]),
                None => (segment, ""),
            };
            if key.is_empty() && indices.is_empty() {
                return Err(format!("'{trimmed}' has an empty segment"));
            }
            if !key.is_empty() {
                steps.push(Step::Key(key.to_string()));
            }
            while !indices.is_empty() {
                let close = indices.find(']').ok_or_else(|| format!("'{trimmed}' has an unclosed ["))?;
                let n: usize =
                    indices[1..close].parse().map_err(|_| format!("'{trimmed}': array indices are whole numbers"))?;
                steps.push(Step::Index(n));
                indices = &indices[close + 1..];
                if !indices.is_empty() && !indices.starts_with('[') {
                    return Err(format!("'{trimmed}': expected [ or . after ]"));
                }
            }
        }
        Ok(Path { text: trimmed.to_string(), steps })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value at this path, if any (JSON null counts as absent).
    pub fn get<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        let mut at = value;
        for step in &self.steps {
            at = match step {
                Step::Key(k) => at.get(k.as_str())?,
                Step::Index(i) => at.get(*i)?,
            };
        }
        (!at.is_null()).then_some(at)
    }
}

/// The fields of one event, read from its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub event_name: String,
    pub customer_id: String,
    pub event_id: String,
    /// Unix milliseconds, when the mapping has a timestamp path.
    pub occurred_at: Option<i64>,
    /// Attribute name → value, for the customer's profile.
    pub profile: serde_json::Map<String, Value>,
    /// The offer code the event redeems, when the mapping names its path.
    pub offer_code: Option<String>,
}

/// Why a payload could not be mapped: names the path, for the sender to fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingError {
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for MappingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.path, self.reason)
    }
}

/// A mapping with its paths parsed, ready to apply to many payloads.
#[derive(Debug, Clone)]
pub struct CompiledMapping {
    event_name: Path,
    customer_id: Path,
    event_id: Path,
    timestamp: Option<Path>,
    profile: Vec<(String, Path)>,
    offer_code: Option<Path>,
}

impl Mapping {
    /// Checks every path; the error names the field (`mapping.event_name`, …).
    pub fn compile(&self) -> Result<CompiledMapping, (String, String)> {
        // The detail names the field too: an API client or a form showing one
        // message must not have to guess which of five paths it is about.
        let p = |field: &str, label: &str, text: &str| {
            Path::parse(text).map_err(|e| (format!("mapping.{field}"), format!("{label}: {e}.")))
        };
        // An optional path: absent or blank means none.
        let optional = |field: &str, label: &str, text: &Option<String>| {
            text.as_deref().filter(|t| !t.trim().is_empty()).map(|t| p(field, label, t)).transpose()
        };
        let mut profile = Vec::new();
        for (i, f) in self.profile.iter().enumerate() {
            let attribute = f.attribute.trim();
            if attribute.is_empty() || attribute.len() > 64 {
                return Err((
                    format!("mapping.profile[{i}].attribute"),
                    format!("Profile line {}: name the attribute (1 to 64 characters).", i + 1),
                ));
            }
            let label = format!("Profile attribute '{attribute}'");
            profile.push((attribute.to_string(), p(&format!("profile[{i}].path"), &label, &f.path)?));
        }
        Ok(CompiledMapping {
            event_name: p("event_name", "Event name", &self.event_name)?,
            customer_id: p("customer_id", "Customer id", &self.customer_id)?,
            event_id: p("event_id", "Event id", &self.event_id)?,
            timestamp: optional("timestamp", "Event time", &self.timestamp)?,
            profile,
            offer_code: optional("offer_code", "Offer code", &self.offer_code)?,
        })
    }
}

/// Text of an identifier-like value: strings as they are, numbers in decimal.
fn ident(path: &Path, value: Option<&Value>, what: &str) -> Result<String, MappingError> {
    let err = |reason: String| MappingError { path: path.as_str().to_string(), reason };
    match value {
        None => Err(err(format!("is missing: no {what} there"))),
        Some(Value::String(s)) if s.trim().is_empty() => Err(err(format!("is empty: the {what} must be text"))),
        Some(Value::String(s)) if s.len() > 256 => {
            Err(err(format!("is longer than 256 bytes: not a plausible {what}")))
        }
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(other) => Err(err(format!("is {}, not text or a number", kind(other)))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Unix milliseconds from RFC 3339 text or a unix time in seconds or milliseconds.
pub fn parse_time(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => {
            let f = n.as_f64()?;
            // Below 10^11 it cannot be milliseconds of any date after 1973.
            let ms = if f.abs() < 1e11 { f * 1000.0 } else { f };
            ms.is_finite().then_some(ms as i64)
        }
        Value::String(s) => parse_rfc3339(s),
        _ => None,
    }
}

/// A small RFC 3339 reader (`2026-11-27T12:00:00Z`, fractions and offsets allowed),
/// kept here so the pure core needs no date crate.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { std::str::from_utf8(&b[r]).ok()?.parse().ok() };
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = std::str::from_utf8(&b[start..i]).ok()?;
        let ms: String = digits.chars().chain("000".chars()).take(3).collect();
        frac_ms = ms.parse().ok()?;
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let m = oh * 60 + om;
            if *sign == b'+' {
                m
            } else {
                -m
            }
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant).
    let (y2, m2) = if mo <= 2 { (y - 1, mo + 9) } else { (y, mo - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Some(secs * 1000 + frac_ms)
}

impl Path {
    /// Sets `value` at this path in `root`, creating objects and arrays on the way.
    pub fn set(&self, root: &mut Value, value: Value) {
        let mut at = root;
        for step in &self.steps {
            at = match step {
                Step::Key(k) => {
                    if !at.is_object() {
                        *at = Value::Object(serde_json::Map::new());
                    }
                    match at {
                        Value::Object(map) => map.entry(k.clone()).or_insert(Value::Null),
                        _ => return,
                    }
                }
                Step::Index(i) => {
                    if !at.is_array() {
                        *at = Value::Array(Vec::new());
                    }
                    match at {
                        Value::Array(items) => {
                            if items.len() <= *i {
                                items.resize(*i + 1, Value::Null);
                            }
                            &mut items[*i]
                        }
                        _ => return,
                    }
                }
            };
        }
        *at = value;
    }
}

impl CompiledMapping {
    /// A payload this mapping accepts, for examples and test events: every mapped
    /// path filled in. `unique` makes the event id unique; `now` is unix ms.
    pub fn sample(&self, unique: &str, now: i64) -> Value {
        let mut v = Value::Object(serde_json::Map::new());
        self.event_name.set(&mut v, Value::String("test_event".into()));
        self.customer_id.set(&mut v, Value::String("test-customer".into()));
        self.event_id.set(&mut v, Value::String(format!("test-{unique}")));
        if let Some(t) = &self.timestamp {
            t.set(&mut v, Value::from(now.div_euclid(1000)));
        }
        for (attribute, path) in &self.profile {
            let example = if attribute.contains("email") {
                "test@example.com".to_string()
            } else {
                format!("example {attribute}")
            };
            path.set(&mut v, Value::String(example));
        }
        if let Some(path) = &self.offer_code {
            path.set(&mut v, Value::String("TEST-CODE".into()));
        }
        v
    }

    /// Reads an event's fields; the error names the first path that failed.
    pub fn apply(&self, payload: &Value) -> Result<Mapped, MappingError> {
        if !payload.is_object() {
            return Err(MappingError {
                path: "$".into(),
                reason: format!("is {}, not an event object", kind(payload)),
            });
        }
        let event_name = ident(&self.event_name, self.event_name.get(payload), "event name")?;
        let customer_id = ident(&self.customer_id, self.customer_id.get(payload), "customer id")?;
        let event_id = ident(&self.event_id, self.event_id.get(payload), "event id")?;
        let occurred_at = match &self.timestamp {
            None => None,
            Some(path) => match path.get(payload) {
                None => None,
                Some(v) => Some(parse_time(v).ok_or_else(|| MappingError {
                    path: path.as_str().to_string(),
                    reason: "is not a time: use RFC 3339 text or unix seconds or milliseconds".into(),
                })?),
            },
        };
        let mut profile = serde_json::Map::new();
        for (attribute, path) in &self.profile {
            if let Some(v) = path.get(payload) {
                profile.insert(attribute.clone(), v.clone());
            }
        }
        // A code is text or a number; anything else (or nothing) redeems nothing.
        let offer_code = self.offer_code.as_ref().and_then(|path| match path.get(payload)? {
            Value::String(s) if !s.trim().is_empty() && s.len() <= 256 => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        Ok(Mapped { event_name, customer_id, event_id, occurred_at, profile, offer_code })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shop_mapping() -> Mapping {
        Mapping {
            event_name: "$.type".into(),
            customer_id: "data.customer.id".into(),
            event_id: "$.id".into(),
            timestamp: Some("$.created".into()),
            profile: vec![
                ProfileField { attribute: "email".into(), path: "$.data.customer.email".into() },
                ProfileField { attribute: "first_sku".into(), path: "$.data.items[0].sku".into() },
            ],
            offer_code: Some("$.data.coupon".into()),
        }
    }

    #[test]
    fn maps_names_ids_times_and_profile_fields_from_nested_payloads() {
        let m = shop_mapping().compile().unwrap();
        let payload = json!({
            "id": "evt_1", "type": "cart_abandoned", "created": "2026-11-27T12:00:00.250+01:00",
            "data": { "customer": { "id": 42, "email": "ana@example.com" }, "items": [{ "sku": "TEE-1" }] }
        });
        let got = m.apply(&payload).unwrap();
        assert_eq!(got.event_name, "cart_abandoned");
        assert_eq!(got.customer_id, "42", "numeric ids become text");
        assert_eq!(got.event_id, "evt_1");
        assert_eq!(got.occurred_at, Some(parse_rfc3339("2026-11-27T11:00:00.250Z").unwrap()));
        assert_eq!(got.profile["email"], "ana@example.com");
        assert_eq!(got.profile["first_sku"], "TEE-1");
        assert_eq!(got.offer_code, None, "no code at the offer-code path");
    }

    #[test]
    fn the_offer_code_is_read_at_its_path_only() {
        let m = shop_mapping().compile().unwrap();
        let base = json!({ "id": "e", "type": "order_completed", "data": { "customer": { "id": "c" } } });
        let with = |data: Value| {
            let mut p = base.clone();
            p["data"].as_object_mut().unwrap().extend(data.as_object().unwrap().clone());
            m.apply(&p).unwrap().offer_code
        };
        assert_eq!(with(json!({ "coupon": " CART-1 " })), Some("CART-1".into()));
        assert_eq!(with(json!({ "coupon": 1234 })), Some("1234".into()));
        assert_eq!(with(json!({ "note": "CART-1", "coupons": ["CART-1"] })), None, "elsewhere is not a redemption");
        assert_eq!(with(json!({ "coupon": "" })), None);
        assert_eq!(with(json!({ "coupon": { "code": "CART-1" } })), None);
        let bad = Mapping { offer_code: Some("$.a[".into()), ..shop_mapping() };
        assert_eq!(bad.compile().unwrap_err().0, "mapping.offer_code");
        let sample = m.sample("1", 0);
        assert_eq!(m.apply(&sample).unwrap().offer_code, Some("TEST-CODE".into()));
    }

    #[test]
    fn a_missing_field_names_its_path_and_never_panics() {
        let m = shop_mapping().compile().unwrap();
        let err = m.apply(&json!({ "id": "e", "type": "x", "data": {} })).unwrap_err();
        assert_eq!(err.path, "data.customer.id");
        assert!(err.reason.contains("missing"));
        let err =
            m.apply(&json!({ "id": { "nested": 1 }, "type": "x", "data": { "customer": { "id": "c" } } })).unwrap_err();
        assert_eq!(err.path, "$.id");
        assert!(err.reason.contains("an object"));
        let err = m.apply(&json!([1, 2])).unwrap_err();
        assert_eq!(err.path, "$");
        let err = m.apply(&json!({ "id": "e", "type": "x", "created": true, "data": { "customer": { "id": "c" } } }));
        assert_eq!(err.unwrap_err().path, "$.created");
        // Absent optional parts are fine.
        let ok = m.apply(&json!({ "id": "e", "type": "x", "data": { "customer": { "id": "c" } } })).unwrap();
        assert_eq!(ok.occurred_at, None);
        assert!(ok.profile.is_empty());
    }

    #[test]
    fn bad_paths_are_refused_with_the_field_named() {
        let mut m = shop_mapping();
        m.event_id = "$.".into();
        assert_eq!(m.compile().unwrap_err().0, "mapping.event_id");
        m.event_id = "items[x]".into();
        assert_eq!(m.compile().unwrap_err().0, "mapping.event_id");
        m.event_id = "a..b".into();
        let (field, detail) = m.compile().unwrap_err();
        assert_eq!(field, "mapping.event_id");
        assert_eq!(detail, "Event id: 'a..b' has an empty segment.", "the message alone says which field");
        assert!(Path::parse("a[0][1].b").is_ok());
    }

    #[test]
    fn a_sample_payload_satisfies_its_own_mapping() {
        let m = shop_mapping().compile().unwrap();
        let sample = m.sample("abc", 1_700_000_000_000);
        let got = m.apply(&sample).unwrap();
        assert_eq!(got.event_name, "test_event");
        assert_eq!(got.event_id, "test-abc");
        assert_eq!(got.occurred_at, Some(1_700_000_000_000));
        assert_eq!(got.profile["email"], "test@example.com");
        assert_eq!(sample["data"]["items"][0]["sku"], "example first_sku");
    }

    #[test]
    fn profile_lines_round_trip_and_bad_lines_are_named() {
        let fields = parse_profile_lines("email = $.customer.email\n\n tier=$.customer.tier ").unwrap();
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[1], ProfileField { attribute: "tier".into(), path: "$.customer.tier".into() });
        assert_eq!(parse_profile_lines(&profile_lines(&fields)).unwrap(), fields);
        assert!(parse_profile_lines("email\n").unwrap_err().starts_with("line 1"));
    }

    #[test]
    fn times_parse_from_text_seconds_and_milliseconds() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800_000));
        assert_eq!(parse_time(&json!(951_868_800)), Some(951_868_800_000));
        assert_eq!(parse_time(&json!(951_868_800_123i64)), Some(951_868_800_123));
        assert_eq!(parse_rfc3339("2000-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
