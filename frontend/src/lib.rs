//! The browser half of Nudge: hydrates the server-rendered page.
//! Everything else lives in the `app` crate, shared with the server.

// The designer's view types are deep; the default limit (128) is too low for them.
#![recursion_limit = "256"]

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
