//! Form helpers: inline errors and a password field with a show/hide toggle.

use crate::error::AppError;
use leptos::prelude::*;

/// Shows an operation's error under a form, or nothing.
#[component]
pub fn ErrorNote(#[prop(into)] error: Signal<Option<AppError>>) -> impl IntoView {
    move || {
        error.get().map(|err| {
            view! {
                <p class="form-error" role="alert">
                    {err.to_string()}
                </p>
            }
        })
    }
}

/// A password input whose characters can be revealed (client-side only).
#[component]
pub fn PasswordInput(
    name: &'static str,
    label: &'static str,
    #[prop(default = "current-password")] autocomplete: &'static str,
) -> impl IntoView {
    let visible = RwSignal::new(false);
    let id = format!("field-{name}");
    view! {
        <div class="field">
            <label for=id.clone()>{label}</label>
            <span class="password-field">
                <input
                    id=id
                    type=move || if visible.get() { "text" } else { "password" }
                    name=name
                    required
                    autocomplete=autocomplete
                />
                <button
                    type="button"
                    class="reveal"
                    aria-label=move || if visible.get() { "Hide password" } else { "Show password" }
                    on:click=move |_| visible.update(|v| *v = !*v)
                >
                    {move || if visible.get() { "Hide" } else { "Show" }}
                </button>
            </span>
        </div>
    }
}
