//! Settings: your account, and for admins the users and API keys.

use crate::components::caller::use_caller;
use crate::components::forms::{confirm_click, reset_on_success, CopyButton, ErrorNote, PasswordInput};
use crate::error::AppError;
use crate::model::{ApiKey, CreatedApiKey, Page, Role, User};
use leptos::prelude::*;
use leptos_meta::Title;

#[cfg(feature = "ssr")]
fn parse_role(role: &str) -> Result<Role, AppError> {
    role.parse().map_err(|e: String| AppError::invalid("role", e))
}

#[server]
pub async fn change_password(current_password: String, new_password: String) -> Result<(), AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        crate::service::auth::change_password(&ctx, &actor, &current_password, &new_password).await?;
        // A new session id: whoever held the old one is out.
        crate::web::session().await?.cycle_id().await.map_err(crate::web::session_error)
    })
    .await
}

#[server]
pub async fn list_users(cursor: Option<String>) -> Result<Page<User>, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        crate::service::users::list(&ctx, &actor, cursor.as_deref(), Some(200)).await
    })
    .await
}

#[server]
pub async fn create_user(email: String, password: String, role: String) -> Result<User, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        let role = parse_role(&role)?;
        crate::service::users::create(
            &ctx,
            &actor,
            crate::service::users::NewUser { email: &email, password: &password, role },
        )
        .await
    })
    .await
}

#[server]
pub async fn set_user_role(user_id: String, role: String) -> Result<User, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        crate::service::users::set_role(&ctx, &actor, &user_id, parse_role(&role)?).await
    })
    .await
}

#[server]
pub async fn delete_user(user_id: String) -> Result<(), AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        crate::service::users::delete(&ctx, &actor, &user_id).await
    })
    .await
}

#[server]
pub async fn list_api_keys(cursor: Option<String>) -> Result<Page<ApiKey>, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        crate::service::api_keys::list(&ctx, &actor, cursor.as_deref(), Some(200)).await
    })
    .await
}

#[server]
pub async fn create_api_key(name: String, role: String) -> Result<CreatedApiKey, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        crate::service::api_keys::create(&ctx, &actor, &name, parse_role(&role)?).await
    })
    .await
}

#[server]
pub async fn revoke_api_key(api_key_id: String) -> Result<(), AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        crate::service::api_keys::revoke(&ctx, &actor, &api_key_id).await
    })
    .await
}

pub use crate::workflow::describe::format_ms;

#[component]
fn RoleSelect(#[prop(default = Role::Viewer)] selected: Role) -> impl IntoView {
    view! {
        <select name="role">
            {Role::ALL
                .iter()
                .map(|r| {
                    view! {
                        <option value=r.as_str() selected=*r == selected>
                            {r.label()}
                        </option>
                    }
                })
                .collect_view()}
        </select>
    }
}

