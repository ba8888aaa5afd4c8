//! The dashboards: the installation's (`/`) and one workflow's
//! (`/workflows/:id/dashboard`, with its funnel). Figures come from the
//! rollups; live `metrics` messages move the tiles, the chart and the lists
//! between fetches, so the page follows what happens without reloading.

use crate::components::chart::{Series, TimeChart};
use crate::components::live::{use_live, LiveBadge};
use crate::error::AppError;
use crate::model::{
    Figures, Funnel, MetricTick, MetricsSummary, Point, Ranked, SystemStatus, TimeSeries, OPEN_ALERTS_DELTA, RANGES,
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use std::collections::HashMap;

#[server]
pub async fn installation_status() -> Result<SystemStatus, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        crate::service::system_status(&ctx, &actor).await
    })
    .await
}

#[server]
pub async fn dashboard_summary(range: String, workflow: Option<String>) -> Result<MetricsSummary, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        let now = crate::store::now_ms();
        crate::service::metrics::summary(&ctx, &actor, &range, workflow.as_deref(), now).await
    })
    .await
}

#[server]
pub async fn dashboard_series(
    metrics: Vec<String>,
    range: String,
    workflow: Option<String>,
) -> Result<Vec<TimeSeries>, AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        let now = crate::store::now_ms();
        let mut out = Vec::with_capacity(metrics.len());
        for m in metrics.iter().take(4) {
            out.push(
                crate::service::metrics::timeseries(&ctx, &actor, m, &range, None, workflow.as_deref(), now).await?,
            );
        }
        Ok(out)
    })
    .await
}

#[server]
pub async fn workflow_funnel(workflow_id: String, range: String) -> Result<(String, Funnel), AppError> {
    crate::web::respond(async move {
        let ctx = crate::web::ctx()?;
        let actor = crate::web::actor().await?;
        let now = crate::store::now_ms();
        let name = crate::service::workflows::get(&ctx, &actor, &workflow_id).await?.summary.name;
        Ok((name, crate::service::metrics::funnel(&ctx, &actor, &workflow_id, None, &range, now).await?))
    })
    .await
}

/// Adds a tick's counts that happened at `at` to a series' buckets, moving
/// the window forward when `at` is past its last bucket.
pub fn extend_points(points: &mut Vec<Point>, step: i64, at: i64, n: i64) {
    let (Some(first), Some(last)) = (points.first().copied(), points.last().copied()) else { return };
    if at < first.t || step <= 0 {
        return;
    }
    let mut last_t = last.t;
    while at >= last_t + step {
        last_t += step;
        points.push(Point { t: last_t, v: 0 });
        points.remove(0);
    }
    let start = points[0].t;
    if let Some(p) = points.get_mut(((at - start) / step) as usize) {
        p.v += n;
    }
}

/// Counter increases seen live, kept for a while: each view adds those after
/// its figures were read (`at`), so a refetch never counts one twice.
#[derive(Debug, Clone, Default, PartialEq)]
struct Gains {
    /// (at, metric, key, n), this page's counts only (events: the installation's).
    ticks: Vec<(i64, String, String, i64)>,
}

/// Live counts older than this are dropped; the page refetches well before.
const KEEP_GAINS_MS: i64 = 15 * 60_000;
/// How often the page refetches its figures anyway (latency, lists).
#[cfg(feature = "hydrate")]
const REFETCH_MS: u64 = 5 * 60_000;

impl Gains {
    fn add(&mut self, tick: &MetricTick, workflow: &str) {
        for c in &tick.counts {
            let mine = if c.metric.starts_with("event") { c.workflow_id.is_empty() } else { c.workflow_id == workflow };
            if mine {
                self.ticks.push((tick.at, c.metric.clone(), c.key.clone(), c.n));
            }
        }
        self.ticks.retain(|t| t.0 > tick.at - KEEP_GAINS_MS);
    }

    /// The increase of an un-keyed metric after `since`.
    fn get(&self, metric: &str, since: i64) -> i64 {
        self.ticks.iter().filter(|t| t.0 > since && t.1 == metric && t.2.is_empty()).map(|t| t.3).sum()
    }

