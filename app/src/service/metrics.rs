//! The dashboards' figures, read from the rollups: a summary with the change
//! against the previous period, time series, and a workflow version's funnel.
//! Each is a handful of indexed reads whatever the number of events.

use super::{Actor, Ctx};
use crate::error::{AppError, AppResult};
use crate::model::{
    histogram_quantile, range_spec, Figures, Funnel, FunnelStep, MetricsSummary, Point, Ranked, Role, TimeSeries,
    WorkflowOffers, RANGES, SERIES_METRICS,
};
use crate::store::rollups::{self, metric, LATENCY_BOUNDS_MS};
use crate::workflow::funnel::NodeCounts;
use crate::workflow::Workflow;
use std::collections::{BTreeMap, HashMap};

fn spec(range: &str) -> AppResult<(i64, i64, i64)> {
    range_spec(range)
        .ok_or_else(|| AppError::invalid("range", format!("'{range}' is not one of {}.", RANGES.join(", "))))
}

/// `[from, to)` of the range ending now, aligned to its rollup rows.
fn window(range_ms: i64, row_step: i64, now: i64) -> (i64, i64) {
    let to = now - now.rem_euclid(row_step) + row_step;
    (to - range_ms, to)
}

async fn figures(ctx: &Ctx, workflow: &str, step: i64, from: i64, to: i64) -> AppResult<Figures> {
    let totals: HashMap<String, i64> = rollups::totals(&ctx.db, workflow, step, from, to).await?.into_iter().collect();
    let get = |m: &str| totals.get(m).copied().unwrap_or(0);
    // Keys are the buckets' indexes; parsed rather than each index formatted.
    let mut counts: Vec<i64> = vec![0; LATENCY_BOUNDS_MS.len()];
    for (key, n) in rollups::by_key(&ctx.db, metric::LATENCY, workflow, step, from, to).await? {
        if let Some(c) = key.parse::<usize>().ok().and_then(|i| counts.get_mut(i)) {
            *c += n;
        }
    }
    let started = get(metric::RUNS_STARTED);
    let converted = get(metric::RUNS_CONVERTED);
    Ok(Figures {
        events: get(metric::EVENTS),
        runs_started: started,
        runs_converted: converted,
        offers_issued: get(metric::OFFERS_ISSUED),
        offers_redeemed: get(metric::OFFERS_REDEEMED),
        alerts_raised: get(metric::ALERTS_RAISED),
        conversion_rate: if started > 0 { converted as f64 / started as f64 } else { 0.0 },
        latency_p50_ms: histogram_quantile(&counts, &LATENCY_BOUNDS_MS, 0.5),
        latency_p95_ms: histogram_quantile(&counts, &LATENCY_BOUNDS_MS, 0.95),
        latency_histogram: counts,
    })
}

fn top(mut rows: Vec<(String, i64)>, n: usize, name: impl Fn(&str) -> String) -> Vec<Ranked> {
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows.into_iter().take(n).map(|(id, count)| Ranked { name: name(&id), id, count }).collect()
}

/// The dashboard's figures for `range` (any role); `workflow` narrows them to one.
pub async fn summary(
    ctx: &Ctx,
    actor: &Actor,
    range: &str,
    workflow: Option<&str>,
    now: i64,
) -> AppResult<MetricsSummary> {
    actor.require(Role::Viewer)?;
    let (range_ms, step, _) = spec(range)?;
    let wf = workflow.unwrap_or("");
    let (from, to) = window(range_ms, step, now);
    let mut current = figures(ctx, wf, step, from, to).await?;
    let mut previous = figures(ctx, wf, step, from - range_ms, from).await?;
    if !wf.is_empty() {
        // Events are not a workflow's: show the installation's.
        current.events = figures(ctx, "", step, from, to).await?.events;
        previous.events = figures(ctx, "", step, from - range_ms, from).await?.events;
    }
    let names = rollups::workflow_names(&ctx.db).await?;
    let sources: BTreeMap<String, String> =
        crate::store::sources::list(&ctx.db, None, 10_000).await?.into_iter().map(|s| (s.source_id, s.name)).collect();
    let issued = rollups::by_workflow(&ctx.db, metric::OFFERS_ISSUED, step, from, to).await?;
    let redeemed: HashMap<String, i64> =
        rollups::by_workflow(&ctx.db, metric::OFFERS_REDEEMED, step, from, to).await?.into_iter().collect();
    let mut offers_by_workflow: Vec<WorkflowOffers> = issued
        .into_iter()
        .filter(|(w, _)| wf.is_empty() || w == wf)
        .map(|(workflow_id, issued)| WorkflowOffers {
            name: names.get(&workflow_id).cloned().unwrap_or_else(|| workflow_id.clone()),
            redeemed: redeemed.get(&workflow_id).copied().unwrap_or(0),
            workflow_id,
            issued,
        })
        .collect();
    offers_by_workflow.sort_by(|a, b| b.issued.cmp(&a.issued).then_with(|| a.name.cmp(&b.name)));
    Ok(MetricsSummary {
        range: range.to_string(),
        from,
        to,
        at: now,
        workflow_id: workflow.map(str::to_string),
        current,
        previous,
        open_alerts: rollups::open_alerts(&ctx.db, wf).await?,
        top_events: top(rollups::by_key(&ctx.db, metric::EVENT_NAME, "", step, from, to).await?, 8, str::to_string),
        top_sources: top(rollups::by_key(&ctx.db, metric::EVENT_SOURCE, "", step, from, to).await?, 8, |id| {
            sources.get(id).cloned().unwrap_or_else(|| id.to_string())
        }),
        offers_by_workflow,
        setup: rollups::setup(&ctx.db).await?,
        source_names: sources,
        workflow_names: names.into_iter().collect(),
    })
}

