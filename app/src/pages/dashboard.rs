//! The landing page after login: installation status and the way to get started.

use crate::error::AppError;
use crate::model::SystemStatus;
use leptos::prelude::*;
use leptos_meta::Title;

#[server]
pub async fn installation_status() -> Result<SystemStatus, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        crate::service::system_status(&ctx, &actor).await
    })
    .await
}

#[component]
pub fn DashboardPage() -> impl IntoView {
    let status = Resource::new(|| (), |_| installation_status());
    view! {
        <Title text="Dashboard" />
        <h1>"Dashboard"</h1>
        <p class="lead">
            "Nudge turns the events your shop, bank or app sends into actions within milliseconds. "
            "Engagement figures — events received, runs, offers issued and redeemed, conversions — "
            "appear here once events flow."
        </p>
        <section class="card">
            <h2>"Getting started"</h2>
            <ol class="steps">
                <li>
                    <strong>"Invite your team."</strong>
                    " Add editors and viewers in "
                    <a href="/settings">"Settings"</a>
                    "."
                </li>
                <li>
                    <strong>"Connect a source."</strong>
                    " Each shop or app posts signed events to its own webhook URL ("
                    <a href="/sources">"Sources"</a>
                    ")."
                </li>
                <li>
                    <strong>"Draw a workflow."</strong>
                    " Trigger, conditions, waits and actions, on a canvas ("
                    <a href="/workflows">"Workflows"</a>
                    ")."
                </li>
                <li>
                    <strong>"Automate."</strong>
                    " Everything in the UI is also in the REST API: create a key in Settings and read "
                    <a href="/api/openapi.json" rel="external">
                        "the OpenAPI document"
                    </a>
                    "."
                </li>
            </ol>
        </section>
        <section class="card">
            <h2>"This installation"</h2>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match status.await {
                        Ok(s) => {
                            view! {
                                <dl class="facts" data-testid="system-status">
                                    <dt>"Version"</dt>
                                    <dd>{s.version}</dd>
                                    <dt>"Database"</dt>
                                    <dd>{s.database}</dd>
                                    <dt>"Users"</dt>
                                    <dd>{s.users}</dd>
                                    <dt>"Active API keys"</dt>
                                    <dd>{s.api_keys}</dd>
                                </dl>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <p class="form-error">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}
