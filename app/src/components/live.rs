//! The browser end of the live stream: an EventSource on `/api/v1/stream`
//! (the browser reconnects by itself) and a small live/reconnecting badge.

use leptos::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveStatus {
    Connecting,
    Live,
    Reconnecting,
}

/// Subscribes to `topic`; `on_message(data)` gets each message's JSON text and
/// `on_resync()` is called when messages were missed. Closed when the component goes.
pub fn use_live(
    topic: &'static str,
    on_message: impl Fn(String) + 'static,
    on_resync: impl Fn() + 'static,
) -> ReadSignal<LiveStatus> {
    let (status, set_status) = signal(LiveStatus::Connecting);
    // Only in the browser: the server renders "connecting", and local
    // (thread-bound) values must never be created or dropped on its threads.
    #[cfg(feature = "hydrate")]
    {
        let on_message = StoredValue::new_local(Some(Box::new(on_message) as Box<dyn Fn(String)>));
        let on_resync = StoredValue::new_local(Some(Box::new(on_resync) as Box<dyn Fn()>));
        let source = StoredValue::new_local(None::<web_sys::EventSource>);
        Effect::new(move |_| {
            use wasm_bindgen::closure::Closure;
            use wasm_bindgen::JsCast;
            let Ok(es) = web_sys::EventSource::new(&format!("/api/v1/stream?topics={topic}")) else {
                set_status.set(LiveStatus::Reconnecting);
                return;
            };
            let on_ready = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |_: web_sys::MessageEvent| {
                set_status.set(LiveStatus::Live);
            });
            let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_: web_sys::Event| {
                set_status.set(LiveStatus::Reconnecting);
            });
            let on_topic = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |m: web_sys::MessageEvent| {
                if let Some(text) = m.data().as_string() {
                    on_message.with_value(|f| {
                        if let Some(f) = f {
                            f(text)
                        }
                    });
                }
            });
            let on_lag = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |_: web_sys::MessageEvent| {
                on_resync.with_value(|f| {
                    if let Some(f) = f {
                        f()
                    }
                });
            });
            let _ = es.add_event_listener_with_callback("ready", on_ready.as_ref().unchecked_ref());
            let _ = es.add_event_listener_with_callback(topic, on_topic.as_ref().unchecked_ref());
            let _ = es.add_event_listener_with_callback("resync", on_lag.as_ref().unchecked_ref());
            es.set_onerror(Some(on_error.as_ref().unchecked_ref()));
            // The closures live as long as the page; the EventSource is closed on cleanup.
            on_ready.forget();
            on_error.forget();
            on_topic.forget();
            on_lag.forget();
            source.set_value(Some(es));
        });
        on_cleanup(move || {
            if let Some(es) = source.try_get_value().flatten() {
                es.close();
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (topic, on_message, on_resync, set_status);
    status
}

/// Subscribes to `topic` and counts up a tick, at most every half second,
/// whenever a message passes `accept(data)` (and on a resync). A page makes
/// its resources depend on the tick to follow what happens.
pub fn use_live_ticks(
    topic: &'static str,
    accept: impl Fn(&str) -> bool + 'static,
) -> (ReadSignal<LiveStatus>, ReadSignal<u64>) {
    let (tick, set_tick) = signal(0u64);
    let pending = StoredValue::new(false);
    let bump = move || {
        if pending.try_get_value().unwrap_or(true) {
            return;
        }
        pending.set_value(true);
        set_timeout(
            move || {
                pending.try_set_value(false);
                set_tick.try_update(|t| *t += 1);
            },
            std::time::Duration::from_millis(500),
        );
    };
    let status = use_live(
        topic,
        move |text| {
            if accept(&text) {
                bump();
            }
        },
        bump,
    );
    (status, tick)
}

#[component]
pub fn LiveBadge(status: ReadSignal<LiveStatus>) -> impl IntoView {
    view! {
        <span
            class=move || match status.get() {
                LiveStatus::Live => "live-badge on",
                LiveStatus::Connecting => "live-badge",
                LiveStatus::Reconnecting => "live-badge off",
            }
            data-testid="live-status"
        >
            {move || match status.get() {
                LiveStatus::Live => "● Live",
                LiveStatus::Connecting => "○ Connecting…",
                LiveStatus::Reconnecting => "○ Reconnecting…",
            }}
        </span>
    }
}
