//! Browser sessions for tower-sessions, kept in the `session` table of the same
//! database, so they survive restarts and are shared by every node.

use super::Db;
use crate::{execute, with_pool};
use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, ExpiredDeletion, Result, SessionStore};

#[derive(Clone, Debug)]
pub struct DbSessionStore {
    db: Db,
}

impl DbSessionStore {
    pub fn new(db: Db) -> Self {
        DbSessionStore { db }
    }
}

fn backend(err: sqlx::Error) -> Error {
    Error::Backend(err.to_string())
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        // Ids are 128 random bits; a collision is astronomically unlikely, but the
        // insert refuses to overwrite, and we draw again if it ever happens.
        loop {
            let data = serde_json::to_string(&record.data).map_err(|e| Error::Encode(e.to_string()))?;
            let expires = record.expiry_date.unix_timestamp();
            let sql = "insert into session (session_id, data, expires_at) values ($1, $2, $3) on conflict (session_id) do nothing";
            let id = record.id.to_string();
            let done = execute!(&self.db, sqlx::query(sql).bind(&id).bind(&data).bind(expires)).map_err(backend)?;
            if done == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> Result<()> {
        let data = serde_json::to_string(&record.data).map_err(|e| Error::Encode(e.to_string()))?;
        let expires = record.expiry_date.unix_timestamp();
        let sql = "insert into session (session_id, data, expires_at) values ($1, $2, $3) \
                   on conflict (session_id) do update set data = excluded.data, expires_at = excluded.expires_at";
        let id = record.id.to_string();
        execute!(&self.db, sqlx::query(sql).bind(&id).bind(&data).bind(expires)).map_err(backend)?;
        Ok(())
    }

    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let sql = "select data, expires_at from session where session_id = $1 and expires_at > $2";
        let id = session_id.to_string();
        let row: Option<(String, i64)> =
            with_pool!(&self.db, p => sqlx::query_as(sql).bind(&id).bind(now).fetch_optional(p).await)
                .map_err(backend)?;
        let Some((data, expires)) = row else { return Ok(None) };
        let data = serde_json::from_str(&data).map_err(|e| Error::Decode(e.to_string()))?;
        let expiry_date =
            time::OffsetDateTime::from_unix_timestamp(expires).map_err(|e| Error::Decode(e.to_string()))?;
        Ok(Some(Record { id: *session_id, data, expiry_date }))
    }

    async fn delete(&self, session_id: &Id) -> Result<()> {
        let id = session_id.to_string();
        execute!(&self.db, sqlx::query("delete from session where session_id = $1").bind(&id)).map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for DbSessionStore {
    async fn delete_expired(&self) -> Result<()> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        execute!(&self.db, sqlx::query("delete from session where expires_at <= $1").bind(now)).map_err(backend)?;
        Ok(())
    }
}
