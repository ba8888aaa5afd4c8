//! The webhook gateway: verify and map events, then hand them to the engine,
//! acknowledging only what it committed (see `engine`: many requests share
//! one transaction, evaluated in it).

use super::signature;
use super::Ctx;
use crate::error::{AppError, AppResult};
use crate::ingest::mapping::CompiledMapping;
use crate::store::{
    self,
    events::{NewDeadLetter, NewEvent, Write, Written},
    Db,
};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Limits of the webhook endpoint.
#[derive(Debug, Clone)]
pub struct IngestLimits {
    pub max_body_bytes: usize,
    pub max_batch_events: usize,
    /// Events per second each source may send (a token bucket holding two seconds' worth); 0 = no limit.
    pub events_per_second: u32,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits { max_body_bytes: 1024 * 1024, max_batch_events: 500, events_per_second: 100_000 }
    }
}

/// How long a cached source is used before it is read again. Changes made
/// through this process apply at once (they clear the cache); this bounds how
/// long another node's change (a disabled source, a rotated secret) takes.
const SOURCE_TTL: Duration = Duration::from_secs(1);

/// A source with its mapping compiled: what each webhook request needs,
/// without a query and a parse per request.
#[derive(Debug)]
pub struct CachedSource {
    pub row: store::sources::SourceRow,
    pub mapping: CompiledMapping,
}

/// Sources by slug, each read at most once a second (see `SOURCE_TTL`).
#[derive(Debug, Default)]
pub struct SourceCache {
    by_slug: Mutex<HashMap<String, (Arc<CachedSource>, Instant)>>,
}

impl SourceCache {
    /// The enabled source at `slug`, from the cache or the database.
    pub async fn enabled(&self, db: &Db, slug: &str) -> AppResult<Option<Arc<CachedSource>>> {
        let now = Instant::now();
        let cached = {
            let map = self.by_slug.lock().unwrap_or_else(|p| p.into_inner());
            map.get(slug).filter(|(_, at)| now.duration_since(*at) < SOURCE_TTL).map(|(s, _)| s.clone())
        };
        if let Some(source) = cached {
            return Ok(Some(source));
        }
        let Some(row) = store::sources::find_by_slug(db, slug).await?.filter(|s| s.enabled != 0) else {
            return Ok(None);
        };
        let mapping = compiled_mapping(&row)?;
        let source = Arc::new(CachedSource { row, mapping });
        let mut map = self.by_slug.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: unknown slugs are never kept, and sources are few.
        if map.len() > 10_000 {
            map.clear();
        }
        map.insert(slug.to_string(), (source.clone(), now));
        Ok(Some(source))
    }

    /// Drops every cached source: call after changing one.
    pub fn forget(&self) {
        self.by_slug.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Per-source token buckets: `rate` events per second, bursts of two seconds.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// Takes `n` tokens for `key`, or says how long to wait.
    pub fn take(&self, key: &str, n: usize, rate: u32, now: Instant) -> Result<(), Duration> {
        if rate == 0 {
            return Ok(());
        }
        let rate = f64::from(rate);
        let capacity = rate * 2.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, at) = buckets.entry(key.to_string()).or_insert((capacity, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * rate).min(capacity);
        *at = now;
        let n = n as f64;
        if *tokens >= n {
            *tokens -= n;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(((n - *tokens) / rate).max(0.001)))
        }
    }
}

/// One webhook request as received.
pub struct Hook<'a> {
    pub slug: &'a str,
    pub content_type: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

/// What became of one event of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ItemResult {
    /// Position in the batch (0 for a single event).
    pub index: usize,
    /// The sender's event id, when the mapping found one.
    pub event_id: Option<String>,
    /// `accepted`, `duplicate` or `rejected`.
    pub status: String,
    /// Nudge's id of the stored event (for a duplicate: of the first one).
    pub nudge_id: Option<String>,
    /// Why the event was rejected, naming the path.
    pub reason: Option<String>,
    /// Where the rejected event was kept for replay.
    pub dead_letter_id: Option<String>,
}

