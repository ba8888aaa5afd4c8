//! Storage: one `Db` over SQLite (embedded default) or Postgres, chosen by URL.
//! Queries are written once with `$n` placeholders, which both drivers accept.

pub mod api_keys;
pub mod events;
pub mod group;
pub mod id;
pub mod offers;
pub mod rollups;
pub mod runs;
pub mod sessions;
pub mod sources;
pub mod users;
pub mod workflows;

pub use id::{Id, IdText};

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever concrete pool `$db` holds,
/// so one query text serves both backends.
#[macro_export]
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}

/// Runs an `execute` on whichever pool `$db` holds; evaluates to the number of rows affected.
#[macro_export]
macro_rules! execute {
    ($db:expr, $query:expr) => {
        $crate::with_pool!($db, p => $query.execute(p).await.map(|done| done.rows_affected()))
    };
}

impl Db {
    /// Connects to `url` (`sqlite://…` or `postgres://…`) and applies the migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url).context("Parsing the Postgres URL.")?;
            Db::connect_postgres(opts).await?
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url).context("Parsing the SQLite URL.")?;
            Db::connect_sqlite(opts).await?
        } else {
            anyhow::bail!("unsupported database URL '{url}': use sqlite://PATH or postgres://…");
        };
        db.migrate().await?;
        Ok(db)
    }

    /// A pool of one connection of its own, for the hot path's writers (the
    /// ingest writer and the executor), on SQLite. In WAL mode a connection
    /// drops its page cache whenever another connection has written; when all
    /// the hot writes go through one connection its cache stays warm, and the
    /// event, dedupe and customer indexes are not read again for each group.
    /// It never checkpoints the WAL itself: a checkpoint inside a group's
    /// commit (SQLite's default, every 1,000 pages) copies megabytes and
    /// syncs the database file while that group's webhooks wait, which was
    /// the slow tail of the latency. `checkpoint` does it on another connection.
    /// On Postgres, the same pool.
    pub fn dedicated(&self) -> Db {
        match self {
            Db::Sqlite(pool) => Db::Sqlite(
                SqlitePoolOptions::new().max_connections(1).idle_timeout(None).max_lifetime(None).connect_lazy_with(
                    (*pool.connect_options())
                        .clone()
                        .pragma("wal_autocheckpoint", "0")
                        // After a restart the WAL file is cut back to 64 MiB.
                        .pragma("journal_size_limit", "67108864")
                        // 32 MiB of pages (the default is 2 MiB): the indexes a
                        // group writes to stay in memory rather than being read again.
                        .pragma("cache_size", "-32768"),
                ),
            ),
            Db::Postgres(pool) => Db::Postgres(pool.clone()),
        }
    }

    /// Copies what the WAL holds into the SQLite database without waiting for
    /// (or holding up) the writer: run it every fraction of a second beside a
    /// `dedicated` writer. Nothing to do on Postgres.
    /// Returns the WAL's length in pages (0 on Postgres).
    pub async fn checkpoint(&self) -> sqlx::Result<i64> {
        if let Db::Sqlite(pool) = self {
            let (_busy, log, _done): (i64, i64, i64) =
                sqlx::query_as("pragma wal_checkpoint(passive)").fetch_one(pool).await?;
            return Ok(log);
        }
        Ok(0)
    }

    /// Checkpoints the WAL and starts it again from its beginning, on the
    /// writer's own connection between its commits. Passive checkpoints copy
    /// the pages, but only a writer restarts the WAL, and only when a
    /// checkpoint has caught up with it at the moment it begins: under a
    /// steady stream of groups that never happens, and the WAL grew by
    /// gigabytes a minute. The file is then cut back to `journal_size_limit`.
    pub async fn restart_wal(&self) -> sqlx::Result<()> {
        if let Db::Sqlite(pool) = self {
            sqlx::query("pragma wal_checkpoint(restart)").execute(pool).await?;
        }
        Ok(())
    }

    pub async fn connect_sqlite(opts: SqliteConnectOptions) -> anyhow::Result<Db> {
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Every acknowledged write must survive power loss.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // 8 MiB of page cache per connection (the default is 2 MiB). The
            // benchmark's soak measured 64 MiB as no faster, and the writer's
            // cache filling up to it was half of the server's memory growth.
            .pragma("cache_size", "-8192")
            // No memory map (`mmap_size`): sqlx copies text out of SQLite's
            // pointers, which a map may move under it; it crashed the server.
            .pragma("temp_store", "memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await
            .context("Opening the SQLite database.")?;
        Ok(Db::Sqlite(pool))
    }

    pub async fn connect_postgres(opts: PgConnectOptions) -> anyhow::Result<Db> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await
            .context("Connecting to Postgres.")?;
        Ok(Db::Postgres(pool))
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Db::Sqlite(pool) => sqlx::migrate!("../migrations/sqlite").run(pool).await,
            Db::Postgres(pool) => sqlx::migrate!("../migrations/postgres").run(pool).await,
        }
        .context("Applying database migrations.")
    }

    /// `sqlite` or `postgres`, for status pages.
    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        with_pool!(self, p => sqlx::query("select 1").execute(p).await.map(|_| ()))
    }

    pub async fn close(&self) {
        with_pool!(self, p => p.close().await)
    }
}