/// One counter over `range` in buckets of `step_ms` (default: the range's own), every bucket present.
pub async fn timeseries(
    ctx: &Ctx,
    actor: &Actor,
    name: &str,
    range: &str,
    step_ms: Option<i64>,
    workflow: Option<&str>,
    now: i64,
) -> AppResult<TimeSeries> {
    actor.require(Role::Viewer)?;
    if !SERIES_METRICS.contains(&name) {
        return Err(AppError::invalid("metric", format!("'{name}' is not one of {}.", SERIES_METRICS.join(", "))));
    }
    let (range_ms, row_step, default_step) = spec(range)?;
    let step = step_ms.unwrap_or(default_step);
    if step < row_step || step % row_step != 0 || range_ms / step > 1_500 {
        return Err(AppError::invalid(
            "step",
            format!("For {range} the step must be a multiple of {} s giving at most 1,500 points.", row_step / 1000),
        ));
    }
    let to = now - now.rem_euclid(step) + step;
    let from = to - range_ms;
    let from = from - from.rem_euclid(step);
    // Events are the installation's, whichever workflow's page asks.
    let workflow = if name == metric::EVENTS { "" } else { workflow.unwrap_or("") };
    let rows = rollups::series(&ctx.db, name, workflow, "", row_step, from, to).await?;
    let mut points: Vec<Point> = (0..(to - from) / step).map(|i| Point { t: from + i * step, v: 0 }).collect();
    for (bucket, v) in rows {
        let i = ((bucket - from) / step) as usize;
        if let Some(p) = points.get_mut(i) {
            p.v += v;
        }
    }
    Ok(TimeSeries { metric: name.to_string(), range: range.to_string(), step_ms: step, from, to, at: now, points })
}

/// A workflow version's funnel over `range` (any role): each node under the
/// output that leads to it, with runs entered, waiting there now, leaving by
/// each output, and ending there (see `workflow::funnel`).
pub async fn funnel(
    ctx: &Ctx,
    actor: &Actor,
    workflow_id: &str,
    version: Option<i64>,
    range: &str,
    now: i64,
) -> AppResult<Funnel> {
    actor.require(Role::Viewer)?;
    let (range_ms, step, _) = spec(range)?;
    let row = crate::store::workflows::find(&ctx.db, workflow_id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("No workflow '{workflow_id}'.")))?;
    let version = match version.or(row.active_version) {
        Some(v) => v,
        None => return Err(AppError::Conflict("The workflow has never been published.".into())),
    };
    let definition = crate::store::workflows::version(&ctx.db, workflow_id, version)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("No version {version} of this workflow.")))?;
    let workflow: Workflow = serde_json::from_str(&definition.definition).map_err(|_| AppError::Internal)?;
    let (from, to) = window(range_ms, step, now);
    let prefix = format!("{version}:");
    let entered: HashMap<String, i64> = rollups::by_key(&ctx.db, metric::NODE_ENTERED, workflow_id, step, from, to)
        .await?
        .into_iter()
        .filter_map(|(k, n)| k.strip_prefix(&prefix).map(|node| (node.to_string(), n)))
        .collect();
    let mut exits: HashMap<String, Vec<(String, i64)>> = HashMap::new();
    for (k, n) in rollups::by_key(&ctx.db, metric::NODE_EXIT, workflow_id, step, from, to).await? {
        if let Some((node, output)) = k.strip_prefix(&prefix).and_then(|rest| rest.split_once(':')) {
            exits.entry(node.to_string()).or_default().push((output.to_string(), n));
        }
    }
    let waiting: HashMap<String, i64> = rollups::waiting_at(&ctx.db, workflow_id, version).await?.into_iter().collect();
    let counts = |node: &str| NodeCounts {
        entered: entered.get(node).copied().unwrap_or(0),
        waiting: waiting.get(node).copied().unwrap_or(0),
        exits: exits.get(node).cloned().unwrap_or_default(),
    };
    let steps: Vec<FunnelStep> = crate::workflow::funnel::funnel(&workflow, counts)
        .into_iter()
        .map(|r| FunnelStep {
            node: r.node.id.clone(),
            kind: r.node.kind.label().to_string(),
            entered: r.counts.entered,
            waiting: r.counts.waiting,
            exits: top(r.counts.exits, usize::MAX, str::to_string),
            depth: r.depth,
            via_node: r.via.as_ref().map(|(n, _)| n.clone()),
            via_output: r.via.map(|(_, o)| o),
            branches: r.branches,
            converted: r.converted,
            left: r.left,
        })
        .collect();
    let first = steps.first().map_or(0, |s| s.entered);
    let converted: i64 = steps.iter().map(|s| s.converted).sum();
    Ok(Funnel {
        workflow_id: workflow_id.to_string(),
        version,
        range: range.to_string(),
        entered: first,
        converted,
        steps,
    })
}
