//! The `workflow` and `workflow_version` tables: drafts, and the immutable
//! numbered versions published from them.

use super::{now_ms, Db, Id, IdText};
use crate::{execute, with_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkflowRow {
    #[sqlx(try_from = "IdText")]
    pub workflow_id: String,
    pub name: String,
    pub status: String,
    pub draft: String,
    pub revision: i64,
    pub draft_changed: i64,
    pub active_version: Option<i64>,
    pub latest_version: i64,
    pub created_by: String,
    pub created_at: i64,
    pub updated_by: String,
    pub updated_at: i64,
}

const COLUMNS: &str = "workflow_id, name, status, draft, revision, draft_changed, active_version, latest_version, \
                       created_by, created_at, updated_by, updated_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionRow {
    #[sqlx(try_from = "IdText")]
    pub workflow_id: String,
    pub version: i64,
    pub definition: String,
    pub published_by: String,
    pub published_at: i64,
    pub note: Option<String>,
}

pub async fn insert(db: &Db, workflow_id: &str, name: &str, draft: &str, by: &str) -> sqlx::Result<()> {
    let sql =
        "insert into workflow (workflow_id, name, status, draft, created_by, created_at, updated_by, updated_at) \
               values ($1, $2, 'draft', $3, $4, $5, $4, $5)";
    execute!(db, sqlx::query(sql).bind(Id(workflow_id)).bind(name).bind(draft).bind(by).bind(now_ms()))?;
    Ok(())
}

pub async fn find(db: &Db, workflow_id: &str) -> sqlx::Result<Option<WorkflowRow>> {
    let sql = format!("select {COLUMNS} from workflow where workflow_id = $1");
    with_pool!(db, p => sqlx::query_as::<_, WorkflowRow>(&sql).bind(Id(workflow_id)).fetch_optional(p).await)
}

/// Newest first, after `cursor` (a workflow id), at most `limit`. `status`
/// `None` means every status but archived; `search` matches the name.
pub async fn list(
    db: &Db,
    status: Option<&str>,
    search: Option<&str>,
    cursor: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<WorkflowRow>> {
    let pattern = search.map(|s| format!("%{}%", s.to_lowercase().replace(['%', '_'], "")));
    let sql = format!(
        "select {COLUMNS} from workflow \
         where ($1 = '' and status <> 'archived' or status = $1) \
           and ($2 = '' or lower(name) like $2) \
           and ($3 = '' or workflow_id < $3) \
         order by workflow_id desc limit $4"
    );
    with_pool!(db, p => sqlx::query_as::<_, WorkflowRow>(&sql)
        .bind(status.unwrap_or(""))
        .bind(pattern.as_deref().unwrap_or(""))
        .bind(Id(cursor.unwrap_or("")))
        .bind(limit)
        .fetch_all(p)
        .await)
}

/// Saves the draft if nobody saved since `revision`; returns the new revision,
/// or `None` when the revision is stale (or the workflow is gone).
pub async fn save_draft(
    db: &Db,
    workflow_id: &str,
    name: &str,
    draft: &str,
    draft_changed: bool,
    revision: i64,
    by: &str,
) -> sqlx::Result<Option<i64>> {
    let sql = "update workflow set name = $1, draft = $2, draft_changed = $3, revision = revision + 1, \
               updated_by = $4, updated_at = $5 where workflow_id = $6 and revision = $7";
    let n = execute!(
        db,
        sqlx::query(sql)
            .bind(name)
            .bind(draft)
            .bind(i64::from(draft_changed))
            .bind(by)
            .bind(now_ms())
            .bind(Id(workflow_id))
            .bind(revision)
    )?;
    Ok((n == 1).then_some(revision + 1))
}

const SET_STATUS: &str = "update workflow set status = $1, updated_by = $2, updated_at = $3 where workflow_id = $4";

pub async fn set_status(db: &Db, workflow_id: &str, status: &str, by: &str) -> sqlx::Result<bool> {
    Ok(execute!(db, sqlx::query(SET_STATUS).bind(status).bind(by).bind(now_ms()).bind(Id(workflow_id)))? == 1)
}

/// `set_status` inside the caller's transaction (archiving, with the runs it ends).
pub async fn set_status_in(
    tx: &mut super::group::Tx<'_>,
    workflow_id: &str,
    status: &str,
    by: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let done = crate::with_tx!(tx, tx => {
        sqlx::query(SET_STATUS).bind(status).bind(by).bind(now).bind(Id(workflow_id)).execute(&mut *tx).await?.rows_affected()
    });
    Ok(done == 1)
}

/// Publishes `definition` as version `version` (the latest + 1) and makes it the
/// active one, in one transaction, if nobody saved the draft since
/// `expected_revision`; `Ok(false)` when somebody did. `new_draft` replaces the
/// draft (a rollback); otherwise the draft stays as it is. A concurrent publish
/// of the same number fails on the primary key.
#[allow(clippy::too_many_arguments)] // The columns of one version, plus the revision check.
pub async fn publish(
    db: &Db,
    workflow_id: &str,
    expected_revision: i64,
    version: i64,
    definition: &str,
    new_draft: Option<&str>,
    status: &str,
    note: Option<&str>,
    by: &str,
) -> sqlx::Result<bool> {
    let now = now_ms();
    with_pool!(db, p => {
        let mut tx = p.begin().await?;
        sqlx::query(
            "insert into workflow_version (workflow_id, version, definition, published_by, published_at, note) \
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(Id(workflow_id))
        .bind(version)
        .bind(definition)
        .bind(by)
        .bind(now)
        .bind(note)
        .execute(&mut *tx)
        .await?;
        let updated = sqlx::query(
            "update workflow set draft = coalesce($1, draft), draft_changed = 0, revision = revision + 1, \
             active_version = $2, latest_version = $2, status = $3, updated_by = $4, updated_at = $5 \
             where workflow_id = $6 and revision = $7",
        )
        .bind(new_draft)
        .bind(version)
        .bind(status)
        .bind(by)
        .bind(now)
        .bind(Id(workflow_id))
        .bind(expected_revision)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 1 {
            tx.commit().await?;
            Ok(true)
        } else {
            tx.rollback().await?;
            Ok(false)
        }
    })
}

/// Every version, newest first.
pub async fn versions(db: &Db, workflow_id: &str) -> sqlx::Result<Vec<VersionRow>> {
    let sql = "select workflow_id, version, definition, published_by, published_at, note from workflow_version \
               where workflow_id = $1 order by version desc";
    with_pool!(db, p => sqlx::query_as::<_, VersionRow>(sql).bind(Id(workflow_id)).fetch_all(p).await)
}

pub async fn version(db: &Db, workflow_id: &str, version: i64) -> sqlx::Result<Option<VersionRow>> {
    let sql = "select workflow_id, version, definition, published_by, published_at, note from workflow_version \
               where workflow_id = $1 and version = $2";
    with_pool!(db, p => sqlx::query_as::<_, VersionRow>(sql).bind(Id(workflow_id)).bind(version).fetch_optional(p).await)
}
