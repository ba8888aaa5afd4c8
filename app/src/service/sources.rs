//! Sources: create, read, change, rotate secrets, delete, and a signed example.

use super::{ingest, paginate, Actor, Ctx};
use crate::error::{AppError, AppResult};
use crate::ingest::mapping::Mapping;
use crate::model::{Page, Role, Source, SourceWithSecret};
use crate::service::signature;
use crate::store::{self, page_limit, sources::NewSource, sources::SourceRow};
use argon2::password_hash::rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

/// Hours the old secret stays valid after a rotation, by default.
pub const DEFAULT_GRACE_HOURS: u32 = 24;

fn generate_secret() -> String {
    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    format!("whsec_{}", hex::encode(bytes))
}

fn check_name(name: &str) -> AppResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::invalid("name", "Name the source in 1 to 100 characters, e.g. \"Web shop\"."));
    }
    Ok(name.to_string())
}

/// Slugs a source may not take: Nudge's own records use them, and a source
/// with one could forge them (an API redemption converts runs).
pub const RESERVED_SLUGS: &[&str] = &[crate::workflow::eval::NUDGE_SOURCE];

/// Slugs are the webhook's URL segment: lower-case letters, digits, `-` and `_`.
pub fn check_slug(slug: &str) -> AppResult<String> {
    let slug = slug.trim();
    let ok = (1..=64).contains(&slug.len())
        && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && slug.as_bytes()[0].is_ascii_alphanumeric();
    if ok && RESERVED_SLUGS.contains(&slug) {
        return Err(AppError::invalid(
            "slug",
            format!("'{slug}' is reserved for Nudge's own events (API redemptions); choose another, e.g. {slug}-shop."),
        ));
    }
    if ok {
        Ok(slug.to_string())
    } else {
        Err(AppError::invalid(
            "slug",
            "Use 1 to 64 lower-case letters, digits, '-' or '_', starting with a letter or digit, e.g. web-shop.",
        ))
    }
}

fn check_mapping(mapping: &Mapping) -> AppResult<String> {
    mapping.compile().map_err(|(field, detail)| AppError::Invalid { field: Some(field), detail })?;
    serde_json::to_string(mapping).map_err(|_| AppError::Internal)
}

async fn row(ctx: &Ctx, slug: &str) -> AppResult<SourceRow> {
    store::sources::find_by_slug(&ctx.db, slug).await?.ok_or_else(|| AppError::NotFound(format!("No source '{slug}'.")))
}

pub struct NewSourceInput<'a> {
    pub name: &'a str,
    pub slug: &'a str,
    pub mapping: &'a Mapping,
}

pub async fn create(ctx: &Ctx, actor: &Actor, input: NewSourceInput<'_>) -> AppResult<SourceWithSecret> {
    actor.require(Role::Editor)?;
    let name = check_name(input.name)?;
    let slug = check_slug(input.slug)?;
    let mapping = check_mapping(input.mapping)?;
    let secret = generate_secret();
    let source_id = store::new_id();
    let new = NewSource { source_id: &source_id, name: &name, slug: &slug, mapping: &mapping, secret: &secret };
    store::sources::insert(&ctx.db, new).await.map_err(|e| match AppError::from(e) {
        AppError::Conflict(_) => AppError::Conflict(format!("A source with the slug '{slug}' already exists.")),
        other => other,
    })?;
    tracing::info!(source = %slug, "Source created.");
    let row = row(ctx, &slug).await?;
    Ok(SourceWithSecret { source: row.to_source(), secret })
}

pub async fn list(ctx: &Ctx, actor: &Actor, cursor: Option<&str>, limit: Option<i64>) -> AppResult<Page<Source>> {
    actor.require(Role::Viewer)?;
    let limit = page_limit(limit);
    let rows = store::sources::list(&ctx.db, cursor, limit + 1).await?;
    Ok(paginate(rows, limit, |r| r.slug.clone(), |r| r.to_source()))
}

pub async fn get(ctx: &Ctx, actor: &Actor, slug: &str) -> AppResult<Source> {
    actor.require(Role::Viewer)?;
    Ok(row(ctx, slug).await?.to_source())
}

/// A partial change: absent fields stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SourcePatch {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub mapping: Option<Mapping>,
}

pub async fn update(ctx: &Ctx, actor: &Actor, slug: &str, patch: SourcePatch) -> AppResult<Source> {
    actor.require(Role::Editor)?;
    let current = row(ctx, slug).await?;
    let name = match &patch.name {
        Some(n) => check_name(n)?,
        None => current.name.clone(),
    };
    let mapping = match &patch.mapping {
        Some(m) => check_mapping(m)?,
        None => current.mapping.clone(),
    };
    let enabled = patch.enabled.unwrap_or(current.enabled != 0);
    store::sources::update(&ctx.db, &current.source_id, &name, enabled, &mapping).await?;
    ctx.sources.forget();
    Ok(row(ctx, slug).await?.to_source())
}

/// Issues a new secret; the old one keeps working for `grace_hours` (0: not at all).
pub async fn rotate_secret(
    ctx: &Ctx,
    actor: &Actor,
    slug: &str,
    grace_hours: Option<u32>,
) -> AppResult<SourceWithSecret> {
    actor.require(Role::Editor)?;
    let current = row(ctx, slug).await?;
    let grace = grace_hours.unwrap_or(DEFAULT_GRACE_HOURS).min(24 * 30);
    let secret = generate_secret();
    let until = store::now_ms() + i64::from(grace) * 3_600_000;
    store::sources::rotate_secret(&ctx.db, &current.source_id, &secret, until).await?;
    ctx.sources.forget();
    tracing::info!(source = %slug, grace_hours = grace, "Source secret rotated.");
    Ok(SourceWithSecret { source: row(ctx, slug).await?.to_source(), secret })
}

pub async fn delete(ctx: &Ctx, actor: &Actor, slug: &str) -> AppResult<()> {
    actor.require(Role::Editor)?;
    let current = row(ctx, slug).await?;
    store::sources::delete(&ctx.db, &current.source_id).await?;
    ctx.sources.forget();
    tracing::info!(source = %slug, "Source deleted.");
    Ok(())
}

/// A correctly signed sample request for a source, valid for five minutes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SignedExample {
    /// The path to post to: `/hooks/{slug}`.
    pub path: String,
    pub body: String,
    /// The `Nudge-Signature` header value for this body.
    pub signature: String,
}

pub async fn signed_example(ctx: &Ctx, actor: &Actor, slug: &str, now: i64) -> AppResult<SignedExample> {
    actor.require(Role::Editor)?;
    let source = row(ctx, slug).await?;
    let mapping = ingest::compiled_mapping(&source)?;
    let unique = store::new_id();
    let body = mapping.sample(&unique[unique.len() - 12..], now).to_string();
    let signature = signature::header_value(&source.secret, now.div_euclid(1000), body.as_bytes());
    Ok(SignedExample { path: format!("/hooks/{}", source.slug), body, signature })
}

/// Posts a sample event through the webhook's own code path, as a sender would.
pub async fn send_test_event(ctx: &Ctx, actor: &Actor, slug: &str, now: i64) -> AppResult<ingest::HookOutcome> {
    let example = signed_example(ctx, actor, slug, now).await?;
    let hook = ingest::Hook {
        slug,
        content_type: Some("application/json"),
        signature: Some(&example.signature),
        body: example.body.as_bytes(),
    };
    ingest::receive(ctx, hook, now).await
}