/// Unix milliseconds now. Storage keeps every time as integer milliseconds
/// so both backends decode the same Rust type.
/// `$first, …` (`n` of them): the placeholders of an `in (…)` list, for both drivers.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// `n` placeholders numbered from `first` — on SQLite anonymous `?`, which
/// sqlx binds without looking each name up (a scan of the statement's
/// parameters per parameter). A statement using these must use them (and
/// [`param`]) for all its parameters, in the order it binds them.
pub fn params(db: &Db, first: usize, n: usize) -> String {
    match db {
        Db::Sqlite(_) => vec!["?"; n].join(", "),
        Db::Postgres(_) => placeholders(first, n),
    }
}

/// Placeholder number `i`: see [`params`].
pub fn param(db: &Db, i: usize) -> String {
    params(db, i, 1)
}

pub fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

/// A new time-ordered id (UUID v7), so that keyset pagination by id is also by creation time.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Clamps a requested page size to 1..=200, default 50.
pub fn page_limit(limit: Option<i64>) -> i64 {
    limit.unwrap_or(50).clamp(1, 200)
}

/// Throw-away databases for tests: a fresh SQLite file, and a fresh Postgres
/// schema when `TEST_POSTGRES_URL` is set, so tests never see each other's rows.
pub mod testing {
    use super::Db;
    use anyhow::Context;
    use sqlx::postgres::PgConnectOptions;
    use sqlx::sqlite::SqliteConnectOptions;
    use std::str::FromStr;

    pub async fn sqlite() -> anyhow::Result<Db> {
        let path = std::env::temp_dir().join(format!("nudge-test-{}.db", uuid::Uuid::new_v4().simple()));
        let db = Db::connect_sqlite(SqliteConnectOptions::new().filename(&path)).await?;
        db.migrate().await?;
        Ok(db)
    }

    pub async fn postgres(url: &str) -> anyhow::Result<Db> {
        let schema = format!("test_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(url).await.context("Connecting to the test Postgres.")?;
        sqlx::query(&format!("create schema {schema}")).execute(&admin).await?;
        admin.close().await;
        let opts = PgConnectOptions::from_str(url)?.options([("search_path", schema.as_str())]);
        let db = Db::connect_postgres(opts).await?;
        db.migrate().await?;
        Ok(db)
    }

    /// Every backend to test against: SQLite always, Postgres when configured.
    pub async fn all() -> Vec<Db> {
        let mut dbs = vec![sqlite().await.expect("a temporary SQLite database")];
        if let Some(url) = std::env::var("TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) {
            dbs.push(postgres(&url).await.expect("TEST_POSTGRES_URL is set but Postgres cannot be used"));
        }
        dbs
    }
}

/// The smallest UUID v7 text of a millisecond: ids compare like their times.
pub fn uuid_v7_floor(ms: i64) -> String {
    let ms = ms.clamp(0, (1 << 48) - 1) as u64;
    let hex = format!("{ms:012x}");
    format!("{}-{}-7000-8000-000000000000", &hex[..8], &hex[8..12])
}
