//! A customer's profile: how a source's mapped attributes and a workflow's
//! profile changes alter it. The engine keeps the group's profiles current
//! with these while it evaluates, the store writes their outcome, and the
//! backtest replays them: one rule.

use super::model::ProfileChange;
use serde_json::{Map, Value};

/// Merges the attributes a source's mapping read from an event: each
/// top-level attribute replaced whole (a nested object is not merged into
/// the old one). The store's upsert does the same in SQL (`||` on Postgres,
/// `json_patch` on SQLite; the mapping never yields nulls).
pub fn merge_mapped(profile: &mut Value, attributes: &Map<String, Value>) {
    if attributes.is_empty() {
        return;
    }
    if !profile.is_object() {
        *profile = Value::Object(Map::new());
    }
    if let Some(map) = profile.as_object_mut() {
        for (k, v) in attributes {
            map.insert(k.clone(), v.clone());
        }
    }
}

/// Applies profile changes to a profile object (tags live in `tags`, a list).
pub fn apply_changes(profile: &mut Value, changes: &[ProfileChange]) {
    if !profile.is_object() {
        *profile = Value::Object(Default::default());
    }
    let Some(map) = profile.as_object_mut() else { return };
    for change in changes {
        match change {
            ProfileChange::Set { attribute, value } => {
                map.insert(attribute.clone(), Value::String(value.clone()));
            }
            ProfileChange::Unset { attribute } => {
                map.remove(attribute);
            }
            ProfileChange::AddTag { tag } => {
                let tags = map.entry("tags").or_insert_with(|| Value::Array(Vec::new()));
                if !tags.is_array() {
                    *tags = Value::Array(Vec::new());
                }
                if let Value::Array(list) = tags {
                    if !list.iter().any(|t| t.as_str() == Some(tag)) {
                        list.push(Value::String(tag.clone()));
                    }
                }
            }
            ProfileChange::RemoveTag { tag } => {
                if let Some(Value::Array(list)) = map.get_mut("tags") {
                    list.retain(|t| t.as_str() != Some(tag));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mapped_attributes_replace_top_level_keys_whole() {
        let mut profile =
            json!({ "email": "old@example.com", "address": { "city": "Lyon", "zip": "69001" }, "tier": "gold" });
        let attrs = json!({ "email": "new@example.com", "address": { "city": "Paris" } });
        merge_mapped(&mut profile, attrs.as_object().unwrap());
        assert_eq!(profile, json!({ "email": "new@example.com", "address": { "city": "Paris" }, "tier": "gold" }));
        let mut none = Value::Null;
        merge_mapped(&mut none, json!({ "a": 1 }).as_object().unwrap());
        assert_eq!(none, json!({ "a": 1 }));
    }
}
