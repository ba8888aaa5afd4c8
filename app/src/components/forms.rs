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

/// Asks the browser to confirm a destructive click; cancels the submit if not.
pub fn confirm_click(message: &'static str) -> impl Fn(leptos::ev::MouseEvent) + Clone + 'static {
    move |ev: leptos::ev::MouseEvent| {
        let confirmed = web_sys::window().map(|w| w.confirm_with_message(message).unwrap_or(false)).unwrap_or(true);
        if !confirmed {
            ev.prevent_default();
        }
    }
}

/// Clears a form each time `succeeded` turns true (an action's latest result is Ok).
pub fn reset_on_success(succeeded: impl Fn() -> bool + 'static, form: NodeRef<leptos::html::Form>) {
    Effect::new(move |_| {
        if succeeded() {
            if let Some(form) = form.get_untracked() {
                form.reset();
            }
        }
    });
}

/// A button that copies `text` to the clipboard and says so.
#[component]
pub fn CopyButton(#[prop(into)] text: Signal<String>) -> impl IntoView {
    let copied = RwSignal::new(false);
    let on_click = move |_| {
        if let Some(window) = web_sys::window() {
            let _promise = window.navigator().clipboard().write_text(&text.get_untracked());
            copied.set(true);
        }
    };
    view! {
        <button type="button" class="small" on:click=on_click>
            {move || if copied.get() { "Copied" } else { "Copy" }}
        </button>
    }
}