/// The answer to a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct BatchResult {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub results: Vec<ItemResult>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    Single(ItemResult),
    Batch(BatchResult),
}

fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .map(|ct| {
            let ct = ct.trim().to_ascii_lowercase();
            ct == "application/json" || (ct.starts_with("application/") && ct.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Verifies, maps and durably stores a webhook request. `now` is unix milliseconds.
pub async fn receive(ctx: &Ctx, hook: Hook<'_>, now: i64) -> AppResult<HookOutcome> {
    let cached = ctx
        .sources
        .enabled(&ctx.db, hook.slug)
        .await?
        // The same answer for unknown and disabled sources: no probing.
        .ok_or_else(|| AppError::NotFound("No enabled source at this address.".into()))?;
    let source = &cached.row;
    if !is_json(hook.content_type) {
        return Err(AppError::UnsupportedMediaType(
            "Send the events as JSON with Content-Type: application/json.".into(),
        ));
    }
    if hook.body.len() > ctx.ingest_limits.max_body_bytes {
        return Err(AppError::TooLarge(format!(
            "The body is {} bytes; the limit is {} bytes.",
            hook.body.len(),
            ctx.ingest_limits.max_body_bytes
        )));
    }
    signature::verify(hook.signature, &source.secrets(now), hook.body, now.div_euclid(1000)).map_err(|e| {
        tracing::warn!(source = %source.slug, error = ?e, "Signature check failed.");
        AppError::Unauthorized(e.detail().into())
    })?;
    let body: serde_json::Value = serde_json::from_slice(hook.body).map_err(|e| {
        AppError::Malformed(format!("Malformed JSON at line {}, column {}: {e}.", e.line(), e.column()))
    })?;
    let (items, batch) = match body {
        serde_json::Value::Array(items) => (items, true),
        other => (vec![other], false),
    };
    if batch && items.is_empty() {
        return Err(AppError::Malformed("The batch is empty.".into()));
    }
    if items.len() > ctx.ingest_limits.max_batch_events {
        return Err(AppError::TooLarge(format!(
            "A batch holds at most {} events; this one has {}.",
            ctx.ingest_limits.max_batch_events,
            items.len()
        )));
    }
    if let Err(wait) =
        ctx.rate.take(&source.source_id, items.len(), ctx.ingest_limits.events_per_second, Instant::now())
    {
        return Err(AppError::TooManyRequests {
            detail: format!("This source sends faster than {} events per second.", ctx.ingest_limits.events_per_second),
            retry_after_secs: wait.as_secs().max(1),
        });
    }
    let mapping = &cached.mapping;
    let mut writes = Vec::with_capacity(items.len());
    let mut sender_ids = Vec::with_capacity(items.len());
    for item in items {
        let (write, sender_id) = prepare(&source.source_id, mapping, item, now, None);
        writes.push(write);
        sender_ids.push(sender_id);
    }
    let written = ctx.engine.submit(writes).await?;
    let results: Vec<ItemResult> = written
        .into_iter()
        .zip(sender_ids)
        .enumerate()
        .map(|(index, (w, (event_id, reason)))| match w {
            Written::Accepted { event_id: nudge_id } => ItemResult {
                index,
                event_id,
                status: "accepted".into(),
                nudge_id: Some(nudge_id),
                reason: None,
                dead_letter_id: None,
            },
            Written::Duplicate { event_id: nudge_id } => ItemResult {
                index,
                event_id,
                status: "duplicate".into(),
                nudge_id: Some(nudge_id),
                reason: None,
                dead_letter_id: None,
            },
            Written::DeadLettered { dead_letter_id } => ItemResult {
                index,
                event_id,
                status: "rejected".into(),
                nudge_id: None,
                reason,
                dead_letter_id: Some(dead_letter_id),
            },
        })
        .collect();
    if !batch {
        let one = results.into_iter().next().ok_or(AppError::Internal)?;
        if one.status == "rejected" {
            return Err(AppError::Invalid {
                field: None,
                detail: format!(
                    "Mapping failed: {}. The event is kept in the dead-letter list ({}) for replay once the mapping is fixed.",
                    one.reason.clone().unwrap_or_default(),
                    one.dead_letter_id.clone().unwrap_or_default()
                ),
            });
        }
        return Ok(HookOutcome::Single(one));
    }
    let count = |s: &str| results.iter().filter(|r| r.status == s).count();
    Ok(HookOutcome::Batch(BatchResult {
        accepted: count("accepted"),
        duplicates: count("duplicate"),
        rejected: count("rejected"),
        results,
    }))
}

pub(crate) fn compiled_mapping(source: &store::sources::SourceRow) -> AppResult<CompiledMapping> {
    let mapping = source.mapping().map_err(|e| {
        tracing::error!(source = %source.slug, error = %e, "Stored mapping is unreadable.");
        AppError::Internal
    })?;
    mapping.compile().map_err(|(field, e)| {
        tracing::error!(source = %source.slug, field = %field, error = %e, "Stored mapping is invalid.");
        AppError::Internal
    })
}

/// Maps one payload into the write that stores it: an event, or a dead letter.
/// Also returns the sender's event id (if found) and the rejection reason.
pub(crate) fn prepare(
    source_id: &str,
    mapping: &CompiledMapping,
    item: serde_json::Value,
    now: i64,
    replay_of: Option<String>,
) -> (Write, (Option<String>, Option<String>)) {
    // Postgres cannot store NUL characters in text or JSONB; refuse them the same
    // way on every backend rather than fail the whole group commit.
    let mapped = mapping.apply(&item).and_then(|m| {
        let profile_has_nul = m.profile.values().any(|v| v.to_string().contains("\\u0000"));
        if [&m.event_name, &m.customer_id, &m.event_id].iter().any(|s| s.contains('\0')) || profile_has_nul {
            Err(crate::ingest::mapping::MappingError { path: "$".into(), reason: "contains a NUL character".into() })
        } else {
            Ok(m)
        }
    });
    match mapped {
        Ok(m) => {
            let sender_id = m.event_id.clone();
            let write = Write::Event(NewEvent {
                event_id: store::new_id(),
                source_id: source_id.to_string(),
                external_id: m.event_id,
                name: m.event_name,
                customer_id: m.customer_id,
                occurred_at: m.occurred_at.unwrap_or(now),
                received_at: now,
                payload: item.to_string(),
                parsed: item,
                profile: m.profile,
                offer_code: m.offer_code,
                replay_of,
            });
            (write, (Some(sender_id), None))
        }
        Err(e) => {
            let write = Write::DeadLetter(NewDeadLetter {
                dead_letter_id: store::new_id(),
                source_id: source_id.to_string(),
                received_at: now,
                payload: item.to_string(),
                reason: e.to_string(),
            });
            (write, (None, Some(e.to_string())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_allows_bursts_then_asks_to_wait() {
        let r = RateLimiter::default();
        let t = Instant::now();
        assert!(r.take("s", 20, 10, t).is_ok(), "a burst of two seconds' worth");
        let wait = r.take("s", 5, 10, t).unwrap_err();
        assert!(wait >= Duration::from_millis(490) && wait <= Duration::from_millis(510), "{wait:?}");
        assert!(r.take("s", 5, 10, t + Duration::from_millis(500)).is_ok());
        assert!(r.take("other", 20, 10, t).is_ok(), "buckets are per source");
        assert!(r.take("s", 1_000_000, 0, t).is_ok(), "0 means no limit");
    }

    #[test]
    fn only_json_content_types_are_accepted() {
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("application/json; charset=utf-8")));
        assert!(is_json(Some("application/cloudevents+json")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(None));
    }
}
