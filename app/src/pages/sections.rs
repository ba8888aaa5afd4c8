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
pub fn WorkflowsPage() -> impl IntoView {
    view! {
        <EmptyState
            title="Workflows"
            holds="Your event-to-action workflows: a trigger, conditions on the event and the customer, waits, A/B splits and actions such as a unique discount offer, an alert to customer service or a webhook."
            start="No workflows yet. The canvas designer is not part of this version; workflows will be drawn here."
        >
            <p class="muted">"Meanwhile, invite the people who will build them in " <a href="/settings">"Settings"</a> "."</p>
        </EmptyState>
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