    /// Increases of a keyed metric after `since`, by key.
    fn keyed(&self, metric: &str, since: i64) -> HashMap<String, i64> {
        let mut out = HashMap::new();
        for t in self.ticks.iter().filter(|t| t.0 > since && t.1 == metric && !t.2.is_empty()) {
            *out.entry(t.2.clone()).or_default() += t.3;
        }
        out
    }

    fn figures(&self, base: &Figures, since: i64) -> Figures {
        let started = base.runs_started + self.get("runs_started", since);
        let converted = base.runs_converted + self.get("runs_converted", since);
        Figures {
            events: base.events + self.get("events", since),
            runs_started: started,
            runs_converted: converted,
            offers_issued: base.offers_issued + self.get("offers_issued", since),
            offers_redeemed: base.offers_redeemed + self.get("offers_redeemed", since),
            alerts_raised: base.alerts_raised + self.get("alerts_raised", since),
            conversion_rate: if started > 0 { converted as f64 / started as f64 } else { 0.0 },
            latency_p50_ms: base.latency_p50_ms,
            latency_p95_ms: base.latency_p95_ms,
        }
    }
}

fn merged(base: &[Ranked], gains: &HashMap<String, i64>, name_of: impl Fn(&str) -> String) -> Vec<Ranked> {
    let mut all: Vec<Ranked> = base.to_vec();
    for (id, n) in gains {
        match all.iter_mut().find(|r| &r.id == id) {
            Some(r) => r.count += n,
            None => all.push(Ranked { name: name_of(id), id: id.clone(), count: *n }),
        }
    }
    all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    all.truncate(8);
    all
}

/// "▲ 12 %", "▼ 3 %", "new" or "—" against the previous period.
fn change(now: f64, before: f64) -> (String, &'static str) {
    if before == 0.0 {
        return if now > 0.0 { ("new".into(), "up") } else { ("—".into(), "flat") };
    }
    let pct = (now - before) / before * 100.0;
    if pct.abs() < 0.5 {
        ("±0 %".into(), "flat")
    } else if pct > 0.0 {
        (format!("▲ {pct:.0} %"), "up")
    } else {
        (format!("▼ {:.0} %", -pct), "down")
    }
}

fn ms_text(ms: Option<f64>) -> String {
    match ms {
        None => "—".into(),
        Some(v) if v < 10.0 => format!("{v:.1} ms"),
        Some(v) if v < 1000.0 => format!("{v:.0} ms"),
        Some(v) => format!("{:.1} s", v / 1000.0),
    }
}

