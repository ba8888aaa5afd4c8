//! Nudge's application: the page shell and routes. Pages live in `pages/`,
//! reusable UI in `components/`, operations in `service/` (server only).

// The designer's view types are deep; the default limit (128) is too low for them.
#![recursion_limit = "256"]

pub mod components;
#[cfg(feature = "ssr")]
pub mod engine;
pub mod error;
pub mod ingest;
pub mod model;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod service;
#[cfg(feature = "ssr")]
pub mod store;
#[cfg(feature = "ssr")]
pub mod web;
pub mod workflow;

use components::shell::Shell;
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{ParentRoute, Route, Router, Routes};
use leptos_router::path;
use pages::{
    auth::{LoginPage, SetupPage},
    dashboard::{DashboardPage, WorkflowDashboardPage},
    designer::DesignerPage,
    events::{CustomerPage, EventsPage},
    not_found::NotFound,
    runs::{AlertsPage, RunPage, RunsPage},
    settings::SettingsPage,
    sources::{SourceDetailPage, SourcesPage},
    workflows::WorkflowsPage,
};

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    // Effects run only in the browser: this marks the page as hydrated, which
    // end-to-end tests wait for before they click.
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });

    view! {
        <Stylesheet id="leptos" href="/pkg/nudge.css" />
        <Title formatter=|text: String| if text.is_empty() { "Nudge".to_string() } else { format!("{text} · Nudge") } />
        <Router>
            <Routes fallback=NotFound>
                <Route path=path!("/setup") view=SetupPage />
                <Route path=path!("/login") view=LoginPage />
                <ParentRoute path=path!("") view=Shell>
                    <Route path=path!("") view=DashboardPage />
                    <Route path=path!("workflows") view=WorkflowsPage />
                    <Route path=path!("workflows/:id") view=DesignerPage />
                    <Route path=path!("workflows/:id/dashboard") view=WorkflowDashboardPage />
                    <Route path=path!("sources") view=SourcesPage />
                    <Route path=path!("sources/:slug") view=SourceDetailPage />
                    <Route path=path!("events") view=EventsPage />
                    <Route path=path!("customers/:id") view=CustomerPage />
                    <Route path=path!("runs") view=RunsPage />
                    <Route path=path!("runs/:id") view=RunPage />
                    <Route path=path!("alerts") view=AlertsPage />
                    <Route path=path!("settings") view=SettingsPage />
                </ParentRoute>
            </Routes>
        </Router>
    }
}
