//! Events, their dedupe keys, customers and dead letters as written by the
//! engine's group commit, and the reads of them.

use super::{Db, Id, IdText};
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
    /// The payload as stored (JSON text) and as parsed once, for evaluation
    /// and the live feed.
    pub payload: String,
    pub parsed: serde_json::Value,
    /// Profile attributes to merge into the customer.
    pub profile: serde_json::Map<String, serde_json::Value>,
    /// The offer code the event redeems (from the mapping's offer-code path).
    pub offer_code: Option<String>,
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

/// `($1, $2, …), (…)` for `rows` rows of `cols` placeholders — on SQLite
/// anonymous `(?, ?, …)`, bound in order. (sqlx looks up each parameter's
/// name, and SQLite finds a name by scanning the statement's list of named
/// parameters: quadratic in a statement of thousands, free for anonymous ones.)
pub(crate) fn values(db: &Db, rows: usize, cols: usize) -> String {
    let anonymous = matches!(db, Db::Sqlite(_));
    let mut out = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            if anonymous {
                out.push('?');
            } else {
                out.push('$');
                out.push_str(&(r * cols + c + 1).to_string());
            }
        }
        out.push(')');
    }
    out
}

/// Rows per multi-row statement: well under both backends' parameter limits.
const CHUNK: usize = 400;

/// A customer's changes from one group: merged profile, seen times, event count.
struct CustomerDelta {
    profile: serde_json::Map<String, serde_json::Value>,
    first: i64,
    last: i64,
    count: i64,
}