#[component]
fn Tile(
    label: &'static str,
    testid: &'static str,
    value: String,
    change: Option<(String, &'static str)>,
    #[prop(optional)] hint: &'static str,
) -> impl IntoView {
    view! {
        <div class=format!("kpi {testid}") data-testid=testid title=hint>
            <div class="kpi-label">{label}</div>
            <div class="kpi-value">{value}</div>
            {change.map(|(text, dir)| view! { <div class=format!("kpi-change {dir}")>{text}" vs previous"</div> })}
        </div>
    }
}

/// A chart's series: (metric, label, colour class).
type SeriesDef = (&'static str, &'static str, &'static str);

const TABS: [(&str, &[SeriesDef]); 4] = [
    ("Events", &[("events", "Events", "s-events")]),
    ("Runs", &[("runs_started", "Runs started", "s-runs"), ("runs_converted", "Converted", "s-converted")]),
    ("Offers", &[("offers_issued", "Offers issued", "s-offers"), ("offers_redeemed", "Redeemed", "s-redeemed")]),
    ("Alerts", &[("alerts_raised", "Alerts raised", "s-alerts")]),
];

/// The figures, chart and lists for the installation (`workflow: None`) or one workflow.
#[component]
pub fn Engagement(#[prop(into)] workflow: Signal<Option<String>>) -> impl IntoView {
    let range = RwSignal::new("24h".to_string());
    let tab = RwSignal::new(0usize);
    let refresh = RwSignal::new(0u64);
    let gains = RwSignal::new(Gains::default());
    let summary =
        Resource::new(move || (range.get(), workflow.get(), refresh.get()), |(r, w, _)| dashboard_summary(r, w));
    let series = Resource::new(
        move || (range.get(), workflow.get(), tab.get(), refresh.get()),
        |(r, w, t, _)| {
            let metrics = TABS[t.min(TABS.len() - 1)].1.iter().map(|(m, _, _)| m.to_string()).collect();
            dashboard_series(metrics, r, w)
        },
    );
    // Every few minutes the figures are read afresh (latency and lists included).
    #[cfg(feature = "hydrate")]
    {
        let handle =
            set_interval_with_handle(move || refresh.update(|n| *n += 1), std::time::Duration::from_millis(REFETCH_MS));
        on_cleanup(move || {
            if let Ok(h) = handle {
                h.clear();
            }
        });
    }
    let live = use_live(
        "metrics",
        move |text| {
            if let Ok(tick) = serde_json::from_str::<MetricTick>(&text) {
                let wf = workflow.get_untracked().unwrap_or_default();
                gains.update(|g| g.add(&tick, &wf));
            }
        },
        move || refresh.update(|n| *n += 1),
    );
    view! {
        <div class="range-picker" role="group" aria-label="Range">
            {RANGES.iter().map(|r| {
                let r = *r;
                view! {
                    <button class=move || if range.get() == r { "chip on" } else { "chip" }
                        data-testid=format!("range-{r}")
                        on:click=move |_| range.set(r.to_string())>{r}</button>
                }
            }).collect_view()}
            <LiveBadge status=live />
        </div>
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match summary.await {
                    Err(e) => view! { <p class="form-error">{e.to_string()}</p> }.into_any(),
                    Ok(s) => {
                        let since = s.at;
                        let base = StoredValue::new(s);
                        let figures = move || base.with_value(|s| gains.with(|g| g.figures(&s.current, since)));
                        let previous = base.with_value(|s| s.previous.clone());
                        let prev = StoredValue::new(previous);
                        let tile = move |label: &'static str, testid: &'static str, pick: fn(&Figures) -> f64, pct: bool| {
                            move || {
                                let now = pick(&figures());
                                let before = prev.with_value(pick);
                                let value = if pct { format!("{:.1} %", now * 100.0) } else { format!("{}", now as i64) };
                                view! { <Tile label testid value change=Some(change(now, before)) /> }
                            }
                        };
                        let open_alerts = move || {
                            base.with_value(|s| s.open_alerts)
                                + gains.with(|g| g.get("alerts_raised", since) + g.get(OPEN_ALERTS_DELTA, since))
                        };
                        let in_workflow = workflow.get_untracked().is_some();
                        view! {
                            <div class="kpis">
                                {tile("Events received", "kpi-events", |f| f.events as f64, false)}
                                {tile("Runs started", "kpi-runs", |f| f.runs_started as f64, false)}
                                {tile("Offers issued", "kpi-offers", |f| f.offers_issued as f64, false)}
                                {tile("Offers redeemed", "kpi-redeemed", |f| f.offers_redeemed as f64, false)}
                                {tile("Conversion rate", "kpi-conversion", |f| f.conversion_rate, true)}
                                {move || view! { <Tile label="Open alerts" testid="kpi-alerts" value=open_alerts().max(0).to_string() change=None /> }}
                                {move || {
                                    let f = figures();
                                    let p = prev.get_value();
                                    let value = format!("{} / {}", ms_text(f.latency_p50_ms), ms_text(f.latency_p95_ms));
                                    let change = match (f.latency_p50_ms, p.latency_p50_ms) {
                                        // Faster is better: the arrow says which way it went.
                                        (Some(n), Some(b)) if b > 0.0 => Some(change(n, b)),
                                        _ => None,
                                    };
                                    view! { <Tile label="Event → action p50 / p95" testid="kpi-latency" value change
                                        hint="From an event's arrival to the commit of the actions it caused" /> }
                                }}
                            </div>
                            <section class="card">
                                <div class="tabs" role="tablist">
                                    {TABS.iter().enumerate().map(|(i, (name, _))| view! {
                                        <button role="tab" class=move || if tab.get() == i { "tab on" } else { "tab" }
                                            data-testid=format!("chart-tab-{}", name.to_lowercase())
                                            on:click=move |_| tab.set(i)>{*name}</button>
                                    }).collect_view()}
                                </div>
                                <Transition fallback=|| view! { <div class="chart-placeholder"></div> }>
                                    {move || Suspend::new(async move {
                                        match series.await {
                                            Err(e) => view! { <p class="form-error">{e.to_string()}</p> }.into_any(),
                                            Ok(list) => {
                                                let step = list.first().map_or(60_000, |s| s.step_ms);
                                                let t = tab.get_untracked().min(TABS.len() - 1);
                                                let fetched = StoredValue::new(list);
                                                let drawn = Signal::derive(move || {
                                                    fetched.with_value(|list| {
                                                        list.iter().zip(TABS[t].1.iter()).map(|(s, (m, label, class))| {
                                                            let mut points = s.points.clone();
                                                            gains.with(|g| {
                                                                for (at, metric, key, n) in &g.ticks {
                                                                    if *at > s.at && metric == m && key.is_empty() {
                                                                        extend_points(&mut points, s.step_ms, *at, *n);
                                                                    }
                                                                }
                                                            });
                                                            Series { label: label.to_string(), class, points }
                                                        }).collect::<Vec<_>>()
                                                    })
                                                });
                                                view! { <div data-testid="chart"><TimeChart series=drawn step_ms=Signal::derive(move || step) /></div> }.into_any()
                                            }
                                        }
                                    })}
                                </Transition>
                            </section>
                            <div class="grid-3">
                                <section class="card">
                                    <h2>"Top events"</h2>
                                    {move || {
                                        let list = base.with_value(|s| gains.with(|g| merged(&s.top_events, &g.keyed("event_name", since), str::to_string)));
                                        ranked_list(list, "top-events", "No events in this range.")
                                    }}
                                </section>
                                <section class="card">
                                    <h2>"Top sources"</h2>
                                    {move || {
                                        let list = base.with_value(|s| gains.with(|g| merged(&s.top_sources, &g.keyed("event_source", since), str::to_string)));
                                        ranked_list(list, "top-sources", "No events in this range.")
                                    }}
                                </section>
                                <section class="card">
                                    <h2>"Offers by workflow"</h2>
                                    {base.with_value(|s| {
                                        if s.offers_by_workflow.is_empty() {
                                            view! { <p class="muted">"No offers in this range."</p> }.into_any()
                                        } else {
                                            view! {
                                                <table class="table" data-testid="offers-by-workflow">
                                                    <thead><tr><th>"Workflow"</th><th class="num">"Issued"</th><th class="num">"Redeemed"</th><th class="num">"Rate"</th></tr></thead>
                                                    <tbody>
                                                        {s.offers_by_workflow.iter().map(|o| {
                                                            let rate = if o.issued > 0 { format!("{:.0} %", o.redeemed as f64 / o.issued as f64 * 100.0) } else { "—".into() };
                                                            view! {
                                                                <tr>
                                                                    <td><a href=format!("/workflows/{}/dashboard", o.workflow_id)>{o.name.clone()}</a></td>
                                                                    <td class="num">{o.issued}</td>
                                                                    <td class="num">{o.redeemed}</td>
                                                                    <td class="num">{rate}</td>
                                                                </tr>
                                                            }
                                                        }).collect_view()}
                                                    </tbody>
                                                </table>
                                            }.into_any()
                                        }
                                    })}
                                </section>
                            </div>
                            {(!in_workflow && base.with_value(|s| s.current.events == 0 && s.previous.events == 0)).then(getting_started)}
                        }.into_any()
                    }
                }
            })}
        </Transition>
    }
}

