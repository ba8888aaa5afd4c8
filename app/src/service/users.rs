//! User administration: admins list, create, re-role and remove users.

use super::{paginate, Actor, Ctx};
use crate::error::{AppError, AppResult};
use crate::model::{Page, Role, User};
use crate::service::auth::{check_password_strength, hash_password, normalise_email};
use crate::store::{self, page_limit};

pub async fn list(ctx: &Ctx, actor: &Actor, cursor: Option<&str>, limit: Option<i64>) -> AppResult<Page<User>> {
    actor.require(Role::Admin)?;
    let limit = page_limit(limit);
    let rows = store::users::list(&ctx.db, cursor, limit + 1).await?;
    Ok(paginate(rows, limit, |r| r.user_id.clone(), |r| r.to_user()))
}

pub struct NewUser<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub role: Role,
}

pub async fn create(ctx: &Ctx, actor: &Actor, new: NewUser<'_>) -> AppResult<User> {
    actor.require(Role::Admin)?;
    let email = normalise_email(new.email)?;
    check_password_strength(new.password)?;
    if store::users::find_by_email(&ctx.db, &email).await?.is_some() {
        return Err(AppError::Conflict(format!("A user with the email {email} already exists.")));
    }
    let hash = hash_password(new.password).await?;
    let row = store::users::insert(&ctx.db, &store::new_id(), &email, &hash, new.role).await?;
    tracing::info!(user_id = %row.user_id, role = %new.role, "User created.");
    Ok(row.to_user())
}

/// Changes a user's role; the last admin cannot be demoted.
pub async fn set_role(ctx: &Ctx, actor: &Actor, user_id: &str, role: Role) -> AppResult<User> {
    actor.require(Role::Admin)?;
    let row =
        store::users::find_by_id(&ctx.db, user_id).await?.ok_or_else(|| AppError::NotFound("No such user.".into()))?;
    if row.role() == Role::Admin && role != Role::Admin && store::users::count_admins(&ctx.db).await? <= 1 {
        return Err(AppError::Conflict("This is the last admin; make another user admin first.".into()));
    }
    store::users::update_role(&ctx.db, user_id, role).await?;
    Ok(User { role, ..row.to_user() })
}

/// Removes a user; admins cannot remove themselves, so an admin always remains.
pub async fn delete(ctx: &Ctx, actor: &Actor, user_id: &str) -> AppResult<()> {
    actor.require(Role::Admin)?;
    if actor.user_id() == Some(user_id) {
        return Err(AppError::Conflict("You cannot remove your own account.".into()));
    }
    let row =
        store::users::find_by_id(&ctx.db, user_id).await?.ok_or_else(|| AppError::NotFound("No such user.".into()))?;
    if row.role() == Role::Admin && store::users::count_admins(&ctx.db).await? <= 1 {
        return Err(AppError::Conflict("This is the last admin.".into()));
    }
    store::users::delete(&ctx.db, user_id).await?;
    Ok(())
}
