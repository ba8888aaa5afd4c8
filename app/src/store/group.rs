//! The engine's one transaction per group: the events and dedupe keys, the
//! customers' profiles, and everything evaluation decided (runs, steps,
//! actions and their effects, rollups) commit together, or not at all.

use super::events::{self, Write, Written};
use super::runs::{self, Batch, Committed};
use super::Db;
use sqlx::postgres::PgArguments;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments as _, Encode, Postgres, Sqlite, Type};

/// An open transaction on whichever backend the `Db` is.
pub enum Tx<'c> {
    Sqlite(sqlx::Transaction<'c, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'c, sqlx::Postgres>),
}

/// Runs `$body` with `$conn` bound to the transaction's connection, so one
/// query text serves both backends inside a transaction (see `with_pool!`).
#[macro_export]
macro_rules! with_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::store::group::Tx::Sqlite(t) => {
                let $conn = &mut **t;
                $body
            }
            $crate::store::group::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}

impl Tx<'static> {
    pub async fn begin(db: &Db) -> sqlx::Result<Tx<'static>> {
        Ok(match db {
            Db::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }
}

impl Tx<'_> {
    pub async fn commit(self) -> sqlx::Result<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await,
            Tx::Postgres(t) => t.commit().await,
        }
    }

    pub async fn rollback(self) -> sqlx::Result<()> {
        match self {
            Tx::Sqlite(t) => t.rollback().await,
            Tx::Postgres(t) => t.rollback().await,
        }
    }
}

/// Statements whose outcomes nobody reads, sent together. On SQLite they go
/// as one query of many statements: one hand-off to the connection's thread
/// for all of them rather than one each (on a busy machine a hand-off costs
/// as much as a statement). On Postgres, one after another: its protocol
/// takes one statement per query. Placeholders must be anonymous on SQLite
/// (`values`, `params`, `param`): numbered ones would not count on from the
/// statements before.
pub struct Script<'q> {
    sqlite: bool,
    sql: String,
    lite: SqliteArguments<'q>,
    pg: PgArguments,
    pg_before: Vec<(String, PgArguments)>,
    error: Option<sqlx::error::BoxDynError>,
}

impl<'q> Script<'q> {
    pub fn new(db: &Db) -> Script<'q> {
        Script {
            sqlite: matches!(db, Db::Sqlite(_)),
            sql: String::new(),
            lite: SqliteArguments::default(),
            pg: PgArguments::default(),
            pg_before: Vec::new(),
            error: None,
        }
    }

    /// Starts a statement; `bind` gives its parameters, in order.
    pub fn statement(&mut self, sql: &str) -> &mut Self {
        if self.sqlite {
            if !self.sql.is_empty() {
                self.sql.push_str(";\n");
            }
            self.sql.push_str(sql);
        } else {
            if !self.sql.is_empty() {
                let done = (std::mem::take(&mut self.sql), std::mem::take(&mut self.pg));
                self.pg_before.push(done);
            }
            self.sql.push_str(sql);
        }
        self
    }

    pub fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'q + Send + Encode<'q, Sqlite> + Type<Sqlite> + Encode<'q, Postgres> + Type<Postgres>,
    {
        let added = if self.sqlite { self.lite.add(value) } else { self.pg.add(value) };
        if let Err(err) = added {
            self.error.get_or_insert(err);
        }
        self
    }

    /// Runs the statements in `tx`.
    pub async fn run(self, tx: &mut Tx<'_>) -> sqlx::Result<()> {
        if let Some(err) = self.error {
            return Err(sqlx::Error::Encode(err));
        }
        if self.sql.is_empty() {
            return Ok(());
        }
        match tx {
            Tx::Sqlite(t) => {
                sqlx::query_with(&self.sql, self.lite).execute(&mut **t).await?;
            }
            Tx::Postgres(t) => {
                for (sql, args) in self.pg_before.into_iter().chain(std::iter::once((self.sql, self.pg))) {
                    sqlx::query_with(&sql, args).execute(&mut **t).await?;
                }
            }
        }
        Ok(())
    }
}

/// What one group commit did.
#[derive(Debug)]
pub struct GroupCommitted {
    /// Each write's outcome, in order.
    pub written: Vec<Written>,
    /// What evaluation's writes did (performed actions, redemptions, tallies).
    pub committed: Committed,
}

/// Stores `writes`, lets `evaluate` decide what the new events (and the due
/// timers) do, and writes that, in one transaction. `evaluate` gets each
/// write's outcome — the dedupe keys, claimed in the transaction, say which
/// events are new — and is pure CPU: whatever it reads was loaded before.
pub async fn commit(
    db: &Db,
    writes: &[Write],
    now: i64,
    evaluate: impl FnOnce(&[Written]) -> Batch,
) -> sqlx::Result<(GroupCommitted, Batch)> {
    let mut tx = Tx::begin(db).await?;
    let written = events::write(&mut tx, db, writes).await?;
    let batch = evaluate(&written);
    let committed = runs::write(&mut tx, db, &batch, now).await?;
    tx.commit().await?;
    Ok((GroupCommitted { written, committed }, batch))
}

/// Stores `writes` and the `batch` evaluation decided before the
/// transaction, on the prediction `accepted` of which writes are new events
/// (the engine evaluates a group while the one before it commits). The
/// dedupe keys claimed here are the truth: when they say otherwise, nothing
/// is written and `Ok(None)` tells the engine to evaluate the group again.
pub async fn commit_evaluated(
    db: &Db,
    writes: &[Write],
    now: i64,
    batch: &Batch,
    accepted: &[bool],
) -> sqlx::Result<Option<GroupCommitted>> {
    let mut tx = Tx::begin(db).await?;
    let written = events::write(&mut tx, db, writes).await?;
    let as_predicted = written.len() == accepted.len()
        && written.iter().zip(accepted).all(|(w, a)| matches!(w, Written::Accepted { .. }) == *a);
    if !as_predicted {
        tx.rollback().await?;
        return Ok(None);
    }
    let committed = runs::write(&mut tx, db, batch, now).await?;
    tx.commit().await?;
    Ok(Some(GroupCommitted { written, committed }))
}

/// Stores `writes` without evaluating them (tests of the storage alone, and
/// the quarantine of events whose evaluation cannot be committed).
pub async fn store_only(db: &Db, now: i64, writes: &[Write]) -> sqlx::Result<Vec<Written>> {
    Ok(commit(db, writes, now, |_| Batch::default()).await?.0.written)
}
