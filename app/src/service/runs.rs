//! Runs, offers and alerts as the API and the pages read them; redeeming an
//! offer (once), working an alert (open → acknowledged → resolved) and
//! retrying a failed webhook.

use super::{paginate, Actor, Ctx};
use crate::error::{AppError, AppResult};
use crate::model::{Alert, Offer, Page, Role, Run, RunAction, RunDetail};
use crate::store::runs::{ActionsFilter, RunQuery};
use crate::store::{self, page_limit};
use crate::workflow::eval::RunStatus;
use crate::workflow::status::{ActionStatus, AlertStatus, WEBHOOK_KIND};
use std::collections::HashMap;

/// The core's run status a filter names; `running` is an alias of `waiting`:
/// a run is evaluated in the commit of its input, so between steps every
/// unfinished run waits.
fn run_status(name: &str) -> AppResult<RunStatus> {
    let name = if name == "running" { "waiting" } else { name };
    name.parse::<RunStatus>().map_err(|e| AppError::invalid("status", format!("{e} (or running).")))
}

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
    /// `failing` (a webhook failed, for good or for now) or `pending` (a webhook not delivered yet).
    #[serde(default)]
    pub actions: Option<String>,
}

pub async fn list_runs(
    ctx: &Ctx,
    actor: &Actor,
    filter: &RunFilter,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> AppResult<Page<Run>> {
    actor.require(Role::Viewer)?;
    let status = filter.status.as_deref().map(run_status).transpose()?.map(RunStatus::as_str);
    check_choice("actions", filter.actions.as_deref(), &ActionsFilter::NAMES)?;
    let limit = page_limit(limit);
    let query = RunQuery {
        workflow_id: filter.workflow.as_deref(),
        status,
        customer_id: filter.customer.as_deref(),
        actions: filter.actions.as_deref().and_then(ActionsFilter::parse),
    };
    let rows = store::runs::list(&ctx.db, &query, cursor, limit + 1).await?;
    let mut page = paginate(rows, limit, |r| r.run_id.clone(), |r| r.to_run());
    describe(ctx, &mut page.items).await?;
    Ok(page)
}

/// Fills in what a run's row does not hold: its workflow's name, what it
/// waits for (from the node of the version it is pinned to) and the health
/// of its webhooks. A few queries for a whole list, none per run.
pub async fn describe(ctx: &Ctx, runs: &mut [Run]) -> AppResult<()> {
    if runs.is_empty() {
        return Ok(());
    }
    let mut workflow_ids: Vec<String> = runs.iter().map(|r| r.workflow_id.clone()).collect();
    workflow_ids.sort_unstable();
    workflow_ids.dedup();
    let names = store::runs::workflow_names(&ctx.db, &workflow_ids).await?;
    let run_ids: Vec<String> = runs.iter().map(|r| r.run_id.clone()).collect();
    let health = store::runs::action_health(&ctx.db, &run_ids).await?;
    let mut versions: HashMap<(String, i64), Option<crate::workflow::Workflow>> = HashMap::new();
    for r in runs.iter_mut() {
        r.workflow_name = names.get(&r.workflow_id).cloned();
        r.action_health = health.get(&r.run_id).copied().unwrap_or_default();
        r.waiting_for = None;
        let Some(node) = r.at_node.as_deref().filter(|_| r.status == crate::workflow::eval::RunStatus::Waiting) else {
            continue;
        };
        let key = (r.workflow_id.clone(), r.version);
        if !versions.contains_key(&key) {
            let definition = store::runs::version_definition(&ctx.db, &key.0, key.1).await?;
            // A version that no longer reads leaves the node's id: still true, only plainer.
            versions.insert(key.clone(), definition.and_then(|d| serde_json::from_str(&d).ok()));
        }
        let workflow = versions.get(&key).and_then(Option::as_ref);
        r.waiting_for = Some(crate::workflow::describe::waiting_at(workflow, node));
    }
    Ok(())
}

/// The latest runs of a workflow that passed one node (the live canvas's node click).
pub async fn recent_at_node(ctx: &Ctx, actor: &Actor, workflow_id: &str, node: &str) -> AppResult<Vec<Run>> {
    actor.require(Role::Viewer)?;
    let mut runs: Vec<Run> =
        store::runs::recent_at_node(&ctx.db, workflow_id, node, 10).await?.iter().map(|r| r.to_run()).collect();
    describe(ctx, &mut runs).await?;
    Ok(runs)
}

pub async fn get_run(ctx: &Ctx, actor: &Actor, run_id: &str) -> AppResult<RunDetail> {
    actor.require(Role::Viewer)?;
    let row =
        store::runs::get(&ctx.db, run_id).await?.ok_or_else(|| AppError::NotFound(format!("No run '{run_id}'.")))?;
    let mut run = [row.to_run()];
    describe(ctx, &mut run).await?;
    let [run] = run;
    Ok(RunDetail {
        run,
        steps: store::runs::steps(&ctx.db, run_id).await?,
        actions: store::runs::actions(&ctx.db, run_id).await?,
    })
}

/// Tells live subscribers how a run now stands (its action health changed:
/// a webhook was delivered, failed, or is retried).
pub async fn announce(ctx: &Ctx, run_id: &str) -> AppResult<()> {
    if !ctx.live.wanted() {
        return Ok(());
    }
    let Some(row) = store::runs::get(&ctx.db, run_id).await? else { return Ok(()) };
    let mut run = [row.to_run()];
    describe(ctx, &mut run).await?;
    let [run] = run;
    ctx.live.publish("runs", &run);
    Ok(())
}

/// Puts a failed webhook back in the delivery queue (editor): due now, with
/// a new round of attempts and the same idempotency key, so a receiver that
/// did get an earlier attempt can tell it is the same call.
pub async fn retry_action(ctx: &Ctx, actor: &Actor, action_key: &str, now: i64) -> AppResult<RunAction> {
    actor.require(Role::Editor)?;
    let row = store::runs::action(&ctx.db, action_key)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("No action '{action_key}'.")))?;
    if row.kind != WEBHOOK_KIND {
        return Err(AppError::Conflict(format!(
            "Only webhook calls are delivered and can be retried; this action is {} and was done in its run's step.",
            row.kind.replace('_', " ")
        )));
    }
    let refused = |status: ActionStatus| {
        AppError::Conflict(match status {
            ActionStatus::Pending => "The webhook is still being delivered; only a failed one can be retried.".into(),
            ActionStatus::Done => "The webhook was delivered; only a failed one can be retried.".into(),
            ActionStatus::Failed => "The webhook changed meanwhile; reload and try again.".into(),
        })
    };
    if row.status() != ActionStatus::Failed {
        return Err(refused(row.status()));
    }
    if !store::runs::retry_action(&ctx.db, action_key, now).await? {
        let latest = store::runs::action(&ctx.db, action_key).await?.map_or(ActionStatus::Failed, |r| r.status());
        return Err(refused(latest));
    }
    ctx.signals.deliveries_due();
    tracing::info!(action = %action_key, by = %actor.me().name, "Failed webhook queued again.");
    announce(ctx, &row.run_id).await?;
    let retried = store::runs::action(&ctx.db, action_key).await?.ok_or(AppError::Internal)?;
    Ok(retried.to_action())
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
/// The engine decides and converts the run waiting for the code in the same
/// commit.
pub async fn redeem_offer(ctx: &Ctx, actor: &Actor, code: &str, now: i64) -> AppResult<Offer> {
    actor.require(Role::Editor)?;
    ctx.engine.redeem(code, &actor.me().name).await?;
    let redeemed = store::offers::offer(&ctx.db, code).await?.ok_or(AppError::Internal)?;
    Ok(redeemed.to_offer(now.max(redeemed.redeemed_at.unwrap_or(now))))
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
    if let Some(s) = filter.status.as_deref() {
        s.parse::<AlertStatus>().map_err(|e| AppError::invalid("status", format!("{e}.")))?;
    }
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
    if before.status == AlertStatus::Open.as_str() {
        count_closed(ctx, &before.workflow_id);
    }
    Ok(alert)
}
