//! Events, their dedupe keys and work items, customers and dead letters as
//! written by ingestion: one transaction per group of requests.

use super::Db;
use crate::model::{Customer, DeadLetter, Event, EventFilter};
use crate::with_pool;
use std::collections::HashMap;

pub struct NewEvent {
    pub event_id: String,
    pub source_id: String,
    pub external_id: String,
    pub name: String,
    pub customer_id: String,
    pub occurred_at: i64,
    pub received_at: i64,
    pub payload: String,
    /// JSON object of profile attributes to merge into the customer.
    pub profile: String,
    /// The dead letter this event replays, marked replayed in the same transaction.
    pub replay_of: Option<String>,
}

pub struct NewDeadLetter {
    pub dead_letter_id: String,
    pub source_id: String,
    pub received_at: i64,
    pub payload: String,
    pub reason: String,
}

pub enum Write {
    Event(NewEvent),
    DeadLetter(NewDeadLetter),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Accepted {
        event_id: String,
    },
    /// The sender's event id was seen before; `event_id` is the first one's.
    Duplicate {
        event_id: String,
    },
    DeadLettered {
        dead_letter_id: String,
    },
}

#[derive(Default)]
struct Counts {
    accepted: i64,
    duplicates: i64,
    rejected: i64,
    last_event_at: i64,
}

