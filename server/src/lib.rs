//! Nudge's HTTP server: `router(state)` assembles the UI (Leptos SSR and server
//! fns), the REST API, health and metrics, and the security layers around them.

// The designer's view types are deep; the default limit (128) is too low for them.
#![recursion_limit = "256"]

pub mod cli;
pub mod config;
pub mod delivery;
pub mod http;

use app::service::Ctx;
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use std::sync::Arc;

/// Everything a request handler can reach. Every request clones it (axum's
/// `State`), so it is one shared pointer: a clone is one atomic increment,
/// not a copy of the options and a dozen handles.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What `AppState` points at.
pub struct Shared {
    pub ctx: Ctx,
    pub leptos: LeptosOptions,
    pub metrics: http::metrics::Metrics,
    pub settings: Settings,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Server settings that handlers and layers consult.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Mark session cookies Secure (served over https).
    pub secure_cookies: bool,
    /// The public origin (scheme://host[:port]) accepted by the CSRF check, besides the Host header's.
    pub public_origin: Option<String>,
    pub session_ttl_hours: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { secure_cookies: false, public_origin: None, session_ttl_hours: 168 }
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

impl FromRef<AppState> for Ctx {
    fn from_ref(state: &AppState) -> Self {
        state.ctx.clone()
    }
}

impl AppState {
    pub fn new(ctx: Ctx, leptos: LeptosOptions, settings: Settings) -> Self {
        AppState(Arc::new(Shared { ctx, leptos, metrics: http::metrics::Metrics::default(), settings }))
    }
}

/// Leptos options for serving the compiled site from `site_root`, without
/// needing cargo-leptos' environment (which overrides these when present).
pub fn leptos_options(site_root: &str) -> LeptosOptions {
    let mut opts = leptos::config::get_configuration(None).map(|c| c.leptos_options).unwrap_or_else(|err| {
        tracing::warn!(error = %err, "Leptos configuration from the environment is unusable; using defaults.");
        LeptosOptions::builder().output_name("nudge").build()
    });
    if opts.output_name.is_empty() {
        opts.output_name = "nudge".into();
    }
    if std::env::var_os("LEPTOS_SITE_ROOT").is_none() {
        opts.site_root = site_root.into();
    }
    if std::env::var_os("LEPTOS_ENV").is_none() && !cfg!(debug_assertions) {
        opts.env = leptos::config::Env::PROD;
    }
    opts
}

pub use http::router;
