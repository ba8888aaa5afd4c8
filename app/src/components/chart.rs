//! A time-series chart drawn as SVG: bars per bucket for one or two series,
//! a y axis with round ticks, time labels, and a tooltip on hover. Pure
//! geometry (`nice_max`, `ticks`) is tested; the view follows its signal, so a
//! page extends it live by changing the points.

use crate::model::Point;
use crate::pages::settings::format_ms;
use leptos::prelude::*;

/// One series: a label for the legend and tooltip, a CSS class for its colour.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub class: &'static str,
    pub points: Vec<Point>,
}

/// The width drawn on the server and before the browser has measured the
/// chart; after that it is drawn at its real width, so its labels keep their
/// size on a phone instead of shrinking with a scaled-down picture.
const FIRST_W: f64 = 860.0;
/// Narrower than this, the chart is scaled down rather than squeezed.
const MIN_W: f64 = 280.0;
const H: f64 = 220.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// The smallest "round" number (1, 2 or 5 × 10ⁿ) at or above `max`, at least 1.
pub fn nice_max(max: i64) -> i64 {
    if max <= 1 {
        return 1;
    }
    let mut unit = 1i64;
    while unit.saturating_mul(10) < max {
        unit = unit.saturating_mul(10);
    }
    for m in [1, 2, 5, 10] {
        if unit.saturating_mul(m) >= max {
            return unit.saturating_mul(m);
        }
    }
    unit.saturating_mul(10)
}

/// Y-axis ticks: 0, half and the top.
pub fn ticks(top: i64) -> Vec<i64> {
    if top >= 2 && top % 2 == 0 {
        vec![0, top / 2, top]
    } else {
        vec![0, top]
    }
}

/// A short time label: `HH:MM` within a day's buckets, else `MM-DD`.
fn time_label(t: i64, step_ms: i64) -> String {
    let full = format_ms(t);
    // format_ms gives "YYYY-MM-DD HH:MM UTC".
    if step_ms < 3_600_000 * 2 {
        full.get(11..16).unwrap_or(&full).to_string()
    } else {
        full.get(5..10).unwrap_or(&full).to_string()
    }
}

/// A bucket's width for people: `1 min`, `15 min`, `2 h`.
pub fn step_label(step_ms: i64) -> String {
    if step_ms >= 3_600_000 && step_ms % 3_600_000 == 0 {
        format!("{} h", step_ms / 3_600_000)
    } else {
        format!("{} min", (step_ms / 60_000).max(1))
    }
}

