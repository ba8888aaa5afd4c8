//! Command line and environment configuration. The doc comments are the `--help` text.

use app::model::Role;
use clap::{Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Nudge: real-time customer engagement. Events in, actions out, in milliseconds.
#[derive(Debug, Parser)]
#[command(name = "nudge", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address to serve HTTP on.
    #[arg(long, env = "NUDGE_ADDR", default_value = "127.0.0.1:3000", global = true)]
    pub addr: SocketAddr,
    /// Database URL: `sqlite://PATH` or `postgres://USER@HOST/DB`. Default: SQLite at DATA_DIR/nudge.db.
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Folder for the embedded database and other local state; created on first start.
    #[arg(long, env = "NUDGE_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    /// Log output: `pretty` for people, `json` for log collectors.
    #[arg(long, env = "NUDGE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,
    /// The URL users reach Nudge at, e.g. https://nudge.example.com. When it is https,
    /// session cookies are marked Secure; its origin is accepted by the CSRF check.
    #[arg(long, env = "NUDGE_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Hours of inactivity after which a browser session ends.
    #[arg(long, env = "NUDGE_SESSION_TTL_HOURS", default_value_t = 168, global = true)]
    pub session_ttl_hours: u32,
    /// Largest webhook body accepted, in bytes (larger: 413).
    #[arg(long, env = "NUDGE_INGEST_MAX_BODY_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub ingest_max_body_bytes: usize,
    /// Most events in one webhook batch (more: 413).
    #[arg(long, env = "NUDGE_INGEST_MAX_BATCH", default_value_t = 500, global = true)]
    pub ingest_max_batch: usize,
    /// Events per second each source may send before getting 429 (bursts of two seconds' worth); 0 = no limit.
    #[arg(long, env = "NUDGE_INGEST_RATE_LIMIT", default_value_t = 100_000, global = true)]
    pub ingest_rate_limit: u32,
    /// Customers the engine keeps in memory (profile, waiting runs, offers,
    /// hourly counters); the least recently seen are read from the database again.
    #[arg(long, env = "NUDGE_HOT_CUSTOMERS", default_value_t = app::engine::hot::DEFAULT_CUSTOMERS, global = true)]
    pub hot_customers: usize,
    /// Hours a sender's event id is remembered for dropping duplicates.
    #[arg(long, env = "NUDGE_DEDUPE_RETENTION_HOURS", default_value_t = 168, global = true)]
    pub dedupe_retention_hours: u32,
    /// Attempts at delivering a workflow's webhook before it is marked failed.
    #[arg(long, env = "NUDGE_WEBHOOK_MAX_ATTEMPTS", default_value_t = 8, global = true)]
    pub webhook_max_attempts: u32,
    /// Seconds a workflow's webhook request may take.
    #[arg(long, env = "NUDGE_WEBHOOK_TIMEOUT_SECS", default_value_t = 10, global = true)]
    pub webhook_timeout_secs: u64,
    /// Folder with the compiled site (JS, WASM, CSS), as built by cargo-leptos.
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site", global = true)]
    pub site_root: String,
}

impl Config {
    /// The database URL, defaulting to SQLite in the data folder (created here).
    pub fn database_url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        std::fs::create_dir_all(&self.data_dir)
            .map_err(|err| anyhow::anyhow!("cannot create the data folder {}: {err}", self.data_dir.display()))?;
        Ok(format!("sqlite://{}", self.data_dir.join("nudge.db").display()))
    }

    pub fn ingest_limits(&self) -> app::service::ingest::IngestLimits {
        app::service::ingest::IngestLimits {
            max_body_bytes: self.ingest_max_body_bytes,
            max_batch_events: self.ingest_max_batch.max(1),
            events_per_second: self.ingest_rate_limit,
        }
    }

    pub fn secure_cookies(&self) -> bool {
        self.public_url.as_deref().is_some_and(|u| u.starts_with("https://"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web UI, the API and the webhooks (the default).
    Serve,
    /// Manage users from the command line.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Manage API keys from the command line.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin user (the first one on a headless install).
    Create {
        /// The admin's email address.
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key and print it once.
    Create {
        /// A name to recognise the key by, e.g. "shop backend".
        #[arg(long)]
        name: String,
        /// What the key may do: admin, editor or viewer.
        #[arg(long, default_value = "viewer")]
        role: Role,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent_and_documents_its_environment() {
        Cli::command().debug_assert();
        let help = Cli::command().render_long_help().to_string();
        for env in ["NUDGE_ADDR", "DATABASE_URL", "NUDGE_DATA_DIR", "NUDGE_LOG_FORMAT", "NUDGE_PUBLIC_URL"] {
            assert!(help.contains(env), "--help mentions {env}");
        }
        let cli = Cli::try_parse_from(["nudge", "api-key", "create", "--name", "ci", "--role", "editor"]).unwrap();
        assert!(matches!(cli.command, Some(Command::ApiKey(ApiKeyCommand::Create { role: Role::Editor, .. }))));
        assert!(Cli::try_parse_from(["nudge", "api-key", "create", "--name", "ci", "--role", "owner"]).is_err());
        let cli = Cli::try_parse_from(["nudge", "serve", "--addr", "0.0.0.0:8080"]).unwrap();
        assert_eq!(cli.config.addr.port(), 8080);
    }

    #[test]
    fn https_public_url_makes_cookies_secure_and_sqlite_is_the_default() {
        let mut cli = Cli::try_parse_from(["nudge", "--data-dir", "/tmp/nudge-config-test"]).unwrap();
        assert!(!cli.config.secure_cookies());
        assert_eq!(cli.config.database_url().unwrap(), "sqlite:///tmp/nudge-config-test/nudge.db");
        cli.config.public_url = Some("https://nudge.example.com".into());
        assert!(cli.config.secure_cookies());
    }
}
