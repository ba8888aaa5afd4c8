//! Sources: the list with creation, and each source's page — webhook URL,
//! signing, a ready-to-run curl example, test events, mapping, dead letters.

use crate::components::caller::{use_caller, IfRole};
use crate::components::forms::{confirm_click, reset_on_success, CopyButton, ErrorNote, FieldChecks, FieldNote};
use crate::error::AppError;
use crate::ingest::mapping::{parse_profile_lines, profile_lines, Mapping};
use crate::model::{DeadLetter, Page, Role, Source, SourceWithSecret};
use crate::pages::settings::format_ms;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

/// A mapping from the form's fields; profile lines are `attribute = path`.
pub fn mapping_from_form(
    event_name: String,
    customer_id: String,
    event_id: String,
    timestamp: String,
    profile: &str,
    offer_code: String,
) -> Result<Mapping, AppError> {
    let profile = parse_profile_lines(profile).map_err(|e| AppError::invalid("profile", e))?;
    let optional = |text: String| Some(text.trim().to_string()).filter(|t| !t.is_empty());
    Ok(Mapping {
        event_name,
        customer_id,
        event_id,
        timestamp: optional(timestamp),
        profile,
        offer_code: optional(offer_code),
    })
}

#[server]
pub async fn list_sources() -> Result<Page<Source>, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        crate::service::sources::list(&ctx, &actor, None, Some(200)).await
    })
    .await
}

pub use form_fns::{create_source, update_source_mapping, CreateSource, UpdateSourceMapping};

/// The server functions behind the mapping forms: one argument per form field,
/// as the forms post them flat (hence more than clippy's seven).
mod form_fns {
    #![allow(clippy::too_many_arguments)]
    use super::*;

    #[server]
    pub async fn create_source(
        name: String,
        slug: String,
        event_name: String,
        customer_id: String,
        event_id: String,
        timestamp: String,
        profile: String,
        #[server(default)] offer_code: String,
    ) -> Result<SourceWithSecret, AppError> {
        crate::web::respond(async move {
            let ctx = crate::web::ctx()?;
            let actor = crate::web::actor().await?;
            let mapping = mapping_from_form(event_name, customer_id, event_id, timestamp, &profile, offer_code)?;
            let input = crate::service::sources::NewSourceInput { name: &name, slug: &slug, mapping: &mapping };
            crate::service::sources::create(&ctx, &actor, input).await
        })
        .await
    }

    #[server]
    pub async fn update_source_mapping(
        slug: String,
        name: String,
        event_name: String,
        customer_id: String,
        event_id: String,
        timestamp: String,
        profile: String,
        #[server(default)] offer_code: String,
    ) -> Result<Source, AppError> {
        crate::web::respond(async move {
            let ctx = crate::web::ctx()?;
            let actor = crate::web::actor().await?;
            let mapping = mapping_from_form(event_name, customer_id, event_id, timestamp, &profile, offer_code)?;
            let patch =
                crate::service::sources::SourcePatch { name: Some(name), enabled: None, mapping: Some(mapping) };
            crate::service::sources::update(&ctx, &actor, &slug, patch).await
        })
        .await
    }
}

#[server]
pub async fn get_source(slug: String) -> Result<Source, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        crate::service::sources::get(&ctx, &actor, &slug).await
    })
    .await
}

#[server]
pub async fn set_source_enabled(slug: String, enabled: bool) -> Result<Source, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        let patch = crate::service::sources::SourcePatch { enabled: Some(enabled), ..Default::default() };
        crate::service::sources::update(&ctx, &actor, &slug, patch).await
    })
    .await
}

#[server]
pub async fn rotate_source_secret(slug: String) -> Result<SourceWithSecret, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        crate::service::sources::rotate_secret(&ctx, &actor, &slug, None).await
    })
    .await
}

#[server]
pub async fn delete_source(slug: String) -> Result<(), AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        crate::service::sources::delete(&ctx, &actor, &slug).await
    })
    .await
}

/// A signed sample request: (path, body, signature header).
#[server]
pub async fn source_example(slug: String) -> Result<(String, String, String), AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        let ex = crate::service::sources::signed_example(&ctx, &actor, &slug, crate::store::now_ms()).await?;
        Ok((ex.path, ex.body, ex.signature))
    })
    .await
}