#[component]
pub fn TimeChart(#[prop(into)] series: Signal<Vec<Series>>, #[prop(into)] step_ms: Signal<i64>) -> impl IntoView {
    let hovered = RwSignal::new(None::<usize>);
    let geometry = move || {
        let all = series.get();
        let n = all.iter().map(|s| s.points.len()).max().unwrap_or(0);
        let max = all.iter().flat_map(|s| s.points.iter().map(|p| p.v)).max().unwrap_or(0);
        (all, n, nice_max(max))
    };
    let el = NodeRef::<leptos::html::Div>::new();
    let width = RwSignal::new(FIRST_W);
    let measure = move || {
        if let Some(div) = el.get_untracked() {
            let w = f64::from(div.client_width());
            if w > 0.0 {
                width.try_set(w.max(MIN_W));
            }
        }
    };
    // Once laid out (the next frame), and whenever the window is resized.
    Effect::new(move |_| {
        if el.get().is_some() {
            request_animation_frame(measure);
        }
    });
    #[cfg(feature = "hydrate")]
    {
        let handle = window_event_listener(leptos::ev::resize, move |_| measure());
        on_cleanup(move || handle.remove());
    }
    let plot_h = H - TOP - BOTTOM;
    view! {
        <div class="chart" node_ref=el>
            <svg viewBox=move || format!("0 0 {:.0} {H}", width.get()) class="chart-svg" role="img" on:mouseleave=move |_| hovered.set(None)>
                {move || {
                    let w = width.get();
                    let plot_w = w - LEFT - RIGHT;
                    let (all, n, top) = geometry();
                    let step = step_ms.get();
                    let y = move |v: i64| TOP + plot_h - (v as f64 / top as f64) * plot_h;
                    let slot = if n > 0 { plot_w / n as f64 } else { plot_w };
                    let groups = all.len().max(1) as f64;
                    let bar = (slot * 0.8 / groups).max(1.0);
                    let grid = ticks(top)
                        .into_iter()
                        .map(|t| {
                            view! {
                                <line class="chart-grid" x1=LEFT x2=w - RIGHT y1=y(t) y2=y(t) />
                                <text class="chart-axis" x=LEFT - 6.0 y=y(t) + 4.0 text-anchor="end">{t.to_string()}</text>
                            }
                        })
                        .collect_view();
                    let label_every = (n / 6).max(1);
                    let labels = all
                        .first()
                        .map(|s| {
                            s.points
                                .iter()
                                .enumerate()
                                .filter(|(i, _)| i % label_every == 0)
                                .map(|(i, p)| {
                                    let x = LEFT + slot * (i as f64 + 0.5);
                                    view! { <text class="chart-axis" x=x y=H - 6.0 text-anchor="middle">{time_label(p.t, step)}</text> }
                                })
                                .collect_view()
                        });
                    let bars = all
                        .iter()
                        .enumerate()
                        .map(|(g, s)| {
                            let class = format!("chart-bar {}", s.class);
                            s.points
                                .iter()
                                .enumerate()
                                .filter(|(_, p)| p.v > 0)
                                .map(|(i, p)| {
                                    let x = LEFT + slot * i as f64 + slot * 0.1 + bar * g as f64;
                                    let top_y = y(p.v);
                                    view! { <rect class=class.clone() x=x y=top_y width=bar height=(TOP + plot_h - top_y).max(0.5) /> }
                                })
                                .collect_view()
                        })
                        .collect_view();
                    let hover_zones = (0..n)
                        .map(|i| {
                            let x = LEFT + slot * i as f64;
                            view! {
                                <rect class="chart-hover" x=x y=TOP width=slot height=plot_h
                                    on:mouseenter=move |_| hovered.set(Some(i)) />
                            }
                        })
                        .collect_view();
                    let highlight = hovered.get().filter(|i| *i < n).map(|i| {
                        let x = LEFT + slot * i as f64;
                        view! { <rect class="chart-highlight" x=x y=TOP width=slot height=plot_h /> }
                    });
                    view! {
                        <g>{grid}</g>
                        <line class="chart-baseline" x1=LEFT x2=w - RIGHT y1=TOP + plot_h y2=TOP + plot_h />
                        {highlight}
                        <g>{bars}</g>
                        <g>{labels}</g>
                        <g>{hover_zones}</g>
                    }
                }}
            </svg>
            {move || {
                let i = hovered.get()?;
                let (all, n, _) = geometry();
                if i >= n {
                    return None;
                }
                let step = step_ms.get();
                let t = all.first().and_then(|s| s.points.get(i)).map(|p| p.t)?;
                let w = width.get();
                let left = (LEFT + (w - LEFT - RIGHT) / n as f64 * (i as f64 + 0.5)) / w * 100.0;
                let rows = all
                    .iter()
                    .map(|s| {
                        let v = s.points.get(i).map_or(0, |p| p.v);
                        view! { <div><span class=format!("swatch {}", s.class)></span>{s.label.clone()}": "<strong>{v}</strong></div> }
                    })
                    .collect_view();
                Some(view! {
                    <div class="chart-tip" data-testid="chart-tip" style=format!("left: {left:.1}%")>
                        <div class="muted small">{format_ms(t)}" · "{step_label(step)}</div>
                        {rows}
                    </div>
                })
            }}
            <div class="chart-legend">
                {move || series.get().into_iter().map(|s| view! {
                    <span><span class=format!("swatch {}", s.class)></span>{s.label}</span>
                }).collect_view()}
            </div>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_y_axis_tops_out_at_a_round_number_above_the_highest_bar() {
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(1), 1);
        assert_eq!(nice_max(3), 5);
        assert_eq!(nice_max(7), 10);
        assert_eq!(nice_max(11), 20);
        assert_eq!(nice_max(200), 200);
        assert_eq!(nice_max(201), 500);
        assert_eq!(nice_max(9_999), 10_000);
        assert_eq!(ticks(20), vec![0, 10, 20]);
        assert_eq!(ticks(1), vec![0, 1]);
    }
}
