//! The 404 page, with a real 404 status when rendered on the server.

use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            resp.set_status(axum::http::StatusCode::NOT_FOUND);
        }
    }
    view! {
        <Title text="Not found" />
        <main class="auth-page">
            <div class="auth-card">
                <h1 class="brand">"Nudge"</h1>
                <h2>"Page not found"</h2>
                <p class="muted">"There is nothing at this address."</p>
                <p>
                    <a href="/">"Go to the dashboard"</a>
                </p>
            </div>
        </main>
    }
}