/// Sends a test event through the webhook's code path; says what happened.
#[server]
pub async fn send_test_event(slug: String) -> Result<String, AppError> {
    use crate::service::ingest::HookOutcome;
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        match crate::service::sources::send_test_event(&ctx, &actor, &slug, crate::store::now_ms()).await? {
            HookOutcome::Single(one) => Ok(format!(
                "Test event {} {} (Nudge id {}).",
                one.event_id.unwrap_or_default(),
                one.status,
                one.nudge_id.unwrap_or_default()
            )),
            HookOutcome::Batch(b) => Ok(format!("{} accepted, {} rejected.", b.accepted, b.rejected)),
        }
    })
    .await
}

#[server]
pub async fn source_dead_letters(slug: String) -> Result<Page<DeadLetter>, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        crate::service::events::dead_letters(&ctx, &actor, Some(&slug), None, Some(100)).await
    })
    .await
}

#[server]
pub async fn replay_dead_letter(dead_letter_id: String) -> Result<String, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        let event = crate::service::events::replay(&ctx, &actor, &dead_letter_id, crate::store::now_ms()).await?;
        Ok(event.event_id)
    })
    .await
}

/// The form fields whose server errors show beside the field, not under the form.
const INLINE_FIELDS: &[&str] = &[
    "name",
    "slug",
    "mapping.event_name",
    "mapping.customer_id",
    "mapping.event_id",
    "mapping.timestamp",
    "mapping.offer_code",
    "mapping.profile",
    "profile",
];

/// The six mapping inputs, prefilled from `mapping` when editing; each shows
/// its own error (the browser's check or the server's) beside it.
#[component]
fn MappingFields(
    #[prop(optional)] mapping: Option<Mapping>,
    checks: FieldChecks,
    #[prop(into)] error: Signal<Option<AppError>>,
) -> impl IntoView {
    let m = mapping.unwrap_or_else(|| Mapping {
        event_name: "$.type".into(),
        customer_id: "$.customer.id".into(),
        event_id: "$.id".into(),
        ..Mapping::default()
    });
    // The profile box's server errors come as `profile` (a line that is not
    // `attribute = path`) or `mapping.profile[i]…` (a bad path).
    let profile_error = Signal::derive(move || {
        error.get().map(|e| match e.field() {
            Some("profile") => AppError::invalid("mapping.profile", e.to_string()),
            _ => e,
        })
    });
    view! {
        <fieldset class="mapping">
            <legend>"Field mapping (JSON paths into each event)"</legend>
            <label>
                "Event name"
                <input type="text" name="event_name" required value=m.event_name on:invalid=checks.invalid() on:input=checks.clear() />
                <FieldNote checks error name="event_name" server_field="mapping.event_name" />
            </label>
            <label>
                "Customer id"
                <input type="text" name="customer_id" required value=m.customer_id on:invalid=checks.invalid() on:input=checks.clear() />
                <FieldNote checks error name="customer_id" server_field="mapping.customer_id" />
            </label>
            <label>
                "Event id (for duplicates)"
                <input type="text" name="event_id" required value=m.event_id on:invalid=checks.invalid() on:input=checks.clear() />
                <FieldNote checks error name="event_id" server_field="mapping.event_id" />
            </label>
            <label>
                "Event time (optional)"
                <input type="text" name="timestamp" placeholder="e.g. $.created_at" value=m.timestamp.unwrap_or_default() />
                <FieldNote checks error name="timestamp" server_field="mapping.timestamp" />
            </label>
            <label>
                "Offer code redeemed (optional)"
                <input type="text" name="offer_code" placeholder="e.g. $.order.coupon" value=m.offer_code.unwrap_or_default() />
                <small class="hint">"Only a code at this path redeems an offer; leave empty if this source sends no codes."</small>
                <FieldNote checks error name="offer_code" server_field="mapping.offer_code" />
            </label>
            <label class="wide">
                "Profile attributes (optional, one per line: attribute = path)"
                <textarea name="profile" rows="3" placeholder="e.g. email = $.customer.email">
                    {profile_lines(&m.profile)}
                </textarea>
                <FieldNote checks error=profile_error name="profile" server_field="mapping.profile" />
            </label>
        </fieldset>
    }
}