/// Writes a group of events and dead letters inside the group's transaction
/// (see `store::group`); nothing is acknowledged before that commits. Rows go
/// in multi-row statements, so a group of a thousand events is a handful of
/// round trips, not thousands. The dedupe keys decide, in the transaction,
/// which events are new.
pub async fn write(tx: &mut super::group::Tx<'_>, db: &Db, writes: &[Write]) -> sqlx::Result<Vec<Written>> {
    let postgres = matches!(db, Db::Postgres(_));
    let (merge_attributes, least, greatest) = if postgres {
        ("(customer.attributes::jsonb || excluded.attributes::jsonb)::text", "least", "greatest")
    } else {
        // Top-level keys replaced, as with Postgres' `||`: first drop the incoming
        // keys (a patch of nulls deletes them), then patch, so nested objects are
        // replaced rather than merged.
        (
            "json_patch(json_patch(customer.attributes, \
             (select json_group_object(key, json('null')) from json_each(excluded.attributes))), excluded.attributes)",
            "min",
            "max",
        )
    };
    let upsert_customers = |rows: usize| {
        format!(
            "insert into customer (customer_id, attributes, first_seen_at, last_seen_at, event_count) values {} \
             on conflict (customer_id) do update set attributes = {merge_attributes}, \
             first_seen_at = {least}(customer.first_seen_at, excluded.first_seen_at), \
             last_seen_at = {greatest}(customer.last_seen_at, excluded.last_seen_at), \
             event_count = customer.event_count + excluded.event_count",
            values(db, rows, 5)
        )
    };
    let p = |i| super::param(db, i);
    let bump_source = format!(
        "update source set accepted_count = accepted_count + {}, duplicate_count = duplicate_count + {}, \
         rejected_count = rejected_count + {}, last_event_at = nullif({greatest}(coalesce(last_event_at, 0), {}), 0) \
         where source_id = {}",
        p(1),
        p(2),
        p(3),
        p(4),
        p(5)
    );
    let replayed = format!(
        "update dead_letter set replayed_at = {}, replayed_event_id = {} where dead_letter_id = {}",
        p(1),
        p(2),
        p(3)
    );

    // Repeats within the group are duplicates of their first occurrence.
    let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
    let mut repeat_of: HashMap<usize, usize> = HashMap::new();
    let mut candidates: Vec<(usize, &NewEvent)> = Vec::new();
    let mut letters: Vec<&NewDeadLetter> = Vec::new();
    for (i, w) in writes.iter().enumerate() {
        match w {
            Write::Event(e) => match first_of.get(&(e.source_id.as_str(), e.external_id.as_str())) {
                Some(first) => {
                    repeat_of.insert(i, *first);
                }
                None => {
                    first_of.insert((e.source_id.as_str(), e.external_id.as_str()), i);
                    candidates.push((i, e));
                }
            },
            Write::DeadLetter(d) => letters.push(d),
        }
    }

    // What follows the dedupe claims is written in one script (see `Script`).
    let mut tally = super::rollups::Tally::default();
    let mut script = super::group::Script::new(db);
    let out = crate::with_tx!(tx, tx => {
        let mut out: Vec<Option<Written>> = vec![None; writes.len()];
        let mut counts: HashMap<&str, Counts> = HashMap::new();

        // 1. Claim the dedupe keys; the ones returned are new.
        let mut fresh_keys: Vec<(String, String)> = Vec::new();
        for chunk in candidates.chunks(CHUNK) {
            let sql = format!(
                "insert into event_dedupe (source_id, external_id, event_id, created_at) values {} \
                 on conflict (source_id, external_id) do nothing returning source_id, external_id",
                values(db, chunk.len(), 4)
            );
            let mut q = sqlx::query_as::<_, (IdText, String)>(&sql);
            for (_, e) in chunk {
                q = q.bind(Id(&e.source_id)).bind(&e.external_id).bind(Id(&e.event_id)).bind(e.received_at);
            }
            fresh_keys.extend(q.fetch_all(&mut *tx).await?.into_iter().map(|(s, x)| (s.0, x)));
        }
        let claimed: std::collections::HashSet<(&str, &str)> =
            fresh_keys.iter().map(|(s, x)| (s.as_str(), x.as_str())).collect();
        let mut fresh: Vec<(usize, &NewEvent)> = Vec::with_capacity(candidates.len());
        for (i, e) in &candidates {
            if claimed.contains(&(e.source_id.as_str(), e.external_id.as_str())) {
                fresh.push((*i, *e));
            } else {
                // Seen in an earlier group: point at the first event.
                let IdText(first) = sqlx::query_scalar(
                    "select event_id from event_dedupe where source_id = $1 and external_id = $2",
                )
                .bind(Id(&e.source_id)).bind(&e.external_id)
                .fetch_one(&mut *tx).await?;
                counts.entry(e.source_id.as_str()).or_default().duplicates += 1;
                out[*i] = Some(Written::Duplicate { event_id: first });
            }
        }

        // 2. The new events (the engine evaluates them in this same transaction).
        for chunk in fresh.chunks(CHUNK) {
            let sql = format!(
                "insert into event (event_id, source_id, external_id, name, customer_id, occurred_at, received_at, payload, offer_code) values {}",
                values(db, chunk.len(), 9)
            );
            script.statement(&sql);
            for (_, e) in chunk {
                script.bind(Id(&e.event_id)).bind(Id(&e.source_id)).bind(e.external_id.as_str()).bind(e.name.as_str())
                    .bind(e.customer_id.as_str()).bind(e.occurred_at).bind(e.received_at).bind(e.payload.as_str()).bind(e.offer_code.as_deref());
            }
        }

        // 3. Customers: one row each (Postgres refuses to upsert a key twice in a statement).
        let mut customers: Vec<(&str, CustomerDelta)> = Vec::new();
        let mut at: HashMap<&str, usize> = HashMap::new();
        for (_, e) in &fresh {
            let profile = e.profile.clone();
            match at.get(e.customer_id.as_str()) {
                Some(&k) => {
                    let d = &mut customers[k].1;
                    d.profile.extend(profile);
                    d.first = d.first.min(e.occurred_at);
                    d.last = d.last.max(e.occurred_at);
                    d.count += 1;
                }
                None => {
                    at.insert(e.customer_id.as_str(), customers.len());
                    customers.push((e.customer_id.as_str(), CustomerDelta { profile, first: e.occurred_at, last: e.occurred_at, count: 1 }));
                }
            }
        }
        for chunk in customers.chunks(CHUNK) {
            script.statement(&upsert_customers(chunk.len()));
            for (id, d) in chunk {
                script.bind(*id).bind(serde_json::to_string(&d.profile).unwrap_or_else(|_| "{}".into())).bind(d.first).bind(d.last).bind(d.count);
            }
        }

        for (i, e) in &fresh {
            if let Some(dl) = &e.replay_of {
                script.statement(&replayed).bind(e.received_at).bind(e.event_id.as_str()).bind(dl.as_str());
            }
            let c = counts.entry(e.source_id.as_str()).or_default();
            c.accepted += 1;
            c.last_event_at = c.last_event_at.max(e.received_at);
            out[*i] = Some(Written::Accepted { event_id: e.event_id.clone() });
        }

        // 4. Dead letters.
        for chunk in letters.chunks(CHUNK) {
            let sql = format!(
                "insert into dead_letter (dead_letter_id, source_id, received_at, payload, reason) values {}",
                values(db, chunk.len(), 5)
            );
            script.statement(&sql);
            for d in chunk {
                script.bind(d.dead_letter_id.as_str()).bind(d.source_id.as_str()).bind(d.received_at).bind(d.payload.as_str()).bind(d.reason.as_str());
            }
        }
        for (i, w) in writes.iter().enumerate() {
            if let Write::DeadLetter(d) = w {
                // A dead letter was received too: the source's last event is its time.
                let c = counts.entry(d.source_id.as_str()).or_default();
                c.rejected += 1;
                c.last_event_at = c.last_event_at.max(d.received_at);
                out[i] = Some(Written::DeadLettered { dead_letter_id: d.dead_letter_id.clone() });
            }
        }

        // 5. Repeats within the group share their first occurrence's fate.
        for (i, first) in &repeat_of {
            let event_id = match &out[*first] {
                Some(Written::Accepted { event_id } | Written::Duplicate { event_id }) => event_id.clone(),
                _ => String::new(),
            };
            if let Write::Event(e) = &writes[*i] {
                counts.entry(e.source_id.as_str()).or_default().duplicates += 1;
            }
            out[*i] = Some(Written::Duplicate { event_id });
        }

        for (source_id, c) in &counts {
            script.statement(&bump_source)
                .bind(c.accepted).bind(c.duplicates).bind(c.rejected).bind(c.last_event_at).bind(Id(source_id));
        }
        // 6. The dashboards' counters, in the same transaction.
        for (_, e) in &fresh {
            use super::rollups::metric;
            tally.add(metric::EVENTS, "", "", e.received_at, 1);
            tally.add(metric::EVENT_NAME, "", &e.name, e.received_at, 1);
            tally.add(metric::EVENT_SOURCE, "", &e.source_id, e.received_at, 1);
        }
        Ok::<_, sqlx::Error>(out.into_iter().map(|o| o.unwrap_or(Written::Duplicate { event_id: String::new() })).collect::<Vec<_>>())
    })?;
    tally.script(db, &mut script);
    script.run(tx).await?;
    Ok(out)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    #[sqlx(try_from = "IdText")]
    pub event_id: String,
    #[sqlx(try_from = "IdText")]
    pub source_id: String,
    pub external_id: String,
    pub name: String,
    pub customer_id: String,
    pub occurred_at: i64,
    pub received_at: i64,
    pub payload: String,
    pub offer_code: Option<String>,
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
            offer_code: self.offer_code.clone(),
        }
    }
}