#[component]
pub fn SettingsPage() -> impl IntoView {
    let me = use_caller().0;
    view! {
        <Title text="Settings" />
        <h1>"Settings"</h1>
        <AccountSection />
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                match me.await {
                    Ok(Some(me)) if me.role == Role::Admin => {
                        view! {
                            <UsersSection my_id=me.id.clone() />
                            <ApiKeysSection />
                        }
                            .into_any()
                    }
                    Ok(Some(_)) => {
                        view! {
                            <section class="card">
                                <h2>"Users and API keys"</h2>
                                <p class="muted">"Only admins manage users and API keys."</p>
                            </section>
                        }
                            .into_any()
                    }
                    _ => ().into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn AccountSection() -> impl IntoView {
    let change = ServerAction::<ChangePassword>::new();
    let form = NodeRef::<leptos::html::Form>::new();
    reset_on_success(move || matches!(change.value().get(), Some(Ok(_))), form);
    let error = Signal::derive(move || change.value().get().and_then(Result::err));
    view! {
        <section class="card">
            <h2>"Your password"</h2>
            <ActionForm action=change node_ref=form attr:class="inline-form">
                <PasswordInput name="current_password" label="Current password" />
                <PasswordInput name="new_password" label="New password" autocomplete="new-password" />
                <button type="submit" disabled=move || change.pending().get()>
                    "Change password"
                </button>
            </ActionForm>
            <ErrorNote error />
            <Show when=move || matches!(change.value().get(), Some(Ok(())))>
                <p class="form-ok">"Password changed."</p>
            </Show>
        </section>
    }
}

#[component]
fn UsersSection(my_id: String) -> impl IntoView {
    let create = ServerAction::<CreateUser>::new();
    let create_form = NodeRef::<leptos::html::Form>::new();
    reset_on_success(move || matches!(create.value().get(), Some(Ok(_))), create_form);
    let set_role = ServerAction::<SetUserRole>::new();
    let delete = ServerAction::<DeleteUser>::new();
    let users = Resource::new(
        move || (create.version().get(), set_role.version().get(), delete.version().get()),
        |_| list_users(None),
    );
    let error = Signal::derive(move || {
        create
            .value()
            .get()
            .and_then(Result::err)
            .or_else(|| set_role.value().get().and_then(Result::err))
            .or_else(|| delete.value().get().and_then(Result::err))
    });
    let my_id = StoredValue::new(my_id);
    view! {
        <section class="card" data-testid="users">
            <h2>"Users"</h2>
            <p class="muted">
                "Admins manage users, sources and everything else; editors build workflows and sources; viewers read."
            </p>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match users.await {
                        Ok(page) => {
                            view! {
                                <table class="table">
                                    <thead>
                                        <tr>
                                            <th>"Email"</th>
                                            <th>"Role"</th>
                                            <th>"Since"</th>
                                            <th></th>
                                        </tr>
                                    </thead>
                                    <tbody>
                                        {page
                                            .items
                                            .into_iter()
                                            .map(|u| {
                                                let is_me = my_id.with_value(|id| *id == u.user_id);
                                                let uid = u.user_id.clone();
                                                view! {
                                                    <tr>
                                                        <td>{u.email.clone()} {is_me.then_some(" (you)")}</td>
                                                        <td>
                                                            <ActionForm action=set_role attr:class="row-form">
                                                                <input type="hidden" name="user_id" value=u.user_id.clone() />
                                                                <RoleSelect selected=u.role />
                                                                <button type="submit" class="small">
                                                                    "Save"
                                                                </button>
                                                            </ActionForm>
                                                        </td>
                                                        <td>{format_ms(u.created_at)}</td>
                                                        <td>
                                                            {(!is_me)
                                                                .then(|| {
                                                                    view! {
                                                                        <ActionForm action=delete attr:class="row-form">
                                                                            <input type="hidden" name="user_id" value=uid />
                                                                            <button
                                                                                type="submit"
                                                                                class="small danger"
                                                                                on:click=confirm_click("Remove this user? They will no longer be able to log in.")
                                                                            >
                                                                                "Remove"
                                                                            </button>
                                                                        </ActionForm>
                                                                    }
                                                                })}
                                                        </td>
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
            <h3>"Add a user"</h3>
            <ActionForm action=create node_ref=create_form attr:class="inline-form">
                <label>"Email" <input type="email" name="email" required /></label>
                <PasswordInput name="password" label="Initial password" autocomplete="new-password" />
                <label>"Role" <RoleSelect /></label>
                <button type="submit" disabled=move || create.pending().get()>
                    "Add user"
                </button>
            </ActionForm>
            <p class="hint">"Share the initial password with them; they can change it in Settings."</p>
            <ErrorNote error />
        </section>
    }
}

#[component]
fn ApiKeysSection() -> impl IntoView {
    let create = ServerAction::<CreateApiKey>::new();
    let create_form = NodeRef::<leptos::html::Form>::new();
    reset_on_success(move || matches!(create.value().get(), Some(Ok(_))), create_form);
    let revoke = ServerAction::<RevokeApiKey>::new();
    let keys = Resource::new(move || (create.version().get(), revoke.version().get()), |_| list_api_keys(None));
    let error = Signal::derive(move || {
        create.value().get().and_then(Result::err).or_else(|| revoke.value().get().and_then(Result::err))
    });
    view! {
        <section class="card" data-testid="api-keys">
            <h2>"API keys"</h2>
            <p class="muted">
                "Keys authenticate API clients: " <code>"Authorization: Bearer <key>"</code>
                ". A key acts with the role it was given. "
                <a href="/api/openapi.json" rel="external">"OpenAPI document"</a>
            </p>
            {move || {
                create
                    .value()
                    .get()
                    .and_then(Result::ok)
                    .map(|created| {
                        view! {
                            <div class="secret-once" data-testid="new-api-key">
                                <p>
                                    <strong>"Copy this key now: it will not be shown again."</strong>
                                </p>
                                <div class="secret-row">
                                    <code class="secret">{created.secret.clone()}</code>
                                    <CopyButton text=created.secret />
                                </div>
                            </div>
                        }
                    })
            }}
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match keys.await {
                        Ok(page) if page.items.is_empty() => {
                            view! { <p class="muted">"No API keys yet."</p> }.into_any()
                        }
                        Ok(page) => {
                            view! {
                                <table class="table">
                                    <thead>
                                        <tr>
                                            <th>"Name"</th>
                                            <th>"Key"</th>
                                            <th>"Role"</th>
                                            <th>"Created"</th>
                                            <th>"Last used"</th>
                                            <th></th>
                                        </tr>
                                    </thead>
                                    <tbody>
                                        {page
                                            .items
                                            .into_iter()
                                            .map(|k| {
                                                let revoked = k.revoked_at.is_some();
                                                view! {
                                                    <tr class:revoked=revoked>
                                                        <td>{k.name.clone()}</td>
                                                        <td>
                                                            <code>{format!("{}…", k.prefix)}</code>
                                                        </td>
                                                        <td>{k.role.label()}</td>
                                                        <td>{format_ms(k.created_at)}</td>
                                                        <td>{k.last_used_at.map(format_ms).unwrap_or_else(|| "never".into())}</td>
                                                        <td>
                                                            {if revoked {
                                                                view! { <span class="muted">"revoked"</span> }.into_any()
                                                            } else {
                                                                view! {
                                                                    <ActionForm action=revoke attr:class="row-form">
                                                                        <input type="hidden" name="api_key_id" value=k.api_key_id.clone() />
                                                                        <button
                                                                            type="submit"
                                                                            class="small danger"
                                                                            on:click=confirm_click("Revoke this key? Clients using it stop working at once.")
                                                                        >
                                                                            "Revoke"
                                                                        </button>
                                                                    </ActionForm>
                                                                }
                                                                    .into_any()
                                                            }}
                                                        </td>
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
            <h3>"Create a key"</h3>
            <ActionForm action=create node_ref=create_form attr:class="inline-form">
                <label>"Name" <input type="text" name="name" required placeholder="shop backend" /></label>
                <label>"Role" <RoleSelect /></label>
                <button type="submit" disabled=move || create.pending().get()>
                    "Create key"
                </button>
            </ActionForm>
            <ErrorNote error />
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::format_ms;

    #[test]
    fn formats_unix_milliseconds_as_utc_dates() {
        assert_eq!(format_ms(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_ms(1_709_210_096_000), "2024-02-29 12:34 UTC");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29 00:00 UTC");
    }
}
