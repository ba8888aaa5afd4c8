//! Runs, offers and alerts as the API and the pages read them; redeeming an
//! offer (once) and working an alert (open → acknowledged → resolved).

use super::{paginate, Actor, Ctx};
use crate::error::{AppError, AppResult};
use crate::model::{Alert, Offer, Page, Role, Run, RunDetail};
use crate::pages::settings::format_ms;
use crate::store::{self, page_limit};

/// `running` is an alias of `waiting`: a run is evaluated within
/// milliseconds of its input, so between steps every unfinished run waits.
const RUN_STATUSES: [&str; 5] = ["running", "waiting", "completed", "converted", "failed"];

fn check_choice(field: &str, value: Option<&str>, allowed: &[&str]) -> AppResult<()> {
    match value {
        Some(v) if !allowed.contains(&v) => {
            Err(AppError::invalid(field, format!("'{v}' is not one of {}.", allowed.join(", "))))
        }
        _ => Ok(()),
    }
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RunFilter {
    pub workflow: Option<String>,
    pub status: Option<String>,
    pub customer: Option<String>,
}

pub async fn list_runs(
    ctx: &Ctx,
    actor: &Actor,
    filter: &RunFilter,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> AppResult<Page<Run>> {
    actor.require(Role::Viewer)?;
    check_choice("status", filter.status.as_deref(), &RUN_STATUSES)?;
    let limit = page_limit(limit);
    let status = filter.status.as_deref().map(|s| if s == "running" { "waiting" } else { s });
    let rows =
        store::runs::list(&ctx.db, filter.workflow.as_deref(), status, filter.customer.as_deref(), cursor, limit + 1)
            .await?;
    Ok(paginate(rows, limit, |r| r.run_id.clone(), |r| r.to_run()))
}

/// The latest runs of a workflow that passed one node (the live canvas's node click).
pub async fn recent_at_node(ctx: &Ctx, actor: &Actor, workflow_id: &str, node: &str) -> AppResult<Vec<Run>> {
    actor.require(Role::Viewer)?;
    Ok(store::runs::recent_at_node(&ctx.db, workflow_id, node, 10).await?.iter().map(|r| r.to_run()).collect())
}

pub async fn get_run(ctx: &Ctx, actor: &Actor, run_id: &str) -> AppResult<RunDetail> {
    actor.require(Role::Viewer)?;
    let row =
        store::runs::get(&ctx.db, run_id).await?.ok_or_else(|| AppError::NotFound(format!("No run '{run_id}'.")))?;
    Ok(RunDetail {
        run: row.to_run(),
        steps: store::runs::steps(&ctx.db, run_id).await?,
        actions: store::runs::actions(&ctx.db, run_id).await?,
    })
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct OfferFilter {
    pub status: Option<String>,
    pub customer: Option<String>,
    pub workflow: Option<String>,
}

pub async fn list_offers(
    ctx: &Ctx,
    actor: &Actor,
    filter: &OfferFilter,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> AppResult<Page<Offer>> {
    actor.require(Role::Viewer)?;
    check_choice("status", filter.status.as_deref(), &["active", "redeemed", "expired"])?;
    let limit = page_limit(limit);
    let now = store::now_ms();
    // The cursor is the last row's `<created_at>_<code>`, the listing's order.
    let after = match cursor.filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => {
            let parsed = c.split_once('_').and_then(|(at, code)| Some((at.parse::<i64>().ok()?, code)));
            Some(parsed.ok_or_else(|| AppError::invalid("cursor", format!("'{c}' is not a cursor from this list.")))?)
        }
    };
    let rows = store::offers::list_offers(
        &ctx.db,
        filter.status.as_deref(),
        filter.customer.as_deref(),
        filter.workflow.as_deref(),
        after,
        limit + 1,
        now,
    )
    .await?;
    Ok(paginate(rows, limit, |r| format!("{}_{}", r.created_at, r.code), |r| r.to_offer(now)))
}

pub async fn get_offer(ctx: &Ctx, actor: &Actor, code: &str) -> AppResult<Offer> {
    actor.require(Role::Viewer)?;
    let row =
        store::offers::offer(&ctx.db, code).await?.ok_or_else(|| AppError::NotFound(format!("No offer '{code}'.")))?;
    Ok(row.to_offer(store::now_ms()))
}

/// Redeems a code once; an expired or used code is refused with the reason.
pub async fn redeem_offer(ctx: &Ctx, actor: &Actor, code: &str, now: i64) -> AppResult<Offer> {
    actor.require(Role::Editor)?;
    let row =
        store::offers::offer(&ctx.db, code).await?.ok_or_else(|| AppError::NotFound(format!("No offer '{code}'.")))?;
    if !store::offers::redeem(&ctx.db, &row, &actor.me().name, now).await? {
        let latest = store::offers::offer(&ctx.db, &row.code).await?.unwrap_or(row);
        return Err(match latest.redeemed_at {
            Some(at) => AppError::Conflict(format!(
                "{} was already redeemed on {} by {}.",
                latest.code,
                format_ms(at),
                latest.redeemed_by.unwrap_or_default()
            )),
            None => AppError::Conflict(format!("{} expired on {}.", latest.code, format_ms(latest.expires_at))),
        });
    }
    // The executor converts the run waiting for this code.
    ctx.signals.work.notify_one();
    let redeemed = store::rollups::metric::OFFERS_REDEEMED;
    ctx.live.count([(redeemed, "", "", 1), (redeemed, row.workflow_id.as_str(), "", 1)]);
    tracing::info!(code = %row.code, customer = %row.customer_id, "Offer redeemed.");
    let redeemed = store::offers::offer(&ctx.db, &row.code).await?.ok_or(AppError::Internal)?.to_offer(now);
    ctx.live.publish("offers", &redeemed);
    Ok(redeemed)
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct AlertFilter {
    pub status: Option<String>,
    pub severity: Option<String>,
    pub customer: Option<String>,
}

pub async fn list_alerts(
    ctx: &Ctx,
    actor: &Actor,
    filter: &AlertFilter,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> AppResult<Page<Alert>> {
    actor.require(Role::Viewer)?;
    check_choice("status", filter.status.as_deref(), &["open", "acknowledged", "resolved"])?;
    check_choice("severity", filter.severity.as_deref(), &["info", "warning", "critical"])?;
    let limit = page_limit(limit);
    let rows = store::offers::list_alerts(
        &ctx.db,
        filter.status.as_deref(),
        filter.severity.as_deref(),
        filter.customer.as_deref(),
        cursor,
        limit + 1,
    )
    .await?;
    Ok(paginate(rows, limit, |r| r.alert_id.clone(), |r| r.to_alert()))
}

/// Tells live dashboards that an open alert was worked (their count of open ones drops).
fn count_closed(ctx: &Ctx, workflow_id: &str) {
    let m = crate::model::OPEN_ALERTS_DELTA;
    ctx.live.count([(m, "", "", -1), (m, workflow_id, "", -1)]);
}

async fn alert_row(ctx: &Ctx, alert_id: &str) -> AppResult<store::offers::AlertRow> {
    store::offers::alert(&ctx.db, alert_id).await?.ok_or_else(|| AppError::NotFound(format!("No alert '{alert_id}'.")))
}

pub async fn acknowledge_alert(ctx: &Ctx, actor: &Actor, alert_id: &str) -> AppResult<Alert> {
    actor.require(Role::Editor)?;
    let row = alert_row(ctx, alert_id).await?;
    if !store::offers::acknowledge(&ctx.db, alert_id, &actor.me().name).await? {
        return Err(AppError::Conflict(format!("The alert is {}; only open alerts can be acknowledged.", row.status)));
    }
    let alert = alert_row(ctx, alert_id).await?.to_alert();
    ctx.live.publish("alerts", &alert);
    count_closed(ctx, &row.workflow_id);
    Ok(alert)
}

pub async fn resolve_alert(ctx: &Ctx, actor: &Actor, alert_id: &str) -> AppResult<Alert> {
    actor.require(Role::Editor)?;
    let before = alert_row(ctx, alert_id).await?;
    if !store::offers::resolve(&ctx.db, alert_id, &actor.me().name).await? {
        return Err(AppError::Conflict("The alert is resolved already.".into()));
    }
    let alert = alert_row(ctx, alert_id).await?.to_alert();
    ctx.live.publish("alerts", &alert);
    if before.status == "open" {
        count_closed(ctx, &before.workflow_id);
    }
    Ok(alert)
}
