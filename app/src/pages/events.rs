//! The events explorer (filters in the URL, keyset pages, payloads) and the
//! customer page (profile and timeline).

use crate::components::live::{use_live, LiveBadge};
use crate::error::AppError;
use crate::model::{CustomerDetail, Event, Page};
use crate::pages::runs::{health_badge, waiting_line};
use crate::pages::settings::format_ms;
use crate::pages::sources::list_sources;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Form;
use leptos_router::hooks::{use_params_map, use_query_map};
use std::collections::HashMap;

/// `YYYY-MM-DDTHH:MM` (a datetime-local input, taken as UTC) to unix ms.
pub fn parse_local_utc(value: &str) -> Option<i64> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    let full = if v.len() == 16 { format!("{v}:00Z") } else { format!("{v}Z") };
    crate::ingest::mapping::parse_rfc3339(&full)
}

#[server]
pub async fn list_events(
    source: Option<String>,
    name: Option<String>,
    customer: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
) -> Result<Page<Event>, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        let nonempty = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let time = |field: &str, v: Option<String>| -> Result<Option<i64>, AppError> {
            match nonempty(v) {
                None => Ok(None),
                Some(t) => {
                    parse_local_utc(&t).map(Some).ok_or_else(|| AppError::invalid(field, "Use a date and time."))
                }
            }
        };
        let filter = crate::model::EventFilter {
            source: nonempty(source),
            name: nonempty(name),
            customer: nonempty(customer),
            from: time("from", from)?,
            to: time("to", to)?,
        };
        crate::service::events::list(&ctx, &actor, &filter, nonempty(cursor).as_deref(), Some(50)).await
    })
    .await
}

#[server]
pub async fn get_customer(customer_id: String) -> Result<CustomerDetail, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        crate::service::events::customer(&ctx, &actor, &customer_id).await
    })
    .await
}

