//! The engine's one transaction per group: the events and dedupe keys, the
//! customers' profiles, and everything evaluation decided (runs, steps,
//! actions and their effects, rollups) commit together, or not at all.

use super::events::{self, Write, Written};
use super::runs::{self, Batch, Committed};
use super::Db;

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

/// Stores `writes` without evaluating them (tests of the storage alone, and
/// the quarantine of events whose evaluation cannot be committed).
pub async fn store_only(db: &Db, now: i64, writes: &[Write]) -> sqlx::Result<Vec<Written>> {
    Ok(commit(db, writes, now, |_| Batch::default()).await?.0.written)
}