const EVENT_COLUMNS: &str =
    "event_id, source_id, external_id, name, customer_id, occurred_at, received_at, payload, offer_code";

enum Arg {
    Id(String),
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
        push("source_id = ?", Arg::Id(s.to_string()));
    }
    if let Some(n) = &filter.name {
        push("name = ?", Arg::Text(n.clone()));
    }
    if let Some(c) = &filter.customer {
        push("customer_id = ?", Arg::Text(c.clone()));
    }
    if let Some(from) = filter.from {
        // Ids are UUID v7: the first 48 bits are the receive time, so a time bound is an id bound.
        push("event_id >= ?", Arg::Id(super::uuid_v7_floor(from)));
    }
    if let Some(to) = filter.to {
        push("event_id < ?", Arg::Id(super::uuid_v7_floor(to)));
    }
    if let Some(c) = cursor {
        push("event_id < ?", Arg::Id(c.to_string()));
    }
    args.push(Arg::Int(limit));
    let where_sql = if clauses.is_empty() { String::new() } else { format!("where {}", clauses.join(" and ")) };
    let sql = format!("select {EVENT_COLUMNS} from event {where_sql} order by event_id desc limit ${}", args.len());
    with_pool!(db, p => {
        let mut q = sqlx::query_as::<_, EventRow>(&sql);
        for a in &args {
            q = match a {
                Arg::Id(s) => q.bind(Id(s)),
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q.fetch_all(p).await
    })
}

pub async fn get(db: &Db, event_id: &str) -> sqlx::Result<Option<EventRow>> {
    let sql = format!("select {EVENT_COLUMNS} from event where event_id = $1");
    with_pool!(db, p => sqlx::query_as::<_, EventRow>(&sql).bind(Id(event_id)).fetch_optional(p).await)
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

/// Whether any customer exists (the engine's hot state starts complete on a
/// database without one).
pub async fn has_customers(db: &Db) -> sqlx::Result<bool> {
    let sql = "select exists (select 1 from customer)";
    with_pool!(db, p => sqlx::query_scalar::<_, bool>(sql).fetch_one(p).await)
}

/// Which of `external_ids` of `source_id` an earlier committed event claimed
/// (the engine's prediction of a group's duplicates; the transaction that
/// stores the group checks it).
pub async fn claimed(db: &Db, source_id: &str, external_ids: &[&str]) -> sqlx::Result<Vec<String>> {
    if external_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "select external_id from event_dedupe where source_id = {} and external_id in ({})",
        super::param(db, 1),
        super::params(db, 2, external_ids.len())
    );
    with_pool!(db, p => {
        let mut q = sqlx::query_scalar::<_, String>(&sql).bind(Id(source_id));
        for id in external_ids {
            q = q.bind(*id);
        }
        q.fetch_all(p).await
    })
}

/// The customers of `ids` that exist, in one query (the executor reads a batch's at once).
pub async fn customers(db: &Db, ids: &[String]) -> sqlx::Result<Vec<CustomerRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "select customer_id, attributes, first_seen_at, last_seen_at, event_count from customer \
         where customer_id in ({})",
        super::params(db, 1, ids.len())
    );
    with_pool!(db, p => {
        let mut q = sqlx::query_as::<_, CustomerRow>(&sql);
        for id in ids {
            q = q.bind(id);
        }
        q.fetch_all(p).await
    })
}

/// The payloads of these events, by event id, in one query.
pub async fn payloads(db: &Db, event_ids: &[String]) -> sqlx::Result<Vec<(String, String)>> {
    if event_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql =
        format!("select event_id, payload from event where event_id in ({})", super::params(db, 1, event_ids.len()));
    with_pool!(db, p => {
        let mut q = sqlx::query_as::<_, (IdText, String)>(&sql);
        for id in event_ids {
            q = q.bind(Id(id));
        }
        q.fetch_all(p).await.map(|rows| rows.into_iter().map(|(id, payload)| (id.0, payload)).collect())
    })
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
