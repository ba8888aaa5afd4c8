//! The `nudge` binary: parse the configuration, then serve or run a CLI command.

use anyhow::Context;
use app::service::Ctx;
use app::store::Db;
use clap::Parser;
use server::config::{AdminCommand, ApiKeyCommand, Cli, Command, Config, LogFormat};
use server::{cli, AppState, Settings};
use std::time::Duration;
use tower_sessions::ExpiredDeletion;
use tracing_subscriber::EnvFilter;

/// jemalloc rather than glibc's allocator: with glibc each worker thread's
/// arena kept what its groups freed, and the soak's memory grew a third
/// faster (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    // Server-rendered pages poll deep, large futures: the workers get 8 MiB
    // stacks rather than tokio's 2 MiB, room to spare.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 * 1024 * 1024)
        .build()
        .context("Starting the async runtime.")?
        .block_on(start())
}

async fn start() -> anyhow::Result<()> {
    let Cli { command, config } = Cli::parse();
    init_tracing(config.log_format);
    let url = config.database_url()?;
    let db = Db::connect(&url).await.with_context(|| format!("Opening the database ({}).", redact(&url)))?;
    let clock = std::sync::Arc::new(app::engine::clock::SystemClock);
    let ctx = Ctx::with_engine(db.clone(), config.ingest_limits(), clock, config.hot_customers);
    let result = match command {
        None | Some(Command::Serve) => serve(config, ctx).await,
        Some(Command::Admin(AdminCommand::Create { email, password_stdin: _ })) => {
            cli::admin_create(&ctx, &email, std::io::stdin().lock()).await
        }
        Some(Command::ApiKey(ApiKeyCommand::Create { name, role })) => cli::api_key_create(&ctx, &name, role).await,
    };
    db.close().await;
    result
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("NUDGE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_sessions=warn,leptos_axum=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Pretty => builder.compact().init(),
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

async fn serve(config: Config, ctx: Ctx) -> anyhow::Result<()> {
    let public_origin = config.public_url.as_deref().map(|u| {
        let u = u.trim_end_matches('/');
        match u.find("://").and_then(|i| u[i + 3..].find('/').map(|j| i + 3 + j)) {
            Some(path_start) => u[..path_start].to_string(),
            None => u.to_string(),
        }
    });
    let settings = Settings {
        secure_cookies: config.secure_cookies(),
        public_origin,
        session_ttl_hours: config.session_ttl_hours,
    };
    let state = AppState::new(ctx.clone(), server::leptos_options(&config.site_root), settings);

    // Expired sessions are deleted hourly; loading one already ignores it.
    let store = app::store::sessions::DbSessionStore::new(ctx.db.clone());
    let cleanup = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every.tick().await;
            if let Err(err) = store.delete_expired().await {
                tracing::warn!(error = %err, "Deleting expired sessions failed.");
            }
        }
    });

    // Sender event ids older than the retention window are forgotten.
    let retention_ms = i64::from(config.dedupe_retention_hours) * 3_600_000;
    let prune_db = ctx.db.clone();
    let prune = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(600));
        loop {
            every.tick().await;
            match app::store::events::prune_dedupe(&prune_db, app::store::now_ms() - retention_ms).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "Pruned expired dedupe keys."),
                Err(err) => tracing::warn!(error = %err, "Pruning dedupe keys failed."),
            }
            // Per-minute counters past their retention; hourly ones stay.
            if let Err(err) = app::store::rollups::prune(&prune_db, app::store::now_ms()).await {
                tracing::warn!(error = %err, "Pruning per-minute counters failed.");
            }
        }
    });

    // The engine's writer leaves the WAL to this: checkpoints on a connection
    // of their own, off the path of every group's commit.
    // Past 16,384 pages (64 MiB) it asks the engine to restart the WAL.
    let (checkpoint_db, signals) = (ctx.db.clone(), ctx.signals.clone());
    let checkpoint = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(250));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match checkpoint_db.checkpoint().await {
                Ok(pages) if pages > 16_384 => signals.wal_long.store(true, std::sync::atomic::Ordering::Relaxed),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "Checkpointing the WAL failed."),
            }
        }
    });

    // The engine (started with the context) evaluates every event in the
    // transaction that stores it and fires timers; delivery sends webhooks.
    let clock: std::sync::Arc<dyn app::engine::clock::Clock> = std::sync::Arc::new(app::engine::clock::SystemClock);
    let delivery_config = server::delivery::DeliveryConfig {
        max_attempts: config.webhook_max_attempts.max(1),
        timeout: Duration::from_secs(config.webhook_timeout_secs.max(1)),
        ..Default::default()
    };
    let delivery = server::delivery::Delivery::new(ctx.clone(), clock, delivery_config)?.spawn();

    let app = server::router(state);
    let tcp =
        tokio::net::TcpListener::bind(config.addr).await.with_context(|| format!("Listening on {}.", config.addr))?;
    // Live streams are answered on their own connections (see `http::listen`);
    // it stops accepting when they close, at shutdown.
    let listener = server::http::listen::Listener::new(tcp, app.clone(), ctx.live.closed())
        .with_context(|| format!("Listening on {}.", config.addr))?;
    tracing::info!(addr = %config.addr, database = ctx.db.backend(), "Nudge is serving on http://{}.", config.addr);
    // The tap also hands each connection's address to `ConnectInfo`.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown({
            let live = ctx.live.clone();
            async move {
                shutdown_signal().await;
                // Live streams never finish on their own: end them, or the
                // shutdown would wait for every open browser tab.
                live.close();
            }
        })
        .await
        .context("Serving HTTP.")?;
    // Every request has had its answer. The background tasks stop before the
    // pools close: one mid-batch is cancelled at its next await and rolls
    // back (what it did is replayed at the next start; action keys make that
    // a no-op), instead of running into a closed pool.
    for task in [cleanup, prune, checkpoint, delivery] {
        task.abort();
        let _ = task.await;
    }
    // Closing the pools closes SQLite's connections, so the last one checkpoints
    // and removes the WAL; a connection still busy gets five seconds.
    let closing = async {
        ctx.work.close().await;
        ctx.db.close().await;
    };
    if tokio::time::timeout(Duration::from_secs(5), closing).await.is_err() {
        tracing::warn!("The database connections did not close within 5 s.");
    }
    tracing::info!("Nudge stopped.");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "Cannot listen for Ctrl-C.");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "Cannot listen for SIGTERM.");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("Shutting down: finishing requests in flight.");
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn database_passwords_are_redacted_from_messages() {
        assert_eq!(redact("postgres://nudge:secret@db/nudge"), "postgres://nudge:***@db/nudge");
        assert_eq!(redact("postgres://postgres@127.0.0.1/test"), "postgres://postgres@127.0.0.1/test");
        assert_eq!(redact("sqlite://./data/nudge.db"), "sqlite://./data/nudge.db");
    }
}
