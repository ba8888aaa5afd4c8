//! Operations of Nudge, one function each, authorisation included. The UI's
//! server fns and the REST handlers are thin adapters over these.

pub mod api_keys;
pub mod auth;
pub mod events;
pub mod ingest;
pub mod metrics;
pub mod runs;
pub mod signature;
pub mod sources;
pub mod throttle;
pub mod users;
pub mod workflows;

use crate::error::{AppError, AppResult};
use crate::model::{Me, Page, Role, SystemStatus};
use crate::store::{self, Db};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What every operation needs: storage and the few pieces of shared in-memory state.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub db: Db,
    /// The hot path's own connection (see `Db::dedicated`): the engine reads
    /// and writes through it.
    pub work: Db,
    pub throttle: Arc<throttle::LoginThrottle>,
    pub engine: crate::engine::Engine,
    pub live: crate::engine::live::Live,
    pub rate: Arc<ingest::RateLimiter>,
    /// Sources as the webhook endpoint needs them, mapping compiled.
    pub sources: Arc<ingest::SourceCache>,
    pub ingest_limits: Arc<ingest::IngestLimits>,
    pub signals: Arc<Signals>,
    /// The installation's clock: the engine's acceptance times, and the
    /// "now" of the dashboards' ranges.
    pub clock: Arc<dyn crate::engine::clock::Clock>,
    /// Cache of "at least one user exists"; once true it stays true (the last
    /// admin cannot be deleted), so the check costs a query only before set-up.
    setup_done: Arc<AtomicBool>,
}

impl Ctx {
    /// Builds the context and starts the engine; call inside a tokio runtime.
    pub fn new(db: Db) -> Self {
        Ctx::with_limits(db, ingest::IngestLimits::default())
    }

    pub fn with_limits(db: Db, limits: ingest::IngestLimits) -> Self {
        Ctx::with_clock(db, limits, Arc::new(crate::engine::clock::SystemClock))
    }

    /// The context with the engine on `clock` (tests move a hand-set one).
    pub fn with_clock(db: Db, limits: ingest::IngestLimits, clock: Arc<dyn crate::engine::clock::Clock>) -> Self {
        Ctx::with_engine(db, limits, clock, crate::engine::hot::DEFAULT_CUSTOMERS)
    }

    /// The context with an engine keeping up to `hot_customers` customers in memory.
    pub fn with_engine(
        db: Db,
        limits: ingest::IngestLimits,
        clock: Arc<dyn crate::engine::clock::Clock>,
        hot_customers: usize,
    ) -> Self {
        let live = crate::engine::live::Live::default();
        live.start_ticker();
        let signals = Arc::new(Signals::default());
        let work = db.dedicated();
        let parts = crate::engine::EngineParts {
            db: work.clone(),
            reads: db.clone(),
            live: live.clone(),
            signals: signals.clone(),
            clock: clock.clone(),
            hot_customers,
        };
        Ctx {
            engine: crate::engine::Engine::start(parts),
            work,
            signals,
            clock,
            live,
            db,
            throttle: Arc::new(throttle::LoginThrottle::default()),
            rate: Arc::new(ingest::RateLimiter::default()),
            sources: Arc::new(ingest::SourceCache::default()),
            ingest_limits: Arc::new(limits),
            setup_done: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Unix milliseconds on the installation's clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// True until the first admin exists.
    pub async fn needs_setup(&self) -> AppResult<bool> {
        if self.setup_done.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let users = store::users::count(&self.db).await?;
        if users > 0 {
            self.setup_done.store(true, Ordering::Relaxed);
        }
        Ok(users == 0)
    }
}

pub use crate::engine::Signals;

/// The authenticated caller of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub principal: Principal,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User {
        user_id: String,
        email: String,
    },
    ApiKey {
        api_key_id: String,
        name: String,
    },
    /// The command line on the server itself, which has the database anyway.
    System,
}

impl Actor {
    /// The command line's actor: full rights, as it holds the database credentials.
    pub fn system() -> Actor {
        Actor { principal: Principal::System, role: Role::Admin }
    }

    /// Refuses unless the actor's role is at least `role`.
    pub fn require(&self, role: Role) -> AppResult<()> {
        if self.role >= role {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!("This needs the {} role; you are {}.", role.as_str(), self.role.as_str())))
        }
    }

    pub fn user_id(&self) -> Option<&str> {
        match &self.principal {
            Principal::User { user_id, .. } => Some(user_id),
            Principal::ApiKey { .. } | Principal::System => None,
        }
    }

    pub fn me(&self) -> Me {
        match &self.principal {
            Principal::User { user_id, email } => {
                Me { kind: "user".into(), id: user_id.clone(), name: email.clone(), role: self.role }
            }
            Principal::ApiKey { api_key_id, name } => {
                Me { kind: "api_key".into(), id: api_key_id.clone(), name: name.clone(), role: self.role }
            }
            Principal::System => {
                Me { kind: "system".into(), id: String::new(), name: "command line".into(), role: self.role }
            }
        }
    }
}

/// Builds a page from up to `limit + 1` rows: the extra row only says there is more.
pub(crate) fn paginate<R, T>(
    mut rows: Vec<R>,
    limit: i64,
    id: impl Fn(&R) -> String,
    map: impl Fn(&R) -> T,
) -> Page<T> {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(&id) } else { None };
    Page { items: rows.iter().map(map).collect(), next_cursor }
}

/// Facts about this installation, for the dashboard. Any role may read them.
pub async fn system_status(ctx: &Ctx, _actor: &Actor) -> AppResult<SystemStatus> {
    Ok(SystemStatus {
        version: env!("CARGO_PKG_VERSION").to_string(),
        database: ctx.db.backend().to_string(),
        users: store::users::count(&ctx.db).await?,
        api_keys: store::api_keys::count_active(&ctx.db).await?,
    })
}