fn ranked_list(list: Vec<Ranked>, testid: &'static str, empty: &'static str) -> AnyView {
    if list.is_empty() {
        return view! { <p class="muted">{empty}</p> }.into_any();
    }
    let top = list.first().map_or(1, |r| r.count.max(1));
    view! {
        <ul class="ranked" data-testid=testid>
            {list.into_iter().map(|r| {
                let width = r.count as f64 / top as f64 * 100.0;
                view! {
                    <li>
                        <span class="ranked-bar" style=format!("width: {width:.0}%")></span>
                        <span class="ranked-name">{r.name}</span>
                        <span class="ranked-count">{r.count}</span>
                    </li>
                }
            }).collect_view()}
        </ul>
    }
    .into_any()
}

fn getting_started() -> impl IntoView {
    view! {
        <section class="card" data-testid="getting-started">
            <h2>"Getting started"</h2>
            <ol class="steps">
                <li><strong>"Invite your team."</strong>" Add editors and viewers in "<a href="/settings">"Settings"</a>"."</li>
                <li><strong>"Connect a source."</strong>" Each shop or app posts signed events to its own webhook URL ("<a href="/sources">"Sources"</a>")."</li>
                <li><strong>"Draw a workflow."</strong>" Trigger, conditions, waits and actions, on a canvas ("<a href="/workflows">"Workflows"</a>")."</li>
                <li><strong>"Automate."</strong>" Everything in the UI is also in the REST API: create a key in Settings and read "
                    <a href="/api/openapi.json" rel="external">"the OpenAPI document"</a>"."</li>
            </ol>
        </section>
    }
}