/// A table of events; rows open to show the payload.
#[component]
pub fn EventTable(
    events: Vec<Event>,
    sources: HashMap<String, String>,
    #[prop(default = true)] show_customer: bool,
) -> impl IntoView {
    let open = RwSignal::new(None::<String>);
    view! {
        <table class="table events" data-testid="events">
            <thead>
                <tr>
                    <th>"Received"</th>
                    <th>"Event"</th>
                    {show_customer.then(|| view! { <th>"Customer"</th> })}
                    <th>"Source"</th>
                    <th>"Sender's id"</th>
                </tr>
            </thead>
            <tbody>
                {events
                    .into_iter()
                    .map(|e| {
                        let id = e.event_id.clone();
                        let id_for_click = id.clone();
                        let payload = serde_json::to_string_pretty(&e.payload).unwrap_or_default();
                        let source = sources.get(&e.source_id).cloned().unwrap_or_else(|| "(deleted)".into());
                        let columns = if show_customer { 5 } else { 4 };
                        view! {
                            <tr class="clickable" on:click=move |_| open.update(|o| *o = if o.as_deref() == Some(&id_for_click) { None } else { Some(id_for_click.clone()) })>
                                <td>{format_ms(e.received_at)}</td>
                                <td><strong>{e.name.clone()}</strong></td>
                                {show_customer.then(|| view! {
                                    <td><a href=format!("/customers/{}", e.customer_id) on:click=|ev| ev.stop_propagation()>{e.customer_id.clone()}</a></td>
                                })}
                                <td>{source}</td>
                                <td><code>{e.external_id.clone()}</code></td>
                            </tr>
                            <Show when=move || open.get().as_deref() == Some(id.as_str())>
                                <tr class="payload-row">
                                    <td colspan=columns>
                                        <p class="muted">
                                            {format!("Nudge id {} · occurred {}", e.event_id, format_ms(e.occurred_at))}
                                        </p>
                                        <pre class="code">{payload.clone()}</pre>
                                    </td>
                                </tr>
                            </Show>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

#[component]
pub fn EventsPage() -> impl IntoView {
    let query = use_query_map();
    let q = move |k: &str| query.read().get(k);
    let events = Resource::new(
        move || (q("source"), q("name"), q("customer"), q("from"), q("to"), q("cursor")),
        |(source, name, customer, from, to, cursor)| list_events(source, name, customer, from, to, cursor),
    );
    let sources = Resource::new(|| (), |_| list_sources());

    // Live tail: events accepted after the page loaded, when they match the filters.
    let fresh = RwSignal::new(Vec::<Event>::new());
    Effect::new(move |_| {
        query.track();
        fresh.set(Vec::new());
    });
    let status = use_live(
        "events",
        move |text| {
            let Ok(e) = serde_json::from_str::<Event>(&text) else { return };
            let q = |k: &str| query.read_untracked().get(k).filter(|v| !v.is_empty());
            let slug = sources
                .get_untracked()
                .and_then(Result::ok)
                .and_then(|p| p.items.into_iter().find(|s| s.source_id == e.source_id).map(|s| s.slug));
            let matches = q("cursor").is_none()
                && q("name").is_none_or(|n| n == e.name)
                && q("customer").is_none_or(|c| c == e.customer_id)
                && q("source").is_none_or(|s| Some(s) == slug)
                && q("from").and_then(|f| parse_local_utc(&f)).is_none_or(|f| e.received_at >= f)
                && q("to").and_then(|t| parse_local_utc(&t)).is_none_or(|t| e.received_at < t);
            if matches {
                fresh.update(|v| {
                    v.insert(0, e);
                    v.truncate(200);
                });
            }
        },
        move || {
            fresh.set(Vec::new());
            events.refetch();
        },
    );
    view! {
        <Title text="Events" />
        <h1>"Events" <LiveBadge status /></h1>
        <section class="card">
            <Form method="GET" action="" attr:class="inline-form filters">
                <label>
                    "Source"
                    <select name="source">
                        <option value="">"All sources"</option>
                        <Suspense fallback=|| ()>
                            {move || Suspend::new(async move {
                                let current = q("source").unwrap_or_default();
                                sources
                                    .await
                                    .map(|p| p.items)
                                    .unwrap_or_default()
                                    .into_iter()
                                    .map(|s| {
                                        let selected = s.slug == current;
                                        view! { <option value=s.slug.clone() selected=selected>{s.name.clone()}</option> }
                                    })
                                    .collect_view()
                            })}
                        </Suspense>
                    </select>
                </label>
                <label>"Event name" <input type="text" name="name" value=move || q("name").unwrap_or_default() /></label>
                <label>"Customer" <input type="text" name="customer" value=move || q("customer").unwrap_or_default() /></label>
                <label>"From (UTC)" <input type="datetime-local" name="from" value=move || q("from").unwrap_or_default() /></label>
                <label>"To (UTC)" <input type="datetime-local" name="to" value=move || q("to").unwrap_or_default() /></label>
                <button type="submit">"Filter"</button>
                <a href="/events" class="reset">"Clear"</a>
            </Form>
        </section>
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || {
                let fresh = fresh.get();
                Suspend::new(async move {
                let names: HashMap<String, String> =
                    sources.await.map(|p| p.items.into_iter().map(|s| (s.source_id, s.slug)).collect()).unwrap_or_default();
                match events.await {
                    Ok(mut page) if !fresh.is_empty() => {
                        let known: std::collections::HashSet<String> = page.items.iter().map(|e| e.event_id.clone()).collect();
                        let mut items: Vec<Event> = fresh.into_iter().filter(|e| !known.contains(&e.event_id)).collect();
                        items.append(&mut page.items);
                        view! {
                            <section class="card">
                                <EventTable events=items sources=names />
                            </section>
                        }
                            .into_any()
                    }
                    Ok(page) if page.items.is_empty() => {
                        let filtered = ["source", "name", "customer", "from", "to", "cursor"].iter().any(|k| q(k).is_some_and(|v| !v.is_empty()));
                        view! {
                            <section class="empty-state" data-testid="no-events">
                                {if filtered {
                                    view! { <p>"No events match these filters."</p> }.into_any()
                                } else {
                                    view! { <p>"No events yet. Connect a source in " <a href="/sources">"Sources"</a> " and send one — its page has a signed curl example and a test button."</p> }.into_any()
                                }}
                            </section>
                        }
                            .into_any()
                    }
                    Ok(page) => {
                        let next = page.next_cursor.map(|c| {
                            let mut params: Vec<String> = ["source", "name", "customer", "from", "to"]
                                .iter()
                                .filter_map(|k| q(k).filter(|v| !v.is_empty()).map(|v| format!("{k}={}", js_encode(&v))))
                                .collect();
                            params.push(format!("cursor={}", js_encode(&c)));
                            format!("/events?{}", params.join("&"))
                        });
                        view! {
                            <section class="card">
                                <EventTable events=page.items sources=names />
                                <div class="pager">
                                    {q("cursor").is_some().then(|| view! { <a href="/events">"← Newest"</a> })}
                                    {next.map(|href| view! { <a href=href>"Older →"</a> })}
                                </div>
                            </section>
                        }
                            .into_any()
                    }
                    Err(e) => view! { <p class="form-error">{e.to_string()}</p> }.into_any(),
                }
            })
            }}
        </Transition>
    }
}

/// Percent-encodes a query value.
pub fn js_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[component]
pub fn CustomerPage() -> impl IntoView {
    let params = use_params_map();
    let customer = Resource::new(move || params.read().get("id").unwrap_or_default(), get_customer);
    let sources = Resource::new(|| (), |_| list_sources());
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let names: HashMap<String, String> =
                    sources.await.map(|p| p.items.into_iter().map(|s| (s.source_id, s.slug)).collect()).unwrap_or_default();
                match customer.await {
                    Ok(d) => {
                        let c = d.customer;
                        let attributes: Vec<(String, String)> = c
                            .attributes
                            .as_object()
                            .map(|o| o.iter().map(|(k, v)| (k.clone(), match v { serde_json::Value::String(s) => s.clone(), other => other.to_string() })).collect())
                            .unwrap_or_default();
                        view! {
                            <Title text=format!("Customer {}", c.customer_id) />
                            <p class="crumbs" data-testid="crumbs"><a href="/events">"Events"</a> {format!(" / Customer {}", c.customer_id)}</p>
                            <h1>{c.customer_id.clone()}</h1>
                            <section class="card" data-testid="customer-profile">
                                <dl class="facts">
                                    <dt>"First seen"</dt><dd>{format_ms(c.first_seen_at)}</dd>
                                    <dt>"Last seen"</dt><dd>{format_ms(c.last_seen_at)}</dd>
                                    <dt>"Events"</dt><dd>{c.event_count}</dd>
                                    {attributes.into_iter().map(|(k, v)| view! { <dt>{k}</dt><dd>{v}</dd> }).collect_view()}
                                </dl>
                            </section>
                            <section class="card" data-testid="customer-engagement">
                                <h2>"Runs, offers and alerts"</h2>
                                {if d.runs.is_empty() && d.offers.is_empty() && d.alerts.is_empty() {
                                    view! { <p class="muted">"No workflow has run for this customer yet."</p> }.into_any()
                                } else {
                                    view! {
                                        <ul class="engagement">
                                            {d.runs.into_iter().map(|r| {
                                                let waiting = waiting_line(&r).map(|w| format!(" · {w}"));
                                                let workflow = r.workflow_name.clone().map(|n| format!(" of {n}"));
                                                view! {
                                                    <li>
                                                        "Run " <a href=format!("/runs/{}", r.run_id)>{format_ms(r.started_at)}</a>
                                                        {workflow}
                                                        " · " <strong>{r.status.as_str()}</strong>
                                                        {waiting} " " {health_badge(&r.action_health)}
                                                    </li>
                                                }
                                            }).collect_view()}
                                            {d.offers.into_iter().map(|o| view! {
                                                <li>"Offer " <code>{o.code.clone()}</code> {format!(" · {} {} · {} · expires {}", o.value, o.discount.replace('_', " "), o.status, format_ms(o.expires_at))}</li>
                                            }).collect_view()}
                                            {d.alerts.into_iter().map(|a| view! {
                                                <li>"Alert (" {a.severity.clone()} ") " {a.message.clone()} " · " <strong>{a.status.as_str()}</strong></li>
                                            }).collect_view()}
                                        </ul>
                                    }.into_any()
                                }}
                            </section>
                            <section class="card">
                                <h2>"Timeline"</h2>
                                <EventTable events=d.events sources=names show_customer=false />
                            </section>
                        }
                            .into_any()
                    }
                    Err(e) => view! { <h1>"Customer"</h1> <p class="form-error">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_local_values_are_read_as_utc() {
        assert_eq!(parse_local_utc("1970-01-01T00:01"), Some(60_000));
        assert_eq!(parse_local_utc("1970-01-01T00:00:30"), Some(30_000));
        assert_eq!(parse_local_utc(""), None);
        assert_eq!(parse_local_utc("soon"), None);
        assert_eq!(js_encode("a b&c"), "a%20b%26c");
    }
}
