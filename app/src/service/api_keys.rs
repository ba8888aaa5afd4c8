//! API keys: admins create (shown once), list and revoke them.

use super::{paginate, Actor, Ctx};
use crate::error::{AppError, AppResult};
use crate::model::{ApiKey, CreatedApiKey, Page, Role};
use crate::service::auth::{generate_api_key_secret, hash_api_key};
use crate::store::{self, api_keys::NewApiKey, page_limit};

pub async fn list(ctx: &Ctx, actor: &Actor, cursor: Option<&str>, limit: Option<i64>) -> AppResult<Page<ApiKey>> {
    actor.require(Role::Admin)?;
    let limit = page_limit(limit);
    let rows = store::api_keys::list(&ctx.db, cursor, limit + 1).await?;
    Ok(paginate(rows, limit, |r| r.api_key_id.clone(), |r| r.to_api_key()))
}

pub async fn create(ctx: &Ctx, actor: &Actor, name: &str, role: Role) -> AppResult<CreatedApiKey> {
    actor.require(Role::Admin)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::invalid("name", "Give the key a name of 1 to 100 characters, e.g. \"shop backend\"."));
    }
    let secret = generate_api_key_secret();
    let prefix: String = secret.chars().take(12).collect();
    let row = store::api_keys::insert(
        &ctx.db,
        NewApiKey {
            api_key_id: &store::new_id(),
            name,
            role,
            prefix: &prefix,
            key_hash: &hash_api_key(&secret),
            created_by: actor.user_id(),
        },
    )
    .await?;
    tracing::info!(api_key_id = %row.api_key_id, role = %role, "API key created.");
    Ok(CreatedApiKey { api_key: row.to_api_key(), secret })
}

pub async fn revoke(ctx: &Ctx, actor: &Actor, api_key_id: &str) -> AppResult<()> {
    actor.require(Role::Admin)?;
    if store::api_keys::revoke(&ctx.db, api_key_id).await? {
        tracing::info!(api_key_id = %api_key_id, "API key revoked.");
        Ok(())
    } else {
        Err(AppError::NotFound("No such active API key.".into()))
    }
}