/// Writes a group of events and dead letters in one transaction; nothing is
/// acknowledged before this returns Ok.
pub async fn commit(db: &Db, writes: &[Write]) -> sqlx::Result<Vec<Written>> {
    let postgres = matches!(db, Db::Postgres(_));
    let upsert_customer = if postgres {
        "insert into customer (customer_id, attributes, first_seen_at, last_seen_at, event_count) \
         values ($1, $2, $3, $3, 1) on conflict (customer_id) do update set \
         attributes = (customer.attributes::jsonb || excluded.attributes::jsonb)::text, \
         first_seen_at = least(customer.first_seen_at, excluded.first_seen_at), \
         last_seen_at = greatest(customer.last_seen_at, excluded.last_seen_at), \
         event_count = customer.event_count + 1"
    } else {
        "insert into customer (customer_id, attributes, first_seen_at, last_seen_at, event_count) \
         values ($1, $2, $3, $3, 1) on conflict (customer_id) do update set \
         attributes = json_patch(customer.attributes, excluded.attributes), \
         first_seen_at = min(customer.first_seen_at, excluded.first_seen_at), \
         last_seen_at = max(customer.last_seen_at, excluded.last_seen_at), \
         event_count = customer.event_count + 1"
    };
    let bump_source = if postgres {
        "update source set accepted_count = accepted_count + $1, duplicate_count = duplicate_count + $2, \
         rejected_count = rejected_count + $3, last_event_at = greatest(coalesce(last_event_at, 0), $4) \
         where source_id = $5"
    } else {
        "update source set accepted_count = accepted_count + $1, duplicate_count = duplicate_count + $2, \
         rejected_count = rejected_count + $3, last_event_at = max(coalesce(last_event_at, 0), $4) \
         where source_id = $5"
    };
    with_pool!(db, p => {
        let mut tx = p.begin().await?;
        let mut out = Vec::with_capacity(writes.len());
        let mut counts: HashMap<&str, Counts> = HashMap::new();
        for w in writes {
            match w {
                Write::Event(e) => {
                    let c = counts.entry(e.source_id.as_str()).or_default();
                    let fresh = sqlx::query(
                        "insert into event_dedupe (source_id, external_id, event_id, created_at) values ($1, $2, $3, $4) \
                         on conflict (source_id, external_id) do nothing",
                    )
                    .bind(&e.source_id).bind(&e.external_id).bind(&e.event_id).bind(e.received_at)
                    .execute(&mut *tx).await?.rows_affected() == 1;
                    if !fresh {
                        let first: String = sqlx::query_scalar(
                            "select event_id from event_dedupe where source_id = $1 and external_id = $2",
                        )
                        .bind(&e.source_id).bind(&e.external_id)
                        .fetch_one(&mut *tx).await?;
                        c.duplicates += 1;
                        out.push(Written::Duplicate { event_id: first });
                        continue;
                    }
                    sqlx::query(
                        "insert into event (event_id, source_id, external_id, name, customer_id, occurred_at, received_at, payload) \
                         values ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(&e.event_id).bind(&e.source_id).bind(&e.external_id).bind(&e.name)
                    .bind(&e.customer_id).bind(e.occurred_at).bind(e.received_at).bind(&e.payload)
                    .execute(&mut *tx).await?;
                    sqlx::query("insert into work_item (event_id, created_at) values ($1, $2)")
                        .bind(&e.event_id).bind(e.received_at)
                        .execute(&mut *tx).await?;
                    sqlx::query(upsert_customer)
                        .bind(&e.customer_id).bind(&e.profile).bind(e.occurred_at)
                        .execute(&mut *tx).await?;
                    if let Some(dl) = &e.replay_of {
                        sqlx::query("update dead_letter set replayed_at = $1, replayed_event_id = $2 where dead_letter_id = $3")
                            .bind(e.received_at).bind(&e.event_id).bind(dl)
                            .execute(&mut *tx).await?;
                    }
                    c.accepted += 1;
                    c.last_event_at = c.last_event_at.max(e.received_at);
                    out.push(Written::Accepted { event_id: e.event_id.clone() });
                }
                Write::DeadLetter(d) => {
                    sqlx::query(
                        "insert into dead_letter (dead_letter_id, source_id, received_at, payload, reason) values ($1, $2, $3, $4, $5)",
                    )
                    .bind(&d.dead_letter_id).bind(&d.source_id).bind(d.received_at).bind(&d.payload).bind(&d.reason)
                    .execute(&mut *tx).await?;
                    counts.entry(d.source_id.as_str()).or_default().rejected += 1;
                    out.push(Written::DeadLettered { dead_letter_id: d.dead_letter_id.clone() });
                }
            }
        }
        for (source_id, c) in &counts {
            sqlx::query(bump_source)
                .bind(c.accepted).bind(c.duplicates).bind(c.rejected).bind(c.last_event_at).bind(*source_id)
                .execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(out)
    })
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub event_id: String,
    pub source_id: String,
    pub external_id: String,
    pub name: String,
    pub customer_id: String,
    pub occurred_at: i64,
    pub received_at: i64,
    pub payload: String,
}

impl EventRow {
    pub fn to_event(&self) -> Event {
        Event {
            event_id: self.event_id.clone(),
            source_id: self.source_id.clone(),
            external_id: self.external_id.clone(),
            name: self.name.clone(),
            customer_id: self.customer_id.clone(),
            occurred_at: self.occurred_at,
            received_at: self.received_at,
            // Stored from parsed JSON, so it parses; a hand-edited row shows as text.
            payload: serde_json::from_str(&self.payload).unwrap_or(serde_json::Value::String(self.payload.clone())),
        }
    }
}

const EVENT_COLUMNS: &str = "event_id, source_id, external_id, name, customer_id, occurred_at, received_at, payload";

enum Arg {
    Text(String),
    Int(i64),
}

/// Events newest first, matching `filter` (with the source as an id), before
/// `cursor` (an event id), at most `limit`. Every filter uses an index.
pub async fn list(
    db: &Db,
    source_id: Option<&str>,
    filter: &EventFilter,
    cursor: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<EventRow>> {
    let mut clauses = Vec::new();
    let mut args = Vec::new();
    let mut push = |clause: &str, arg: Arg| {
        args.push(arg);
        clauses.push(clause.replace('?', &format!("${}", args.len())));
    };
    if let Some(s) = source_id {
        push("source_id = ?", Arg::Text(s.to_string()));
    }
    if let Some(n) = &filter.name {
        push("name = ?", Arg::Text(n.clone()));
    }
    if let Some(c) = &filter.customer {
        push("customer_id = ?", Arg::Text(c.clone()));
    }
    if let Some(from) = filter.from {
        // Ids are UUID v7: the first 48 bits are the receive time, so a time bound is an id bound.
        push("event_id >= ?", Arg::Text(super::uuid_v7_floor(from)));
    }
    if let Some(to) = filter.to {
        push("event_id < ?", Arg::Text(super::uuid_v7_floor(to)));
    }
    if let Some(c) = cursor {
        push("event_id < ?", Arg::Text(c.to_string()));
    }
    args.push(Arg::Int(limit));
    let where_sql = if clauses.is_empty() { String::new() } else { format!("where {}", clauses.join(" and ")) };
    let sql = format!("select {EVENT_COLUMNS} from event {where_sql} order by event_id desc limit ${}", args.len());
    with_pool!(db, p => {
        let mut q = sqlx::query_as::<_, EventRow>(&sql);
        for a in &args {
            q = match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q.fetch_all(p).await
    })
}

pub async fn get(db: &Db, event_id: &str) -> sqlx::Result<Option<EventRow>> {
    let sql = format!("select {EVENT_COLUMNS} from event where event_id = $1");
    with_pool!(db, p => sqlx::query_as::<_, EventRow>(&sql).bind(event_id).fetch_optional(p).await)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CustomerRow {
    pub customer_id: String,
    pub attributes: String,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
    pub event_count: i64,
}

impl CustomerRow {
    pub fn to_customer(&self) -> Customer {
        Customer {
            customer_id: self.customer_id.clone(),
            attributes: serde_json::from_str(&self.attributes).unwrap_or_else(|_| serde_json::json!({})),
            first_seen_at: self.first_seen_at,
            last_seen_at: self.last_seen_at,
            event_count: self.event_count,
        }
    }
}

pub async fn customer(db: &Db, customer_id: &str) -> sqlx::Result<Option<CustomerRow>> {
    let sql =
        "select customer_id, attributes, first_seen_at, last_seen_at, event_count from customer where customer_id = $1";
    with_pool!(db, p => sqlx::query_as::<_, CustomerRow>(sql).bind(customer_id).fetch_optional(p).await)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeadLetterRow {
    pub dead_letter_id: String,
    pub source_id: String,
    pub received_at: i64,
    pub payload: String,
    pub reason: String,
    pub replayed_at: Option<i64>,
    pub replayed_event_id: Option<String>,
}

impl DeadLetterRow {
    pub fn to_dead_letter(&self) -> DeadLetter {
        DeadLetter {
            dead_letter_id: self.dead_letter_id.clone(),
            source_id: self.source_id.clone(),
            received_at: self.received_at,
            payload: serde_json::from_str(&self.payload).unwrap_or(serde_json::Value::String(self.payload.clone())),
            reason: self.reason.clone(),
            replayed_at: self.replayed_at,
            replayed_event_id: self.replayed_event_id.clone(),
        }
    }
}

const DEAD_LETTER_COLUMNS: &str =
    "dead_letter_id, source_id, received_at, payload, reason, replayed_at, replayed_event_id";

/// Dead letters newest first, optionally of one source, before `cursor`.
pub async fn dead_letters(
    db: &Db,
    source_id: Option<&str>,
    cursor: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<DeadLetterRow>> {
    let before = cursor.unwrap_or("~");
    with_pool!(db, p => match source_id {
        Some(s) => {
            let sql = format!("select {DEAD_LETTER_COLUMNS} from dead_letter where source_id = $1 and dead_letter_id < $2 order by dead_letter_id desc limit $3");
            sqlx::query_as::<_, DeadLetterRow>(&sql).bind(s).bind(before).bind(limit).fetch_all(p).await
        }
        None => {
            let sql = format!("select {DEAD_LETTER_COLUMNS} from dead_letter where dead_letter_id < $1 order by dead_letter_id desc limit $2");
            sqlx::query_as::<_, DeadLetterRow>(&sql).bind(before).bind(limit).fetch_all(p).await
        }
    })
}

pub async fn dead_letter(db: &Db, dead_letter_id: &str) -> sqlx::Result<Option<DeadLetterRow>> {
    let sql = format!("select {DEAD_LETTER_COLUMNS} from dead_letter where dead_letter_id = $1");
    with_pool!(db, p => sqlx::query_as::<_, DeadLetterRow>(&sql).bind(dead_letter_id).fetch_optional(p).await)
}

/// Forgets dedupe keys older than `before` (unix ms); returns how many.
pub async fn prune_dedupe(db: &Db, before: i64) -> sqlx::Result<u64> {
    crate::execute!(db, sqlx::query("delete from event_dedupe where created_at < $1").bind(before))
}
