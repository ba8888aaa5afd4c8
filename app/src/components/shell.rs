//! The frame of every signed-in page: top navigation, the caller, logout.

use crate::components::caller::provide_caller;
use crate::pages::auth::{go_to, Logout};
use leptos::prelude::*;
use leptos_router::components::{Outlet, A};

#[component]
pub fn Shell() -> impl IntoView {
    let me = provide_caller().0;
    let logout = ServerAction::<Logout>::new();
    Effect::new(move |_| {
        if logout.value().get().is_some() {
            go_to("/login");
        }
    });
    view! {
        <header class="topbar">
            <a class="brand" href="/">
                "Nudge"
            </a>
            <nav class="mainnav">
                <A href="/" exact=true>
                    "Dashboard"
                </A>
                <A href="/workflows">"Workflows"</A>
                <A href="/runs">"Runs"</A>
                <A href="/sources">"Sources"</A>
                <A href="/events">"Events"</A>
                <A href="/alerts">"Alerts"</A>
                <A href="/settings">"Settings"</A>
            </nav>
            <div class="whoami">
                <Transition fallback=|| ()>
                    {move || Suspend::new(async move {
                        match me.await {
                            Ok(Some(me)) => {
                                view! {
                                    <span class="who" data-testid="whoami">
                                        {me.name}
                                        " "
                                        <span class="role-badge">{me.role.label()}</span>
                                    </span>
                                }
                                    .into_any()
                            }
                            _ => view! { <a href="/login">"Log in"</a> }.into_any(),
                        }
                    })}
                </Transition>
                <ActionForm action=logout>
                    <button type="submit" class="link">
                        "Log out"
                    </button>
                </ActionForm>
            </div>
        </header>
        <main class="content">
            <Outlet />
        </main>
    }
}
