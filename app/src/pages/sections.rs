//! Sections of the product whose features arrive in later releases. Each says
//! what it will hold and what to do meanwhile, rather than showing fake data.

use leptos::prelude::*;
use leptos_meta::Title;

#[component]
fn EmptyState(
    title: &'static str,
    holds: &'static str,
    start: &'static str,
    #[prop(optional)] children: Option<Children>,
) -> impl IntoView {
    view! {
        <Title text=title />
        <h1>{title}</h1>
        <section class="empty-state">
            <p class="lead">{holds}</p>
            <p>{start}</p>
            {children.map(|c| c())}
        </section>
    }
}

#[component]
pub fn AlertsPage() -> impl IntoView {
    view! {
        <EmptyState
            title="Alerts"
            holds="The customer-service inbox: alerts raised by workflows, to acknowledge and resolve."
            start="No alerts yet: workflows with an alert action raise them."
        />
    }
}
