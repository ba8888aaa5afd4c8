//! First-run set-up, login and logout, and `whoami` for the page shell.

use crate::components::forms::{ErrorNote, PasswordInput};
use crate::error::AppError;
use crate::model::Me;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// The logged-in caller, or `None`.
#[server]
pub async fn whoami() -> Result<Option<Me>, AppError> {
    crate::web::respond(async move { Ok(crate::web::current_actor().await?.map(|a| a.me())) }).await
}

#[server]
pub async fn setup_admin(email: String, password: String, password_confirm: String) -> Result<(), AppError> {
    crate::web::respond(async move {
        if password != password_confirm {
            return Err(AppError::invalid("password_confirm", "The two passwords differ."));
        }
        let ctx = crate::web::ctx()?;
        let user = crate::service::auth::setup_first_admin(&ctx, &email, &password).await?;
        crate::web::start_session(&user.user_id).await
    })
    .await
}

#[server]
pub async fn login(email: String, password: String) -> Result<(), AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let address = crate::web::client_address().await;
        let user = crate::service::auth::login(&ctx, &email, &password, address.as_deref()).await?;
        crate::web::start_session(&user.user_id).await
    })
    .await
}

#[server]
pub async fn logout() -> Result<(), AppError> {
    crate::web::respond(async move {
        let session = crate::web::session().await?;
        session.flush().await.map_err(crate::web::session_error)
    })
    .await
}

/// A same-site path to return to after login; anything else becomes `/`.
pub fn safe_next(next: Option<String>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") => n,
        _ => "/".to_string(),
    }
}

/// Full navigation, so every part of the page starts from the new session.
pub fn go_to(path: &str) {
    if let Some(window) = web_sys::window() {
        let _ = window.location().set_href(path);
    }
}

#[component]
pub fn SetupPage() -> impl IntoView {
    let setup = ServerAction::<SetupAdmin>::new();
    Effect::new(move |_| {
        if let Some(Ok(())) = setup.value().get() {
            go_to("/");
        }
    });
    let error = Signal::derive(move || setup.value().get().and_then(Result::err));
    view! {
        <Title text="Set up" />
        <main class="auth-page">
            <div class="auth-card">
                <h1 class="brand">"Nudge"</h1>
                <h2>"Create the first admin"</h2>
                <p class="muted">
                    "This is a new installation. The account you create here administers Nudge: "
                    "users, sources, workflows and API keys. This page disappears once it exists."
                </p>
                <ActionForm action=setup>
                    <label>
                        "Email" <input type="email" name="email" required autocomplete="username" />
                    </label>
                    <PasswordInput name="password" label="Password" autocomplete="new-password" />
                    <PasswordInput name="password_confirm" label="Repeat the password" autocomplete="new-password" />
                    <p class="hint">"At least 10 characters."</p>
                    <ErrorNote error />
                    <button type="submit" class="primary" disabled=move || setup.pending().get()>
                        "Create admin and log in"
                    </button>
                </ActionForm>
            </div>
        </main>
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let query = use_query_map();
    Effect::new(move |_| {
        if let Some(Ok(())) = login.value().get() {
            go_to(&safe_next(query.read_untracked().get("next")));
        }
    });
    let error = Signal::derive(move || login.value().get().and_then(Result::err));
    view! {
        <Title text="Log in" />
        <main class="auth-page">
            <div class="auth-card">
                <h1 class="brand">"Nudge"</h1>
                <h2>"Log in"</h2>
                <ActionForm action=login>
                    <label>
                        "Email" <input type="email" name="email" required autocomplete="username" />
                    </label>
                    <PasswordInput name="password" label="Password" autocomplete="current-password" />
                    <ErrorNote error />
                    <button type="submit" class="primary" disabled=move || login.pending().get()>
                        "Log in"
                    </button>
                </ActionForm>
            </div>
        </main>
    }
}