/// A source's mapping as text, for those who may not change it.
#[component]
fn MappingFacts(mapping: Mapping) -> impl IntoView {
    let profile = profile_lines(&mapping.profile);
    view! {
        <dl class="facts" data-testid="mapping-facts">
            <dt>"Event name"</dt><dd><code>{mapping.event_name}</code></dd>
            <dt>"Customer id"</dt><dd><code>{mapping.customer_id}</code></dd>
            <dt>"Event id"</dt><dd><code>{mapping.event_id}</code></dd>
            <dt>"Event time"</dt><dd>{match mapping.timestamp { Some(t) => view! { <code>{t}</code> }.into_any(), None => "time received".into_any() }}</dd>
            <dt>"Offer code"</dt><dd>{match mapping.offer_code { Some(t) => view! { <code>{t}</code> }.into_any(), None => "redeems nothing".into_any() }}</dd>
            <dt>"Profile"</dt><dd>{if profile.is_empty() { "none".into_any() } else { view! { <pre class="code">{profile}</pre> }.into_any() }}</dd>
        </dl>
    }
}

/// The full secret, once, with a copy button.
#[component]
fn SecretOnce(secret: String) -> impl IntoView {
    view! {
        <div class="secret-once" data-testid="source-secret">
            <p>
                <strong>"Signing secret — copy it now: it will not be shown again."</strong>
            </p>
            <div class="secret-row">
                <code class="secret">{secret.clone()}</code>
                <CopyButton text=secret />
            </div>
        </div>
    }
}

