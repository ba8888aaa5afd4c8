//! Set-up of the first admin, password login, and turning a session or an API
//! key into an `Actor`.

use super::{Actor, Ctx, Principal};
use crate::error::{AppError, AppResult};
use crate::model::{Role, User};
use crate::store::{self, users::UserRow};
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};
use std::time::Instant;

pub const MIN_PASSWORD_LEN: usize = 10;
const WRONG_CREDENTIALS: &str = "Wrong email or password.";

/// Lower-cases and checks an email address; the field name is `email`.
pub fn normalise_email(email: &str) -> AppResult<String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        })
        && !email.chars().any(char::is_whitespace);
    if valid {
        Ok(email)
    } else {
        Err(AppError::invalid("email", "Enter a valid email address, like ana@example.com."))
    }
}

pub fn check_password_strength(password: &str) -> AppResult<()> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AppError::invalid(
            "password",
            format!("Use at least {MIN_PASSWORD_LEN} characters for the password."),
        ));
    }
    if password.len() > 1024 {
        return Err(AppError::invalid("password", "The password is longer than 1024 bytes."));
    }
    Ok(())
}

/// Hashes with argon2id on a blocking thread: it is deliberately slow.
pub async fn hash_password(password: &str) -> AppResult<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
    })
    .await
    .map_err(|err| {
        tracing::error!(error = %err, "Password hashing task failed.");
        AppError::Internal
    })?
    .map_err(|err| {
        tracing::error!(error = %err, "Password hashing failed.");
        AppError::Internal
    })
}

/// Verifies on a blocking thread. With no stored hash, verifies against a fixed
/// one anyway so that unknown and known accounts take the same time.
async fn verify_password(password: &str, stored: Option<String>) -> bool {
    // A valid argon2id hash of a random string nobody knows.
    const DUMMY: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$bm9ib2R5a25vd3N0aGlz$2kZP6WcXFh0r1XxGk9xDQH3n3Kq1zQf7yVqQm3v9Vt0";
    let password = password.to_owned();
    let known = stored.is_some();
    let stored = stored.unwrap_or_else(|| DUMMY.to_string());
    let ok = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored)
            .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false);
    ok && known
}

/// Creates the first admin. Refused once any user exists.
pub async fn setup_first_admin(ctx: &Ctx, email: &str, password: &str) -> AppResult<User> {
    let email = normalise_email(email)?;
    check_password_strength(password)?;
    if !ctx.needs_setup().await? {
        return Err(AppError::Conflict("Nudge is already set up; log in instead.".into()));
    }
    let hash = hash_password(password).await?;
    let user_id = store::new_id();
    if !store::users::insert_first(&ctx.db, &user_id, &email, &hash).await? {
        return Err(AppError::Conflict("Nudge is already set up; log in instead.".into()));
    }
    tracing::info!(user_id = %user_id, email = %email, "First admin created.");
    ctx.needs_setup().await?;
    Ok(User { user_id, email, role: Role::Admin, created_at: store::now_ms() })
}

/// Checks an email and password. `address` is the client's IP address, used by
/// the throttle. The error never tells whether the account exists.
pub async fn login(ctx: &Ctx, email: &str, password: &str, address: Option<&str>) -> AppResult<User> {
    let account = email.trim().to_lowercase();
    if let Err(wait) = ctx.throttle.check(&account, address, Instant::now()) {
        let minutes = wait.as_secs().div_ceil(60);
        return Err(AppError::TooManyRequests {
            detail: format!("Too many failed attempts. Try again in {minutes} minute(s)."),
            retry_after_secs: wait.as_secs().max(1),
        });
    }
    let row = store::users::find_by_email(&ctx.db, &account).await?;
    let ok = verify_password(password, row.as_ref().map(|r| r.password_hash.clone())).await;
    match row {
        Some(row) if ok => {
            ctx.throttle.record_success(&account);
            Ok(row.to_user())
        }
        _ => {
            ctx.throttle.record_failure(&account, address, Instant::now());
            tracing::info!(email = %account, address = address.unwrap_or("-"), "Login failed.");
            Err(AppError::Unauthorized(WRONG_CREDENTIALS.into()))
        }
    }
}

fn user_actor(row: &UserRow) -> Actor {
    Actor { principal: Principal::User { user_id: row.user_id.clone(), email: row.email.clone() }, role: row.role() }
}

/// The actor behind a session's user id; `None` if the user no longer exists.
/// The role is read afresh so a role change applies at once.
pub async fn actor_for_user(ctx: &Ctx, user_id: &str) -> AppResult<Option<Actor>> {
    Ok(store::users::find_by_id(&ctx.db, user_id).await?.as_ref().map(user_actor))
}

pub fn hash_api_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A fresh API key secret: `nudge_` and 64 hex digits (256 random bits).
pub fn generate_api_key_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("nudge_{}", hex::encode(bytes))
}

/// The actor behind a bearer key; 401 for unknown or revoked keys.
pub async fn actor_for_api_key(ctx: &Ctx, secret: &str) -> AppResult<Actor> {
    let row = store::api_keys::find_active_by_hash(&ctx.db, &hash_api_key(secret.trim()))
        .await?
        .ok_or_else(|| AppError::Unauthorized("The API key is unknown or revoked.".into()))?;
    if let Err(err) = store::api_keys::touch(&ctx.db, &row.api_key_id).await {
        tracing::warn!(api_key_id = %row.api_key_id, error = %err, "Recording API key use failed.");
    }
    Ok(Actor {
        principal: Principal::ApiKey { api_key_id: row.api_key_id.clone(), name: row.name.clone() },
        role: row.role(),
    })
}

/// Changes the caller's own password after checking the current one.
pub async fn change_password(ctx: &Ctx, actor: &Actor, current: &str, new: &str) -> AppResult<()> {
    let user_id = actor.user_id().ok_or_else(|| AppError::Forbidden("API keys have no password.".into()))?;
    let row = store::users::find_by_id(&ctx.db, user_id)
        .await?
        .ok_or_else(|| AppError::Unauthorized("Your account no longer exists.".into()))?;
    if !verify_password(current, Some(row.password_hash.clone())).await {
        return Err(AppError::invalid("current_password", "The current password is wrong."));
    }
    check_password_strength(new)?;
    let hash = hash_password(new).await?;
    store::users::update_password(&ctx.db, user_id, &hash).await?;
    Ok(())
}
