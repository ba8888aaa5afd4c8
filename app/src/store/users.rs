//! The `app_user` table: accounts that log in to the UI.

use super::{now_ms, Db};
use crate::model::{Role, User};
use crate::{execute, with_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub user_id: String,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub created_at: i64,
}

impl UserRow {
    pub fn role(&self) -> Role {
        // The column has a check constraint; an unknown value can only come from
        // a hand edit, and the least privilege is the safe reading of it.
        self.role.parse().unwrap_or(Role::Viewer)
    }

    pub fn to_user(&self) -> User {
        User {
            user_id: self.user_id.clone(),
            email: self.email.clone(),
            role: self.role(),
            created_at: self.created_at,
        }
    }
}

const COLUMNS: &str = "user_id, email, password_hash, role, created_at";

pub async fn count(db: &Db) -> sqlx::Result<i64> {
    with_pool!(db, p => sqlx::query_scalar::<_, i64>("select count(*) from app_user").fetch_one(p).await)
}

pub async fn count_admins(db: &Db) -> sqlx::Result<i64> {
    with_pool!(db, p => sqlx::query_scalar::<_, i64>("select count(*) from app_user where role = 'admin'").fetch_one(p).await)
}

pub async fn insert(db: &Db, user_id: &str, email: &str, password_hash: &str, role: Role) -> sqlx::Result<UserRow> {
    let now = now_ms();
    let sql = "insert into app_user (user_id, email, password_hash, role, created_at, updated_at) values ($1, $2, $3, $4, $5, $5)";
    execute!(db, sqlx::query(sql).bind(user_id).bind(email).bind(password_hash).bind(role.as_str()).bind(now))?;
    Ok(UserRow {
        user_id: user_id.to_string(),
        email: email.to_string(),
        password_hash: password_hash.to_string(),
        role: role.as_str().to_string(),
        created_at: now,
    })
}

/// Inserts the first admin only if no user exists yet, atomically: two racing
/// set-up requests cannot both succeed. Returns false when users already exist.
pub async fn insert_first(db: &Db, user_id: &str, email: &str, password_hash: &str) -> sqlx::Result<bool> {
    let now = now_ms();
    let sql = "insert into app_user (user_id, email, password_hash, role, created_at, updated_at) \
               select $1, $2, $3, 'admin', $4, $4 where not exists (select 1 from app_user)";
    let done = match db {
        // One statement is atomic on SQLite (a single writer); under Postgres' read
        // committed two could both see "no users", so serialise them on a lock.
        Db::Postgres(p) => {
            let mut tx = p.begin().await?;
            sqlx::query("select pg_advisory_xact_lock(7243001)").execute(&mut *tx).await?;
            let n = sqlx::query(sql).bind(user_id).bind(email).bind(password_hash).bind(now).execute(&mut *tx).await?;
            tx.commit().await?;
            n.rows_affected()
        }
        Db::Sqlite(_) => execute!(db, sqlx::query(sql).bind(user_id).bind(email).bind(password_hash).bind(now))?,
    };
    Ok(done == 1)
}

pub async fn find_by_email(db: &Db, email: &str) -> sqlx::Result<Option<UserRow>> {
    let sql = format!("select {COLUMNS} from app_user where email = $1");
    with_pool!(db, p => sqlx::query_as::<_, UserRow>(&sql).bind(email).fetch_optional(p).await)
}

pub async fn find_by_id(db: &Db, user_id: &str) -> sqlx::Result<Option<UserRow>> {
    let sql = format!("select {COLUMNS} from app_user where user_id = $1");
    with_pool!(db, p => sqlx::query_as::<_, UserRow>(&sql).bind(user_id).fetch_optional(p).await)
}

/// Users in creation order, after `cursor` (a user id), at most `limit`.
pub async fn list(db: &Db, cursor: Option<&str>, limit: i64) -> sqlx::Result<Vec<UserRow>> {
    let sql = format!("select {COLUMNS} from app_user where user_id > $1 order by user_id limit $2");
    let after = cursor.unwrap_or("");
    with_pool!(db, p => sqlx::query_as::<_, UserRow>(&sql).bind(after).bind(limit).fetch_all(p).await)
}

pub async fn update_role(db: &Db, user_id: &str, role: Role) -> sqlx::Result<bool> {
    let sql = "update app_user set role = $1, updated_at = $2 where user_id = $3";
    let done = execute!(db, sqlx::query(sql).bind(role.as_str()).bind(now_ms()).bind(user_id))?;
    Ok(done == 1)
}

pub async fn update_password(db: &Db, user_id: &str, password_hash: &str) -> sqlx::Result<bool> {
    let sql = "update app_user set password_hash = $1, updated_at = $2 where user_id = $3";
    let done = execute!(db, sqlx::query(sql).bind(password_hash).bind(now_ms()).bind(user_id))?;
    Ok(done == 1)
}

pub async fn delete(db: &Db, user_id: &str) -> sqlx::Result<bool> {
    let done = execute!(db, sqlx::query("delete from app_user where user_id = $1").bind(user_id))?;
    Ok(done == 1)
}
