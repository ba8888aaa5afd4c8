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
        use std::rc::Rc;
        let on_message: Rc<dyn Fn(String)> = Rc::new(on_message);
        let on_resync: Rc<dyn Fn()> = Rc::new(on_resync);
        let source = StoredValue::new_local(None::<web_sys::EventSource>);
        // The last message's id: a connection we open again resumes after it
        // (the browser sends it by itself only while it reconnects on its own).
        let last_id = StoredValue::new_local(String::new());
        let alive = StoredValue::new_local(true);
        /// Opens the connection; set once it exists, so its error handler can call it.
        type Reopen = Rc<std::cell::RefCell<Option<Rc<dyn Fn()>>>>;
        let connect: Reopen = Rc::new(std::cell::RefCell::new(None));
        let connect_weak = Rc::downgrade(&connect);
        let open: Rc<dyn Fn()> = Rc::new(move || {
            use wasm_bindgen::closure::Closure;
            use wasm_bindgen::JsCast;
            if !alive.try_get_value().unwrap_or(false) {
                return;
            }
            let mut url = format!("/api/v1/stream?topics={topic}");
            let last = last_id.try_get_value().unwrap_or_default();
            if !last.is_empty() {
                url.push_str(&format!("&last_event_id={last}"));
            }
            let Ok(es) = web_sys::EventSource::new(&url) else {
                let _ = set_status.try_set(LiveStatus::Reconnecting);
                return;
            };
            let remember = move |m: &web_sys::MessageEvent| {
                let id = m.last_event_id();
                if !id.is_empty() {
                    last_id.try_set_value(id);
                }
            };
            let on_ready = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |m: web_sys::MessageEvent| {
                remember(&m);
                let _ = set_status.try_set(LiveStatus::Live);
            });
            let again = connect_weak.clone();
            let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
                let _ = set_status.try_set(LiveStatus::Reconnecting);
                // Closed for good (the browser stopped retrying): open a new one in a while.
                let closed = e
                    .target()
                    .and_then(|t| t.dyn_into::<web_sys::EventSource>().ok())
                    .is_some_and(|es| es.ready_state() == web_sys::EventSource::CLOSED);
                if closed {
                    if let Some(connect) = again.upgrade() {
                        let connect = connect.borrow().clone();
                        set_timeout(
                            move || {
                                if let Some(f) = connect {
                                    f()
                                }
                            },
                            std::time::Duration::from_secs(3),
                        );
                    }
                }
            });
            let deliver = on_message.clone();
            let on_topic = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |m: web_sys::MessageEvent| {
                remember(&m);
                if let Some(text) = m.data().as_string() {
                    deliver(text);
                }
            });
            let resync = on_resync.clone();
            let on_lag = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |_: web_sys::MessageEvent| resync());
            let _ = es.add_event_listener_with_callback("ready", on_ready.as_ref().unchecked_ref());
            let _ = es.add_event_listener_with_callback(topic, on_topic.as_ref().unchecked_ref());
            let _ = es.add_event_listener_with_callback("resync", on_lag.as_ref().unchecked_ref());
            es.set_onerror(Some(on_error.as_ref().unchecked_ref()));
            // The closures live as long as the page; the EventSource is closed on cleanup.
            on_ready.forget();
            on_error.forget();
            on_topic.forget();
            on_lag.forget();
            if let Some(old) = source.try_get_value().flatten() {
                old.close();
            }
            source.try_set_value(Some(es));
        });
        *connect.borrow_mut() = Some(open.clone());
        // Keeps the reconnect function alive as long as the component.
        let keep = StoredValue::new_local(connect);
        Effect::new(move |_| open());
        on_cleanup(move || {
            alive.try_set_value(false);
            keep.try_update_value(|c| *c.borrow_mut() = None);
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
