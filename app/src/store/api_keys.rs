//! The `api_key` table: bearer keys for API clients. Only a SHA-256 of each key is kept.

use super::{now_ms, Db};
use crate::model::{ApiKey, Role};
use crate::{execute, with_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub api_key_id: String,
    pub name: String,
    pub role: String,
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl ApiKeyRow {
    pub fn role(&self) -> Role {
        // Least privilege for a value the check constraint should have refused.
        self.role.parse().unwrap_or(Role::Viewer)
    }

    pub fn to_api_key(&self) -> ApiKey {
        ApiKey {
            api_key_id: self.api_key_id.clone(),
            name: self.name.clone(),
            role: self.role(),
            prefix: self.prefix.clone(),
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            revoked_at: self.revoked_at,
        }
    }
}

const COLUMNS: &str = "api_key_id, name, role, prefix, created_at, last_used_at, revoked_at";

pub struct NewApiKey<'a> {
    pub api_key_id: &'a str,
    pub name: &'a str,
    pub role: Role,
    pub prefix: &'a str,
    pub key_hash: &'a str,
    pub created_by: Option<&'a str>,
}

pub async fn insert(db: &Db, key: NewApiKey<'_>) -> sqlx::Result<ApiKeyRow> {
    let now = now_ms();
    let sql = "insert into api_key (api_key_id, name, role, prefix, key_hash, created_by, created_at) \
               values ($1, $2, $3, $4, $5, $6, $7)";
    execute!(
        db,
        sqlx::query(sql)
            .bind(key.api_key_id)
            .bind(key.name)
            .bind(key.role.as_str())
            .bind(key.prefix)
            .bind(key.key_hash)
            .bind(key.created_by)
            .bind(now)
    )?;
    Ok(ApiKeyRow {
        api_key_id: key.api_key_id.to_string(),
        name: key.name.to_string(),
        role: key.role.as_str().to_string(),
        prefix: key.prefix.to_string(),
        created_at: now,
        last_used_at: None,
        revoked_at: None,
    })
}

/// The active (not revoked) key with this hash.
pub async fn find_active_by_hash(db: &Db, key_hash: &str) -> sqlx::Result<Option<ApiKeyRow>> {
    let sql = format!("select {COLUMNS} from api_key where key_hash = $1 and revoked_at is null");
    with_pool!(db, p => sqlx::query_as::<_, ApiKeyRow>(&sql).bind(key_hash).fetch_optional(p).await)
}

pub async fn list(db: &Db, cursor: Option<&str>, limit: i64) -> sqlx::Result<Vec<ApiKeyRow>> {
    let sql = format!("select {COLUMNS} from api_key where api_key_id > $1 order by api_key_id limit $2");
    let after = cursor.unwrap_or("");
    with_pool!(db, p => sqlx::query_as::<_, ApiKeyRow>(&sql).bind(after).bind(limit).fetch_all(p).await)
}

pub async fn count_active(db: &Db) -> sqlx::Result<i64> {
    with_pool!(db, p => sqlx::query_scalar::<_, i64>("select count(*) from api_key where revoked_at is null").fetch_one(p).await)
}

/// Marks the key revoked; false if there is no such active key.
pub async fn revoke(db: &Db, api_key_id: &str) -> sqlx::Result<bool> {
    let sql = "update api_key set revoked_at = $1 where api_key_id = $2 and revoked_at is null";
    let done = execute!(db, sqlx::query(sql).bind(now_ms()).bind(api_key_id))?;
    Ok(done == 1)
}

/// Records use, at most about once a minute per key, so reads stay cheap.
pub async fn touch(db: &Db, api_key_id: &str) -> sqlx::Result<()> {
    let now = now_ms();
    let sql =
        "update api_key set last_used_at = $1 where api_key_id = $2 and (last_used_at is null or last_used_at < $3)";
    execute!(db, sqlx::query(sql).bind(now).bind(api_key_id).bind(now - 60_000))?;
    Ok(())
}
