//! Who is signed in: loaded once by the page shell and read by pages only
//! through `<IfRole>`, which awaits it inside a `Transition`. A resource read
//! outside a suspense boundary renders differently on the server and at the
//! browser's first render, and hydration then panics on some direct loads.

use crate::error::AppError;
use crate::model::{Me, Role};
use crate::pages::auth::whoami;
use leptos::prelude::*;

/// The caller, as the shell loaded it.
#[derive(Clone, Copy)]
pub struct Caller(pub Resource<Result<Option<Me>, AppError>>);

/// Loads the caller and shares it with every page below.
pub fn provide_caller() -> Caller {
    let caller = Caller(Resource::new(|| (), |_| whoami()));
    provide_context(caller);
    caller
}

/// The shell's caller, or a fresh one for a page rendered outside the shell.
pub fn use_caller() -> Caller {
    use_context::<Caller>().unwrap_or_else(provide_caller)
}

/// Renders its children only for a caller with at least `role`; otherwise
/// `fallback` (nothing by default). Safe anywhere, tables included: it adds
/// no element of its own.
#[component]
pub fn IfRole(at_least: Role, children: ChildrenFn, #[prop(optional, into)] fallback: Option<ViewFn>) -> impl IntoView {
    let me = use_caller().0;
    let children = StoredValue::new(children);
    let fallback = StoredValue::new(fallback);
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                let allowed = matches!(me.await, Ok(Some(m)) if m.role >= at_least);
                if allowed {
                    children.with_value(|c| c()).into_any()
                } else {
                    fallback.with_value(|f| f.as_ref().map(|f| f.run())).into_any()
                }
            })}
        </Transition>
    }
}
