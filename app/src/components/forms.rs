//! Form helpers: inline errors (the server's and the browser's own checks, next to
//! their field), a password field with a show/hide toggle, confirm and copy buttons.

use crate::error::AppError;
use leptos::prelude::*;

/// Shows an operation's error under a form, or nothing. Errors about a field
/// listed in `inline` are left to that field's `FieldNote`.
#[component]
pub fn ErrorNote(
    #[prop(into)] error: Signal<Option<AppError>>,
    #[prop(optional)] inline: &'static [&'static str],
) -> impl IntoView {
    move || {
        error.get().filter(|err| !err.field().is_some_and(|f| inline.iter().any(|i| field_matches(f, i)))).map(|err| {
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

/// Whether a server error's field (`mapping.profile[0].path`) is about the
/// form field `name` (`mapping.profile`).
fn field_matches(field: &str, name: &str) -> bool {
    field == name || field.strip_prefix(name).is_some_and(|rest| rest.starts_with(['[', '.']))
}

/// The browser's own checks (`required`, `pattern`, …) of a form's inputs,
/// shown inline by `FieldNote` instead of the browser's bubble. Inputs opt in
/// with `on:invalid=checks.invalid() on:input=checks.clear()`.
#[derive(Clone, Copy)]
pub struct FieldChecks(RwSignal<std::collections::HashMap<String, String>>);

impl Default for FieldChecks {
    fn default() -> Self {
        Self::new()
    }
}

impl FieldChecks {
    pub fn new() -> Self {
        FieldChecks(RwSignal::new(Default::default()))
    }

    /// Records why the input is invalid (its `title` says what a pattern wants)
    /// and keeps the browser from showing its own bubble; the submit stays
    /// cancelled, as the browser does for any invalid form.
    pub fn invalid(self) -> impl Fn(leptos::ev::Event) + Clone + 'static {
        move |ev: leptos::ev::Event| {
            use wasm_bindgen::JsCast;
            let Some(input) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) else {
                return;
            };
            ev.prevent_default();
            let validity = input.validity();
            let message = if validity.value_missing() {
                "Required.".to_string()
            } else if validity.pattern_mismatch() && !input.title().is_empty() {
                input.title()
            } else {
                input.validation_message().unwrap_or_default()
            };
            self.0.update(|m| {
                m.insert(input.name(), message);
            });
            // The first invalid field gets the focus, as with the bubble.
            let first = self.0.with_untracked(|m| m.len() == 1);
            if first {
                let _ = input.focus();
            }
        }
    }

    /// Forgets an input's message once the user edits it.
    pub fn clear(self) -> impl Fn(leptos::ev::Event) + Clone + 'static {
        move |ev: leptos::ev::Event| {
            use wasm_bindgen::JsCast;
            if let Some(input) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) {
                let name = input.name();
                if self.0.with_untracked(|m| m.contains_key(&name)) {
                    self.0.update(|m| {
                        m.remove(&name);
                    });
                }
            }
        }
    }

    fn message(self, name: &str) -> Option<String> {
        self.0.with(|m| m.get(name).cloned())
    }
}

/// The message for one field: the browser's check first, else the server's
/// error when it names this field (`server_field`, e.g. `mapping.event_name`).
#[component]
pub fn FieldNote(
    checks: FieldChecks,
    #[prop(into)] error: Signal<Option<AppError>>,
    name: &'static str,
    server_field: &'static str,
) -> impl IntoView {
    let message = move || {
        checks.message(name).or_else(|| {
            error.get().filter(|e| e.field().is_some_and(|f| field_matches(f, server_field))).map(|e| e.to_string())
        })
    };
    move || {
        message().map(|m| {
            view! {
                <span class="field-error" role="alert" data-field=name>
                    {m}
                </span>
            }
        })
    }
}
