//! The `source` table: senders of events, their mapping, secrets and counters.

use super::{now_ms, Db, Id, IdText};
use crate::ingest::mapping::Mapping;
use crate::model::Source;
use crate::{execute, with_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SourceRow {
    #[sqlx(try_from = "IdText")]
    pub source_id: String,
    pub name: String,
    pub slug: String,
    pub enabled: i64,
    pub mapping: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<i64>,
    pub accepted_count: i64,
    pub duplicate_count: i64,
    pub rejected_count: i64,
    pub last_event_at: Option<i64>,
    pub created_at: i64,
}

impl SourceRow {
    /// The stored mapping; it was validated when written.
    pub fn mapping(&self) -> Result<Mapping, serde_json::Error> {
        serde_json::from_str(&self.mapping)
    }

    /// The secrets a signature may be made with at `now`: the current one, and
    /// the previous one during a rotation's grace period.
    pub fn secrets(&self, now: i64) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(prev), Some(until)) = (&self.previous_secret, self.previous_secret_until) {
            if now < until {
                secrets.push(prev);
            }
        }
        secrets
    }

    pub fn to_source(&self) -> Source {
        let tail: String = self.secret.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
        Source {
            source_id: self.source_id.clone(),
            name: self.name.clone(),
            slug: self.slug.clone(),
            enabled: self.enabled != 0,
            mapping: self.mapping().unwrap_or_default(),
            secret_hint: format!("whsec_…{tail}"),
            previous_secret_until: self.previous_secret_until.filter(|until| *until > now_ms()),
            accepted_count: self.accepted_count,
            duplicate_count: self.duplicate_count,
            rejected_count: self.rejected_count,
            // Rows written before dead letters counted kept 0 for "never".
            last_event_at: self.last_event_at.filter(|t| *t > 0),
            created_at: self.created_at,
        }
    }
}

const COLUMNS: &str = "source_id, name, slug, enabled, mapping, secret, previous_secret, previous_secret_until, \
                       accepted_count, duplicate_count, rejected_count, last_event_at, created_at";

pub struct NewSource<'a> {
    pub source_id: &'a str,
    pub name: &'a str,
    pub slug: &'a str,
    pub mapping: &'a str,
    pub secret: &'a str,
}

pub async fn insert(db: &Db, s: NewSource<'_>) -> sqlx::Result<()> {
    let sql = "insert into source (source_id, name, slug, enabled, mapping, secret, created_at, updated_at) \
               values ($1, $2, $3, 1, $4, $5, $6, $6)";
    execute!(
        db,
        sqlx::query(sql).bind(Id(s.source_id)).bind(s.name).bind(s.slug).bind(s.mapping).bind(s.secret).bind(now_ms())
    )?;
    Ok(())
}

pub async fn find_by_slug(db: &Db, slug: &str) -> sqlx::Result<Option<SourceRow>> {
    let sql = format!("select {COLUMNS} from source where slug = $1");
    with_pool!(db, p => sqlx::query_as::<_, SourceRow>(&sql).bind(slug).fetch_optional(p).await)
}

pub async fn find_by_id(db: &Db, source_id: &str) -> sqlx::Result<Option<SourceRow>> {
    let sql = format!("select {COLUMNS} from source where source_id = $1");
    with_pool!(db, p => sqlx::query_as::<_, SourceRow>(&sql).bind(Id(source_id)).fetch_optional(p).await)
}

/// Sources by name, after `cursor` (a slug), at most `limit`.
pub async fn list(db: &Db, cursor: Option<&str>, limit: i64) -> sqlx::Result<Vec<SourceRow>> {
    let sql = format!("select {COLUMNS} from source where slug > $1 order by slug limit $2");
    with_pool!(db, p => sqlx::query_as::<_, SourceRow>(&sql).bind(cursor.unwrap_or("")).bind(limit).fetch_all(p).await)
}

pub async fn update(db: &Db, source_id: &str, name: &str, enabled: bool, mapping: &str) -> sqlx::Result<bool> {
    let sql = "update source set name = $1, enabled = $2, mapping = $3, updated_at = $4 where source_id = $5";
    let n = execute!(
        db,
        sqlx::query(sql).bind(name).bind(i64::from(enabled)).bind(mapping).bind(now_ms()).bind(Id(source_id))
    )?;
    Ok(n == 1)
}

/// Replaces the secret; the old one stays valid until `previous_until`.
pub async fn rotate_secret(db: &Db, source_id: &str, secret: &str, previous_until: i64) -> sqlx::Result<bool> {
    let sql = "update source set previous_secret = secret, previous_secret_until = $1, secret = $2, updated_at = $3 \
               where source_id = $4";
    let n = execute!(db, sqlx::query(sql).bind(previous_until).bind(secret).bind(now_ms()).bind(Id(source_id)))?;
    Ok(n == 1)
}

/// Removes the source, its dedupe keys and dead letters. Its events stay on the
/// customers' timelines.
pub async fn delete(db: &Db, source_id: &str) -> sqlx::Result<bool> {
    with_pool!(db, p => {
        let mut tx = p.begin().await?;
        sqlx::query("delete from event_dedupe where source_id = $1").bind(Id(source_id)).execute(&mut *tx).await?;
        sqlx::query("delete from dead_letter where source_id = $1").bind(source_id).execute(&mut *tx).await?;
        let n = sqlx::query("delete from source where source_id = $1").bind(Id(source_id)).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    })
}