#[component]
pub fn DashboardPage() -> impl IntoView {
    let status = Resource::new(|| (), |_| installation_status());
    view! {
        <Title text="Dashboard" />
        <h1>"Dashboard"</h1>
        <Engagement workflow=Signal::derive(|| None::<String>) />
        <section class="card">
            <h2>"This installation"</h2>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match status.await {
                        Ok(s) => view! {
                            <dl class="facts" data-testid="system-status">
                                <dt>"Version"</dt><dd>{s.version}</dd>
                                <dt>"Database"</dt><dd>{s.database}</dd>
                                <dt>"Users"</dt><dd>{s.users}</dd>
                                <dt>"Active API keys"</dt><dd>{s.api_keys}</dd>
                            </dl>
                        }.into_any(),
                        Err(e) => view! { <p class="form-error">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// One workflow's dashboard: its figures and its running version's funnel.
#[component]
pub fn WorkflowDashboardPage() -> impl IntoView {
    let params = use_params_map();
    let id = Signal::derive(move || params.with(|p| p.get("id").unwrap_or_default()));
    let range = RwSignal::new("24h".to_string());
    let tick = RwSignal::new(0u64);
    let funnel = Resource::new(move || (id.get(), range.get(), tick.get()), |(id, r, _)| workflow_funnel(id, r));
    // Funnel counts follow the workflow's live node counters (at most once a second).
    let _live = use_live(
        "metrics",
        move |text| {
            let wf = id.get_untracked();
            if serde_json::from_str::<MetricTick>(&text).is_ok_and(|t| t.counts.iter().any(|c| c.workflow_id == wf)) {
                tick.update(|n| *n += 1);
            }
        },
        move || tick.update(|n| *n += 1),
    );
    view! {
        <Title text="Workflow dashboard" />
        <p class="crumbs"><a href="/workflows">"Workflows"</a>" / "<a href=move || format!("/workflows/{}", id.get())>"Designer"</a></p>
        <Transition fallback=|| view! { <h1>"Workflow"</h1> }>
            {move || Suspend::new(async move {
                match funnel.await {
                    Ok((name, _)) => view! { <h1>{name}" — dashboard"</h1> }.into_any(),
                    Err(_) => view! { <h1>"Workflow dashboard"</h1> }.into_any(),
                }
            })}
        </Transition>
        <Engagement workflow=Signal::derive(move || Some(id.get())) />
        <section class="card">
            <h2>"Funnel"
                <select class="inline-select" data-testid="funnel-range" on:change=move |ev| range.set(event_target_value(&ev))>
                    {RANGES.iter().map(|r| view! { <option value=*r selected=*r == "24h">{*r}</option> }).collect_view()}
                </select>
            </h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match funnel.await {
                        Ok((_, f)) => funnel_view(f).into_any(),
                        Err(e) => view! { <p class="muted">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

fn funnel_view(f: Funnel) -> impl IntoView {
    let top = f.entered.max(1);
    view! {
        <p class="muted small">"Version "{f.version}" · "{f.entered}" entered · "{f.converted}" converted"
            {(f.entered > 0).then(|| format!(" ({:.1} %)", f.converted as f64 / f.entered as f64 * 100.0))}</p>
        <table class="table funnel" data-testid="funnel">
            <thead><tr><th>"Node"</th><th>"Kind"</th><th>"Entered"</th><th class="num">"Waiting"</th><th>"Left by"</th></tr></thead>
            <tbody>
                {f.steps.into_iter().map(|s| {
                    let width = s.entered as f64 / top as f64 * 100.0;
                    let dropped = top - s.entered;
                    view! {
                        <tr data-node=s.node.clone()>
                            <td><code>{s.node.clone()}</code></td>
                            <td>{s.kind.clone()}</td>
                            <td class="funnel-cell">
                                <span class="funnel-bar" style=format!("width: {width:.0}%")></span>
                                <span class="funnel-count">{s.entered}</span>
                                {(dropped > 0 && f.entered > 0).then(|| view! { <span class="muted small">" −"{dropped}</span> })}
                            </td>
                            <td class="num">{s.waiting}</td>
                            <td class="small">{s.exits.iter().map(|e| format!("{} {}", e.name.replace('_', " "), e.count)).collect::<Vec<_>>().join(" · ")}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_counts_land_in_their_bucket_and_move_the_window_forward() {
        let mut points: Vec<Point> = (0..3).map(|i| Point { t: i * 60, v: 1 }).collect();
        extend_points(&mut points, 60, 70, 2);
        assert_eq!(points.iter().map(|p| p.v).collect::<Vec<_>>(), [1, 3, 1]);
        // Past the last bucket: a new one opens and the oldest goes.
        extend_points(&mut points, 60, 185, 4);
        assert_eq!(points.iter().map(|p| (p.t, p.v)).collect::<Vec<_>>(), [(60, 3), (120, 1), (180, 4)]);
        // Before the window: ignored.
        extend_points(&mut points, 60, 10, 9);
        assert_eq!(points.iter().map(|p| p.v).sum::<i64>(), 8);
    }

    #[test]
    fn ticks_count_for_the_page_they_belong_to() {
        let tick = MetricTick {
            at: 0,
            counts: vec![
                crate::model::MetricCount { metric: "events".into(), workflow_id: "".into(), key: "".into(), n: 3 },
                crate::model::MetricCount {
                    metric: "runs_started".into(),
                    workflow_id: "".into(),
                    key: "".into(),
                    n: 2,
                },
                crate::model::MetricCount {
                    metric: "runs_started".into(),
                    workflow_id: "w1".into(),
                    key: "".into(),
                    n: 1,
                },
                crate::model::MetricCount {
                    metric: "event_name".into(),
                    workflow_id: "".into(),
                    key: "cart".into(),
                    n: 3,
                },
            ],
        };
        let mut all = Gains::default();
        all.add(&tick, "");
        assert_eq!((all.get("events", -1), all.get("runs_started", -1)), (3, 2));
        assert_eq!(all.keyed("event_name", -1).get("cart"), Some(&3));
        assert_eq!(all.get("events", 0), 0, "counted in figures read at or after the tick");
        let mut one = Gains::default();
        one.add(&tick, "w1");
        assert_eq!((one.get("events", -1), one.get("runs_started", -1)), (3, 1), "events are the installation's");
        assert_eq!(change(12.0, 10.0), ("▲ 20 %".to_string(), "up"));
        assert_eq!(change(0.0, 0.0).1, "flat");
    }
}
