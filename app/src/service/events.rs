//! Reading what was ingested: events, customers, dead letters; and replaying
//! dead letters once their source's mapping is fixed.

use super::{ingest, paginate, Actor, Ctx};
use crate::error::{AppError, AppResult};
use crate::model::{CustomerDetail, DeadLetter, Event, EventFilter, Page, Role};
use crate::store::{self, events::Written, page_limit};

/// Events newest first. `filter.source` is a source slug.
pub async fn list(
    ctx: &Ctx,
    actor: &Actor,
    filter: &EventFilter,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> AppResult<Page<Event>> {
    actor.require(Role::Viewer)?;
    let limit = page_limit(limit);
    let source_id = match filter.source.as_deref().filter(|s| !s.is_empty()) {
        Some(slug) => match store::sources::find_by_slug(&ctx.db, slug).await? {
            Some(s) => Some(s.source_id),
            None => return Ok(Page { items: Vec::new(), next_cursor: None }),
        },
        None => None,
    };
    let rows = store::events::list(&ctx.db, source_id.as_deref(), filter, cursor, limit + 1).await?;
    Ok(paginate(rows, limit, |r| r.event_id.clone(), |r| r.to_event()))
}

pub async fn get(ctx: &Ctx, actor: &Actor, event_id: &str) -> AppResult<Event> {
    actor.require(Role::Viewer)?;
    store::events::get(&ctx.db, event_id)
        .await?
        .map(|r| r.to_event())
        .ok_or_else(|| AppError::NotFound("No such event.".into()))
}

pub async fn customer(ctx: &Ctx, actor: &Actor, customer_id: &str) -> AppResult<CustomerDetail> {
    actor.require(Role::Viewer)?;
    let customer = store::events::customer(&ctx.db, customer_id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("No customer '{customer_id}'.")))?;
    let filter = crate::model::EventFilter { customer: Some(customer_id.to_string()), ..Default::default() };
    let events = store::events::list(&ctx.db, None, &filter, None, 100).await?;
    let now = store::now_ms();
    let query = store::runs::RunQuery { customer_id: Some(customer_id), ..Default::default() };
    let mut runs: Vec<crate::model::Run> =
        store::runs::list(&ctx.db, &query, None, 50).await?.iter().map(|r| r.to_run()).collect();
    super::runs::describe(ctx, &mut runs).await?;
    let offers = store::offers::list_offers(&ctx.db, None, Some(customer_id), None, None, 50, now).await?;
    let alerts = store::offers::list_alerts(&ctx.db, None, None, Some(customer_id), None, 50).await?;
    Ok(CustomerDetail {
        customer: customer.to_customer(),
        events: events.iter().map(|r| r.to_event()).collect(),
        runs,
        offers: offers.iter().map(|o| o.to_offer(now)).collect(),
        alerts: alerts.iter().map(|a| a.to_alert()).collect(),
    })
}

pub async fn dead_letters(
    ctx: &Ctx,
    actor: &Actor,
    source_slug: Option<&str>,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> AppResult<Page<DeadLetter>> {
    actor.require(Role::Viewer)?;
    let limit = page_limit(limit);
    let source_id = match source_slug.filter(|s| !s.is_empty()) {
        Some(slug) => match store::sources::find_by_slug(&ctx.db, slug).await? {
            Some(s) => Some(s.source_id),
            None => return Ok(Page { items: Vec::new(), next_cursor: None }),
        },
        None => None,
    };
    let rows = store::events::dead_letters(&ctx.db, source_id.as_deref(), cursor, limit + 1).await?;
    Ok(paginate(rows, limit, |r| r.dead_letter_id.clone(), |r| r.to_dead_letter()))
}

/// Maps a dead letter again with its source's current mapping and, if it now
/// maps, stores it as an event (once: a replayed letter cannot be replayed again).
pub async fn replay(ctx: &Ctx, actor: &Actor, dead_letter_id: &str, now: i64) -> AppResult<Event> {
    actor.require(Role::Editor)?;
    let letter = store::events::dead_letter(&ctx.db, dead_letter_id)
        .await?
        .ok_or_else(|| AppError::NotFound("No such dead letter.".into()))?;
    if let Some(event_id) = &letter.replayed_event_id {
        return Err(AppError::Conflict(format!("Already replayed as event {event_id}.")));
    }
    let source = store::sources::find_by_id(&ctx.db, &letter.source_id)
        .await?
        .ok_or_else(|| AppError::NotFound("The source of this dead letter was deleted.".into()))?;
    let mapping = ingest::compiled_mapping(&source)?;
    let payload = letter.to_dead_letter().payload;
    let (write, (_, reason)) = ingest::prepare(&source.source_id, &mapping, payload, now, Some(letter.dead_letter_id));
    if let Some(reason) = reason {
        return Err(AppError::Invalid {
            field: None,
            detail: format!("It still does not map: {reason}. Fix the source's mapping first."),
        });
    }
    match ctx.engine.submit(vec![write]).await?.pop() {
        Some(Written::Accepted { event_id }) => get(ctx, actor, &event_id).await,
        Some(Written::Duplicate { event_id }) => {
            Err(AppError::Conflict(format!("An event with the same sender id was already accepted ({event_id}).")))
        }
        _ => Err(AppError::Internal),
    }
}
