//! The dashboards: the installation's (`/`) and one workflow's
//! (`/workflows/:id/dashboard`, with its funnel). Figures come from the
//! rollups; live `metrics` messages move the tiles, the chart and the lists
//! between fetches, so the page follows what happens without reloading.

use crate::components::chart::{Series, TimeChart};
use crate::components::live::{use_live, LiveBadge};
use crate::error::AppError;
use crate::model::{
    histogram_quantile, Figures, Funnel, MetricTick, MetricsSummary, Point, Ranked, Setup, SystemStatus, TimeSeries,
    WorkflowOffers, LATENCY_BOUNDS_MS, OPEN_ALERTS_DELTA, RANGES,
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

/// One counter increase seen live.
#[derive(Debug, Clone, PartialEq)]
struct Gain {
    at: i64,
    metric: String,
    /// Empty for the page's own figures; on the installation's dashboard a
    /// workflow's id for its share (offers by workflow).
    workflow: String,
    key: String,
    n: i64,
}

/// Counter increases seen live, kept for a while: each view adds those after
/// its figures were read (`at`), so a refetch never counts one twice.
#[derive(Debug, Clone, Default, PartialEq)]
struct Gains {
    /// This page's counts (events: the installation's), and on the
    /// installation's dashboard each workflow's un-keyed ones.
    ticks: Vec<Gain>,
}

/// Live counts older than this are dropped; the page refetches well before.
const KEEP_GAINS_MS: i64 = 15 * 60_000;
/// How often the page refetches its figures anyway (lists, names).
#[cfg(feature = "hydrate")]
const REFETCH_MS: u64 = 5 * 60_000;

impl Gains {
    fn add(&mut self, tick: &MetricTick, workflow: &str) {
        for c in &tick.counts {
            let mine = if c.metric.starts_with("event") { c.workflow_id.is_empty() } else { c.workflow_id == workflow };
            let share = workflow.is_empty() && !c.workflow_id.is_empty() && c.key.is_empty();
            if mine || share {
                self.ticks.push(Gain {
                    at: tick.at,
                    metric: c.metric.clone(),
                    workflow: if mine { String::new() } else { c.workflow_id.clone() },
                    key: c.key.clone(),
                    n: c.n,
                });
            }
        }
        self.ticks.retain(|t| t.at > tick.at - KEEP_GAINS_MS);
    }

    fn mine<'a>(&'a self, metric: &'a str, since: i64) -> impl Iterator<Item = &'a Gain> + 'a {
        self.ticks.iter().filter(move |t| t.at > since && t.metric == metric && t.workflow.is_empty())
    }

    /// The increase of an un-keyed metric after `since`.
    fn get(&self, metric: &str, since: i64) -> i64 {
        self.mine(metric, since).filter(|t| t.key.is_empty()).map(|t| t.n).sum()
    }

    /// Increases of a keyed metric after `since`, by key.
    fn keyed(&self, metric: &str, since: i64) -> HashMap<String, i64> {
        let mut out = HashMap::new();
        for t in self.mine(metric, since).filter(|t| !t.key.is_empty()) {
            *out.entry(t.key.clone()).or_default() += t.n;
        }
        out
    }

    /// Increases of an un-keyed metric after `since` by workflow: the page's
    /// own on a workflow's dashboard, every workflow's on the installation's.
    fn by_workflow(&self, metric: &str, since: i64, page: &str) -> HashMap<String, i64> {
        let mut out = HashMap::new();
        for t in self.ticks.iter().filter(|t| t.at > since && t.metric == metric && t.key.is_empty()) {
            match (page.is_empty(), t.workflow.is_empty()) {
                (true, false) => *out.entry(t.workflow.clone()).or_default() += t.n,
                (false, true) => *out.entry(page.to_string()).or_default() += t.n,
                _ => {}
            }
        }
        out
    }

    fn figures(&self, base: &Figures, since: i64) -> Figures {
        let started = base.runs_started + self.get("runs_started", since);
        let converted = base.runs_converted + self.get("runs_converted", since);
        // The latency histogram plus its live buckets gives live quantiles.
        let gained = self.keyed("latency", since);
        let mut histogram = base.latency_histogram.clone();
        if !gained.is_empty() {
            histogram.resize(LATENCY_BOUNDS_MS.len(), 0);
        }
        for (bucket, n) in gained {
            if let Some(c) = bucket.parse::<usize>().ok().and_then(|i| histogram.get_mut(i)) {
                *c += n;
            }
        }
        let quantile = |q: f64| histogram_quantile(&histogram, &LATENCY_BOUNDS_MS, q);
        let live = histogram != base.latency_histogram;
        Figures {
            events: base.events + self.get("events", since),
            runs_started: started,
            runs_converted: converted,
            offers_issued: base.offers_issued + self.get("offers_issued", since),
            offers_redeemed: base.offers_redeemed + self.get("offers_redeemed", since),
            alerts_raised: base.alerts_raised + self.get("alerts_raised", since),
            conversion_rate: if started > 0 { converted as f64 / started as f64 } else { 0.0 },
            latency_p50_ms: if live { quantile(0.5) } else { base.latency_p50_ms },
            latency_p95_ms: if live { quantile(0.95) } else { base.latency_p95_ms },
            latency_histogram: histogram,
        }
    }

    /// Offers by workflow with the live ones added; a workflow that issued
    /// its first offer in the range since joins the list under its name.
    fn offers(&self, s: &MetricsSummary, page: &str) -> Vec<WorkflowOffers> {
        let mut all = s.offers_by_workflow.clone();
        for (id, n) in self.by_workflow("offers_issued", s.at, page) {
            match all.iter_mut().find(|o| o.workflow_id == id) {
                Some(o) => o.issued += n,
                None => all.push(WorkflowOffers {
                    name: s.workflow_names.get(&id).cloned().unwrap_or_else(|| id.clone()),
                    workflow_id: id,
                    issued: n,
                    redeemed: 0,
                }),
            }
        }
        for (id, n) in self.by_workflow("offers_redeemed", s.at, page) {
            if let Some(o) = all.iter_mut().find(|o| o.workflow_id == id) {
                o.redeemed += n;
            }
        }
        all.sort_by(|a, b| b.issued.cmp(&a.issued).then_with(|| a.name.cmp(&b.name)));
        all
    }

    /// What is set up, counting what happened since: an event came through
    /// a source, and a run started only from a published workflow.
    fn setup(&self, base: Setup, since: i64) -> Setup {
        let events = self.get("events", since) > 0;
        Setup {
            source: base.source || events,
            workflow: base.workflow || self.get("runs_started", since) > 0,
            events: base.events || events,
        }
    }

    /// Ids in a tick that the page has no name for: sources, and on the
    /// installation's dashboard workflows (a refetch brings their names).
    fn unnamed(tick: &MetricTick, s: &MetricsSummary) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in &tick.counts {
            let id = if c.metric == "event_source" {
                &c.key
            } else if c.metric == "offers_issued" && s.workflow_id.is_none() {
                &c.workflow_id
            } else {
                continue;
            };
            let known = s.source_names.contains_key(id) || s.workflow_names.contains_key(id);
            if !id.is_empty() && !known && !out.contains(id) {
                out.push(id.clone());
            }
        }
        out
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
    /// A second figure under the value, smaller (the latency's p95).
    #[prop(default = None)]
    detail: Option<String>,
) -> impl IntoView {
    view! {
        <div class=format!("kpi {testid}") data-testid=testid title=hint>
            <div class="kpi-label">{label}</div>
            <div class="kpi-value">{value}</div>
            {detail.map(|d| view! { <div class="kpi-detail">{d}</div> })}
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
    // Ids already refetched for, so a name that stays unknown (a deleted
    // source) does not refetch on every tick.
    let asked = StoredValue::new(Vec::<String>::new());
    let live = use_live(
        "metrics",
        move |text| {
            if let Ok(tick) = serde_json::from_str::<MetricTick>(&text) {
                let wf = workflow.get_untracked().unwrap_or_default();
                gains.update(|g| g.add(&tick, &wf));
                // A source or workflow newer than the figures: its name comes with a refetch.
                if let Some(Ok(s)) = summary.get_untracked() {
                    let new: Vec<String> = Gains::unnamed(&tick, &s)
                        .into_iter()
                        .filter(|id| !asked.with_value(|a| a.contains(id)))
                        .collect();
                    if !new.is_empty() {
                        asked.update_value(|a| a.extend(new));
                        refresh.update(|n| *n += 1);
                    }
                }
            }
        },
        move || refresh.update(|n| *n += 1),
    );
    // While the first steps are not all done, coming back to the tab (from
    // creating a source or publishing a workflow in another) reads them again.
    #[cfg(feature = "hydrate")]
    {
        let handle = window_event_listener(leptos::ev::focus, move |_| {
            let unfinished = workflow.get_untracked().is_none()
                && matches!(summary.get_untracked(), Some(Ok(s)) if !gains.with_untracked(|g| g.setup(s.setup, s.at)).done());
            if unfinished {
                refresh.update(|n| *n += 1);
            }
        });
        on_cleanup(move || handle.remove());
    }
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
                        let page = workflow.get_untracked().unwrap_or_default();
                        let in_workflow = !page.is_empty();
                        let setup = move || base.with_value(|s| gains.with(|g| g.setup(s.setup, since)));
                        view! {
                            {move || (!in_workflow && !setup().done()).then(|| getting_started(setup()))}
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
                                    let value = ms_text(f.latency_p50_ms);
                                    let detail = f.latency_p95_ms.map(|v| format!("p95 {}", ms_text(Some(v))));
                                    let change = match (f.latency_p50_ms, p.latency_p50_ms) {
                                        // Faster is better: the arrow says which way it went.
                                        (Some(n), Some(b)) if b > 0.0 => Some(change(n, b)),
                                        _ => None,
                                    };
                                    view! { <Tile label="Event → action, median" testid="kpi-latency" value change detail
                                        hint="From an event's arrival to the commit of the actions it caused: the median, and the 95th percentile below it" /> }
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
                                                                for t in g.mine(m, s.at).filter(|t| t.key.is_empty()) {
                                                                    extend_points(&mut points, s.step_ms, t.at, t.n);
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
                                        let list = base.with_value(|s| gains.with(|g| {
                                            let name = |id: &str| s.source_names.get(id).cloned().unwrap_or_else(|| id.to_string());
                                            merged(&s.top_sources, &g.keyed("event_source", since), name)
                                        }));
                                        ranked_list(list, "top-sources", "No events in this range.")
                                    }}
                                </section>
                                <section class="card">
                                    <h2>"Offers by workflow"</h2>
                                    {move || base.with_value(|s| {
                                        let offers = gains.with(|g| g.offers(s, &page));
                                        if offers.is_empty() {
                                            view! { <p class="muted">"No offers in this range."</p> }.into_any()
                                        } else {
                                            view! {
                                                <table class="table" data-testid="offers-by-workflow">
                                                    <thead><tr><th>"Workflow"</th><th class="num">"Issued"</th><th class="num">"Redeemed"</th><th class="num">"Rate"</th></tr></thead>
                                                    <tbody>
                                                        {offers.iter().map(|o| {
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

/// The first steps, until each is done: shown on the installation's
/// dashboard while a source, a published workflow or an event is missing.
fn getting_started(setup: Setup) -> impl IntoView {
    let done = [setup.source, setup.workflow, setup.events].iter().filter(|d| **d).count();
    let check = |done: bool| done.then(|| view! { <span class="step-done" title="Done">"✓ "</span> });
    view! {
        <section class="card" data-testid="getting-started">
            <h2>"Getting started "<span class="muted small" data-testid="setup-progress">{format!("{done} of 3 done")}</span></h2>
            <ol class="steps">
                <li class:done=setup.source data-testid="setup-source">{check(setup.source)}<strong>"Connect a source."</strong>
                    " Each shop or app posts signed events to its own webhook URL ("<a href="/sources">"Sources"</a>")."</li>
                <li class:done=setup.workflow data-testid="setup-workflow">{check(setup.workflow)}<strong>"Publish a workflow."</strong>
                    " Trigger, conditions, waits and actions, on a canvas; start from a template ("<a href="/workflows">"Workflows"</a>")."</li>
                <li class:done=setup.events data-testid="setup-events">{check(setup.events)}<strong>"Send a first event."</strong>
                    " A source's page has a signed example to paste into a terminal; this card goes once it arrives."</li>
            </ol>
            <p class="muted small">"Then invite your team in "<a href="/settings">"Settings"</a>
                ", and automate: everything in the UI is in the REST API ("<a href="/api/openapi.json" rel="external">"the OpenAPI document"</a>")."</p>
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

/// An output's name for people: `timed out`, `yes`, a split's label, `next`.
fn output_text(port: &str) -> String {
    crate::components::canvas::port_label(port).unwrap_or_else(|| port.to_string())
}

/// The funnel as branches: each node under the output that leads to it
/// (indented where a node has several outputs), each output with the runs
/// that took it, and drop-off only where runs ended.
fn funnel_view(f: Funnel) -> impl IntoView {
    let top = f.entered.max(1);
    let taken = |s: &crate::model::FunnelStep, f: &Funnel| {
        // A node under an output nobody took is an untaken branch, not a loss.
        let (Some(from), Some(out)) = (&s.via_node, &s.via_output) else { return true };
        f.steps
            .iter()
            .find(|p| &p.node == from)
            .and_then(|p| p.branches.iter().find(|b| &b.output == out))
            .is_none_or(|b| b.count > 0)
            || s.entered > 0
    };
    let rows = f
        .steps
        .iter()
        .map(|s| {
            let width = s.entered as f64 / top as f64 * 100.0;
            let class = if taken(s, &f) { "funnel-row" } else { "funnel-row untaken" };
            let outputs = s
                .branches
                .iter()
                .map(|b| {
                    let whither = match (&b.to, b.nested) {
                        (None, _) => " → end".to_string(),
                        (Some(_), true) => String::new(),
                        (Some(to), false) => format!(" → {to}"),
                    };
                    let class = if b.count > 0 { "funnel-out" } else { "funnel-out none" };
                    view! {
                        <span class=class data-output=b.output.clone()>
                            {output_text(&b.output)}" "<strong>{b.count}</strong>{whither}
                        </span>
                    }
                })
                .collect_view();
            view! {
                <tr class=class data-node=s.node.clone() data-depth=s.depth>
                    <td class="funnel-node" style=format!("padding-left: {:.2}rem", 0.3 + 1.1 * f64::from(s.depth))>
                        // Only a branch's output is named: `next` says nothing.
                        {s.via_output.as_deref().and_then(crate::components::canvas::port_label).map(|o| view! {
                            <span class="funnel-via" title="Reached by this output">{o}" ↳ "</span>
                        })}
                        <code>{s.node.clone()}</code>
                        <span class="muted small">" "{s.kind.clone()}</span>
                    </td>
                    <td class="funnel-cell">
                        <span class="funnel-bar" style=format!("width: {width:.0}%")></span>
                        <span class="funnel-count">{s.entered}</span>
                    </td>
                    <td class="num">{s.waiting}</td>
                    <td class="small"><div class="funnel-outs">{outputs}</div></td>
                    <td class="small funnel-end">
                        {(s.converted > 0).then(|| view! { <span class="funnel-converted">{format!("✓ {} converted", s.converted)}</span> })}
                        {(s.left > 0).then(|| view! {
                            <span class="funnel-left" title="Runs that ended here without converting: the path stops here, the goal was missed, or the run failed">
                                {format!("−{} ended here", s.left)}
                            </span>
                        })}
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <p class="muted small">"Version "{f.version}" · "{f.entered}" entered · "{f.converted}" converted"
            {(f.entered > 0).then(|| format!(" ({:.1} %)", f.converted as f64 / f.entered as f64 * 100.0))}</p>
        <div class="table-scroll">
            <table class="table funnel" data-testid="funnel">
                <thead><tr><th>"Node"</th><th>"Entered"</th><th class="num">"Waiting"</th><th>"Outputs"</th><th>"Ended"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
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

    fn count(metric: &str, workflow_id: &str, key: &str, n: i64) -> crate::model::MetricCount {
        crate::model::MetricCount { metric: metric.into(), workflow_id: workflow_id.into(), key: key.into(), n }
    }

    fn summary(at: i64) -> MetricsSummary {
        MetricsSummary {
            range: "24h".into(),
            from: 0,
            to: 0,
            at,
            workflow_id: None,
            current: Figures::default(),
            previous: Figures::default(),
            open_alerts: 0,
            top_events: vec![],
            top_sources: vec![],
            offers_by_workflow: vec![WorkflowOffers {
                workflow_id: "w1".into(),
                name: "Cart rescue".into(),
                issued: 2,
                redeemed: 1,
            }],
            source_names: [("s1".to_string(), "Shop".to_string())].into_iter().collect(),
            workflow_names: [("w1", "Cart rescue"), ("w2", "Bank")]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            setup: Setup { source: true, workflow: false, events: false },
        }
    }

    #[test]
    fn live_lists_show_names_offers_by_workflow_and_the_first_steps_done() {
        let s = summary(100);
        // A run of a second workflow issues its first offer; the first one's is redeemed;
        // an event arrives from the shop and one from a source newer than the figures.
        let tick = MetricTick {
            at: 200,
            counts: vec![
                count("events", "", "", 2),
                count("event_source", "", "s1", 1),
                count("event_source", "", "s9", 1),
                count("runs_started", "", "", 1),
                count("runs_started", "w2", "", 1),
                count("offers_issued", "", "", 1),
                count("offers_issued", "w2", "", 1),
                count("offers_redeemed", "", "", 1),
                count("offers_redeemed", "w1", "", 1),
            ],
        };
        let mut g = Gains::default();
        g.add(&tick, "");
        let sources = merged(&s.top_sources, &g.keyed("event_source", s.at), |id| {
            s.source_names.get(id).cloned().unwrap_or_else(|| id.to_string())
        });
        assert_eq!(sources.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["Shop", "s9"]);
        assert_eq!(Gains::unnamed(&tick, &s), ["s9"], "only the unknown source asks for a refetch");

        let offers = g.offers(&s, "");
        let rows: Vec<(&str, i64, i64)> = offers.iter().map(|o| (o.name.as_str(), o.issued, o.redeemed)).collect();
        assert_eq!(rows, [("Cart rescue", 2, 2), ("Bank", 1, 0)]);
        assert_eq!(g.figures(&s.current, s.at).offers_issued, 1, "the tile counts the installation's total once");
        // On a workflow's own dashboard only its own offers count.
        let mut own = Gains::default();
        own.add(&tick, "w2");
        let mut s2 = summary(100);
        s2.workflow_id = Some("w2".into());
        s2.offers_by_workflow.clear();
        assert_eq!(
            own.offers(&s2, "w2").iter().map(|o| (o.name.as_str(), o.issued)).collect::<Vec<_>>(),
            [("Bank", 1)]
        );
        assert!(Gains::unnamed(&tick, &s2).contains(&"s9".to_string()));

        assert!(!s.setup.done());
        let now = g.setup(s.setup, s.at);
        assert!(now.done(), "an event and a run started complete the first steps: {now:?}");
        assert!(!g.setup(s.setup, 200).done(), "only what came after the figures counts");
    }

    #[test]
    fn the_latency_tile_moves_with_live_buckets() {
        let mut base = Figures { latency_histogram: vec![0; LATENCY_BOUNDS_MS.len()], ..Figures::default() };
        base.latency_histogram[4] = 10; // 10 actions within 5–7 ms
        base.latency_p50_ms = histogram_quantile(&base.latency_histogram, &LATENCY_BOUNDS_MS, 0.5);
        let mut g = Gains::default();
        assert_eq!(g.figures(&base, 0).latency_p50_ms, base.latency_p50_ms, "nothing live: the read figures");
        // 30 slow ones (250–500 ms bucket) arrive live: the median moves there.
        g.add(&MetricTick { at: 5, counts: vec![count("latency", "", "14", 30)] }, "");
        let f = g.figures(&base, 0);
        let p50 = f.latency_p50_ms.unwrap();
        assert!((250.0..=500.0).contains(&p50), "{p50}");
        assert!(f.latency_p95_ms.unwrap() >= p50);
        // From nothing at all, live buckets still give a figure.
        let f = g.figures(&Figures::default(), 0);
        assert!(f.latency_p50_ms.is_some() && f.latency_histogram.len() == LATENCY_BOUNDS_MS.len());
        assert_eq!(ms_text(Some(7.0)), "7.0 ms");
    }
}