#[component]
pub fn SourcesPage() -> impl IntoView {
    let create = ServerAction::<CreateSource>::new();
    let form = NodeRef::<leptos::html::Form>::new();
    reset_on_success(move || matches!(create.value().get(), Some(Ok(_))), form);
    let sources = Resource::new(move || create.version().get(), |_| list_sources());
    let error = Signal::derive(move || create.value().get().and_then(Result::err));
    let checks = FieldChecks::new();
    view! {
        <Title text="Sources" />
        <h1>"Sources"</h1>
        <p class="lead">
            "Each shop, bank or app posts signed events to its own webhook. Nudge checks the signature, "
            "drops duplicates and stores each event before it answers."
        </p>
        {move || {
            create
                .value()
                .get()
                .and_then(Result::ok)
                .map(|created| {
                    let href = format!("/sources/{}", created.source.slug);
                    view! {
                        <section class="card">
                            <h2>{format!("Source “{}” created", created.source.name)}</h2>
                            <SecretOnce secret=created.secret />
                            <p>
                                <a href=href>"Open the source"</a>
                                " for its webhook URL, a signed curl example and a test button."
                            </p>
                        </section>
                    }
                })
        }}
        <section class="card">
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match sources.await {
                        Ok(page) if page.items.is_empty() => {
                            view! {
                                <p class="muted" data-testid="no-sources">
                                    "No sources yet. Create one below; it gets a webhook URL and a signing secret."
                                </p>
                            }
                                .into_any()
                        }
                        Ok(page) => {
                            view! {
                                <table class="table" data-testid="sources">
                                    <thead>
                                        <tr>
                                            <th>"Source"</th>
                                            <th>"Webhook"</th>
                                            <th>"Status"</th>
                                            <th class="num">"Accepted"</th>
                                            <th class="num">"Duplicates"</th>
                                            <th class="num">"Rejected"</th>
                                            <th>"Last event"</th>
                                        </tr>
                                    </thead>
                                    <tbody>
                                        {page
                                            .items
                                            .into_iter()
                                            .map(|s| {
                                                view! {
                                                    <tr>
                                                        <td>
                                                            <a href=format!("/sources/{}", s.slug)>{s.name.clone()}</a>
                                                        </td>
                                                        <td>
                                                            <code>{format!("/hooks/{}", s.slug)}</code>
                                                        </td>
                                                        <td>{if s.enabled { "enabled" } else { "disabled" }}</td>
                                                        <td class="num">{s.accepted_count}</td>
                                                        <td class="num">{s.duplicate_count}</td>
                                                        <td class="num">{s.rejected_count}</td>
                                                        <td>{s.last_event_at.map(format_ms).unwrap_or_else(|| "never".into())}</td>
                                                    </tr>
                                                }
                                            })
                                            .collect_view()}
                                    </tbody>
                                </table>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <p class="form-error">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
        <IfRole at_least=Role::Editor>
            <section class="card">
                <h2>"New source"</h2>
                <ActionForm action=create node_ref=form attr:class="source-form">
                    <div class="inline-form">
                        <label>
                            "Name"
                            <input type="text" name="name" required maxlength="100" placeholder="e.g. Web shop" on:invalid=checks.invalid() on:input=checks.clear() />
                            <FieldNote checks error name="name" server_field="name" />
                        </label>
                        <label>
                            "Slug (in the URL)"
                            // `\-`, not a bare `-` at the end of the class: browsers compile
                            // `pattern` with the `v` flag, where that is a syntax error and the
                            // check is silently skipped.
                            <input
                                type="text"
                                name="slug"
                                required
                                maxlength="64"
                                placeholder="e.g. web-shop"
                                pattern="[a-z0-9][a-z0-9_\\-]*"
                                title="Lower-case letters, digits, '-' or '_', starting with a letter or digit, e.g. web-shop."
                                data-testid="slug"
                                on:invalid=checks.invalid()
                                on:input=checks.clear()
                            />
                            <FieldNote checks error name="slug" server_field="slug" />
                        </label>
                    </div>
                    <MappingFields checks error />
                    <ErrorNote error inline=INLINE_FIELDS />
                    <button type="submit" class="primary narrow" disabled=move || create.pending().get()>
                        "Create source"
                    </button>
                </ActionForm>
            </section>
        </IfRole>
    }
}

#[component]
pub fn SourceDetailPage() -> impl IntoView {
    let params = use_params_map();
    let slug = move || params.read().get("slug").unwrap_or_default();
    let update = ServerAction::<UpdateSourceMapping>::new();
    let toggle = ServerAction::<SetSourceEnabled>::new();
    let rotate = ServerAction::<RotateSourceSecret>::new();
    let test = ServerAction::<SendTestEvent>::new();
    let replay = ServerAction::<ReplayDeadLetter>::new();
    let remove = ServerAction::<DeleteSource>::new();
    Effect::new(move |_| {
        if let Some(Ok(())) = remove.value().get() {
            crate::pages::auth::go_to("/sources");
        }
    });
    let source = Resource::new(
        move || {
            (
                slug(),
                update.version().get(),
                toggle.version().get(),
                rotate.version().get(),
                test.version().get(),
                replay.version().get(),
            )
        },
        |(s, ..)| get_source(s),
    );
    // Only editors may see a signed example: a viewer's page never asks for one.
    let caller = use_caller().0;
    let example = Resource::new(
        move || (slug(), update.version().get(), rotate.version().get()),
        move |(s, ..)| async move {
            match caller.await {
                Ok(Some(me)) if me.role >= Role::Editor => source_example(s).await.map(Some),
                _ => Ok(None),
            }
        },
    );
    let letters = Resource::new(
        move || (slug(), test.version().get(), replay.version().get(), update.version().get()),
        |(s, ..)| source_dead_letters(s),
    );
    // The page's own origin, known only in the browser, completes the webhook URL.
    let origin = RwSignal::new(String::new());
    Effect::new(move |_| {
        if let Some(o) = web_sys::window().and_then(|w| w.location().origin().ok()) {
            origin.set(o);
        }
    });
    let update_error = Signal::derive(move || update.value().get().and_then(Result::err));
    let checks = FieldChecks::new();
    let errors = Signal::derive(move || {
        toggle
            .value()
            .get()
            .and_then(Result::err)
            .or_else(|| rotate.value().get().and_then(Result::err))
            .or_else(|| remove.value().get().and_then(Result::err))
    });
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let s = match source.await {
                    Ok(s) => s,
                    Err(e) => return view! { <h1>"Source"</h1> <p class="form-error">{e.to_string()}</p> }.into_any(),
                };
                let slug_value = StoredValue::new(s.slug.clone());
                let name_value = StoredValue::new(s.name.clone());
                let mapping_value = StoredValue::new(s.mapping.clone());
                let hook_path = format!("/hooks/{}", s.slug);
                view! {
                    <Title text=s.name.clone() />
                    <p class="crumbs"><a href="/sources">"Sources"</a> " / " {s.slug.clone()}</p>
                    <h1>
                        {s.name.clone()} " "
                        <span class=if s.enabled { "badge ok" } else { "badge off" }>{if s.enabled { "enabled" } else { "disabled" }}</span>
                    </h1>
                    <ErrorNote error=errors />
                    <section class="card stats" data-testid="source-counters">
                        <div><span class="stat">{s.accepted_count}</span> " accepted"</div>
                        <div><span class="stat">{s.duplicate_count}</span> " duplicates"</div>
                        <div><span class="stat">{s.rejected_count}</span> " rejected"</div>
                        <div>"Last event: " {s.last_event_at.map(format_ms).unwrap_or_else(|| "never".into())}</div>
                    </section>
                    <section class="card">
                        <h2>"Webhook"</h2>
                        <div class="secret-row">
                            <code class="secret" data-testid="webhook-url">{move || format!("{}{}", origin.get(), hook_path)}</code>
                        </div>
                        <p class="muted">
                            "Signing secret: " <code>{s.secret_hint.clone()}</code>
                            {s.previous_secret_until.map(|u| format!(" — the previous secret is accepted until {}", format_ms(u)))}
                        </p>
                        {move || rotate.value().get().and_then(Result::ok).map(|r| view! { <SecretOnce secret=r.secret /> })}
                        <IfRole at_least=Role::Editor>
                        <div class="actions">
                            <ActionForm action=rotate attr:class="row-form">
                                <input type="hidden" name="slug" value=slug_value.get_value() />
                                <button type="submit" on:click=confirm_click("Issue a new secret? The current one keeps working for 24 hours.")>
                                    "Rotate secret"
                                </button>
                            </ActionForm>
                            <ActionForm action=toggle attr:class="row-form">
                                <input type="hidden" name="slug" value=slug_value.get_value() />
                                <input type="hidden" name="enabled" value=(!s.enabled).to_string() />
                                <button type="submit">{if s.enabled { "Disable" } else { "Enable" }}</button>
                            </ActionForm>
                        </div>
                        </IfRole>
                        <h3>"Signing"</h3>
                        <p class="muted">
                            "Send " <code>"Nudge-Signature: t=<unix seconds>,v1=<hex>"</code> " where the hex is "
                            <code>"HMAC-SHA256(secret, \"<t>.<raw body>\")"</code>
                            ". Requests more than 5 minutes old are refused; during a rotation, sign with both secrets (two v1 entries). "
                            "Post one JSON event, or an array of up to 500. A repeated event id is answered as a duplicate and not stored again."
                        </p>
                    </section>
                    <IfRole at_least=Role::Editor>
                    <section class="card">
                        <h2>"Try it"</h2>
                        <Suspense fallback=|| ()>
                            {move || Suspend::new(async move {
                                match example.await {
                                    Ok(None) => ().into_any(),
                                    Ok(Some((path, body, sig))) => {
                                        let curl = Signal::derive(move || format!(
                                            "curl -X POST '{}{path}' \\\n  -H 'Content-Type: application/json' \\\n  -H 'Nudge-Signature: {sig}' \\\n  --data-raw '{body}'",
                                            origin.get()
                                        ));
                                        view! {
                                            <p class="muted">"A correctly signed sample, valid for 5 minutes:"</p>
                                            <pre class="code" data-testid="curl-example">{curl}</pre>
                                            <CopyButton text=curl />
                                        }.into_any()
                                    }
                                    Err(e) => view! { <p class="muted">{e.to_string()}</p> }.into_any(),
                                }
                            })}
                        </Suspense>
                        <ActionForm action=test attr:class="row-form">
                            <input type="hidden" name="slug" value=slug_value.get_value() />
                            <button type="submit" disabled=move || test.pending().get()>"Send test event"</button>
                        </ActionForm>
                        {move || test.value().get().map(|r| match r {
                            Ok(msg) => view! { <p class="form-ok" data-testid="test-result">{msg}</p> }.into_any(),
                            Err(e) => view! { <p class="form-error">{e.to_string()}</p> }.into_any(),
                        })}
                    </section>
                    </IfRole>
                    <section class="card">
                        <h2>"Mapping"</h2>
                        <IfRole
                            at_least=Role::Editor
                            fallback=move || view! { <MappingFacts mapping=mapping_value.get_value() /> }
                        >
                            <ActionForm action=update>
                                <input type="hidden" name="slug" value=slug_value.get_value() />
                                <label>
                                    "Name"
                                    <input type="text" name="name" required maxlength="100" value=name_value.get_value() on:invalid=checks.invalid() on:input=checks.clear() />
                                    <FieldNote checks error=update_error name="name" server_field="name" />
                                </label>
                                <MappingFields mapping=mapping_value.get_value() checks error=update_error />
                                <ErrorNote error=update_error inline=INLINE_FIELDS />
                                <button type="submit" class="narrow">"Save mapping"</button>
                                {move || matches!(update.value().get(), Some(Ok(_))).then(|| view! { <span class="form-ok">" Saved."</span> })}
                            </ActionForm>
                        </IfRole>
                    </section>
                    <section class="card" data-testid="dead-letters">
                        <h2>"Dead letters"</h2>
                        <p class="muted">"Events this source's mapping could not read. Fix the mapping, then replay them."</p>
                        {move || replay.value().get().map(|r| match r {
                            Ok(id) => view! { <p class="form-ok">{format!("Replayed as event {id}.")}</p> }.into_any(),
                            Err(e) => view! { <p class="form-error">{e.to_string()}</p> }.into_any(),
                        })}
                        <Transition fallback=|| ()>
                            {move || Suspend::new(async move {
                                match letters.await {
                                    Ok(page) if page.items.is_empty() => view! { <p class="muted">"None."</p> }.into_any(),
                                    Ok(page) => view! {
                                        <table class="table">
                                            <thead><tr><th>"Received"</th><th>"Reason"</th><th>"Payload"</th><th></th></tr></thead>
                                            <tbody>
                                                {page.items.into_iter().map(|d| view! {
                                                    <tr>
                                                        <td>{format_ms(d.received_at)}</td>
                                                        <td>{d.reason.clone()}</td>
                                                        <td><code class="payload">{d.payload.to_string()}</code></td>
                                                        <td>
                                                            {match d.replayed_event_id.clone() {
                                                                Some(id) => view! { <span class="muted">{format!("replayed: {id}")}</span> }.into_any(),
                                                                None => {
                                                                    let id = StoredValue::new(d.dead_letter_id.clone());
                                                                    view! {
                                                                        <IfRole at_least=Role::Editor>
                                                                            <ActionForm action=replay attr:class="row-form">
                                                                                <input type="hidden" name="dead_letter_id" value=id.get_value() />
                                                                                <button type="submit" class="small">"Replay"</button>
                                                                            </ActionForm>
                                                                        </IfRole>
                                                                    }.into_any()
                                                                }
                                                            }}
                                                        </td>
                                                    </tr>
                                                }).collect_view()}
                                            </tbody>
                                        </table>
                                    }.into_any(),
                                    Err(e) => view! { <p class="form-error">{e.to_string()}</p> }.into_any(),
                                }
                            })}
                        </Transition>
                    </section>
                    <IfRole at_least=Role::Editor>
                    <section class="card danger-zone">
                        <ActionForm action=remove attr:class="row-form">
                            <input type="hidden" name="slug" value=slug_value.get_value() />
                            <button type="submit" class="danger" on:click=confirm_click("Delete this source? Its webhook stops accepting events; events already received stay.")>
                                "Delete source"
                            </button>
                        </ActionForm>
                    </section>
                    </IfRole>
                }.into_any()
            })}
        </Suspense>
    }
}
