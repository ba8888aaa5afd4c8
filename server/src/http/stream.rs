//! `GET /api/v1/stream`: server-sent events of what happens, for browsers
//! (session) and API clients (bearer key) alike, resumable with `Last-Event-ID`.

use super::api::ApiActor;
use super::error::{ApiError, ErrorBody};
use crate::AppState;
use app::engine::live::{LiveMessage, Resume};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::Deserialize;
use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;
use tokio_stream::wrappers::{errors::BroadcastStreamRecvError, BroadcastStream};
use tokio_stream::{Stream, StreamExt};

/// Topics a client can subscribe to.
pub const TOPICS: [&str; 5] = ["events", "runs", "offers", "alerts", "metrics"];

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct StreamParams {
    /// Comma-separated topics; default all. Available: `events`, `runs`, `offers`, `alerts`, `metrics`.
    pub topics: Option<String>,
    /// As the `Last-Event-ID` header, for a client that opens a new connection itself.
    pub last_event_id: Option<String>,
}

/// A live stream. Each message's `event:` is its topic, its `id:` a position
/// to resume from and its `data:` the whole object: an Event (`events`), a Run
/// as it now stands (`runs`: started, waiting, completed, converted, failed, cancelled),
/// an Offer (`offers`: issued, redeemed), an Alert (`alerts`: raised,
/// acknowledged, resolved) or, about once a second while things happen, the
/// counts since the last tick (`metrics`). A `ready` message opens the stream.
/// A client that reconnects with `Last-Event-ID` first gets what it missed;
/// `resync` means that could not be done (too far behind, a server restart,
/// or a client too slow to keep up): refetch, then carry on.
#[utoipa::path(get, path = "/api/v1/stream", tag = "live", params(StreamParams,
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last message received, to resume after it")),
    responses((status = 200, content_type = "text/event-stream", description = "Server-sent events"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn stream(
    State(state): State<AppState>,
    ApiActor(_actor): ApiActor,
    headers: HeaderMap,
    params: Result<Query<StreamParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(p) = params?;
    let topics = topics(p.topics.as_deref())?;
    let live = state.ctx.live.clone();
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(p.last_event_id.as_deref())
        .filter(|s| !s.is_empty());
    let resumed = live.resume(last_id);
    let mut first = vec![Event::default().event("ready").id(resumed.id.clone()).data(joined(&topics))];
    match resumed.resume {
        Resume::Replay(missed) => {
            first.extend(missed.iter().filter(|m| topics.contains(m.topic)).map(|m| message(&live, m)))
        }
        Resume::Resync => first.push(Event::default().event("resync").data("restart")),
    }
    let after = resumed.after;
    let feed = live.clone();
    // The subscription travels inside the stream: when the client goes, it drops.
    let app::engine::live::Subscription { rx, guard } = resumed.sub;
    let stream = BroadcastStream::new(rx).filter_map(move |msg| {
        let _held = &guard;
        match msg {
            Ok(m) if m.seq <= after => None,
            Ok(m) if topics.contains(m.topic) => Some(message(&feed, &m)),
            Ok(_) => None,
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                Some(Event::default().event("resync").data(missed.to_string()))
            }
        }
    });
    // At shutdown the stream ends (the client's EventSource reconnects to
    // whatever serves next); an endless response would hold the shutdown up.
    let closing = tokio_stream::once(()).then(move |()| live.closed()).map(|()| None);
    let all = tokio_stream::iter(first.into_iter().map(Some))
        .chain(stream.map(Some))
        .merge(closing)
        .take_while(Option::is_some)
        .filter_map(|m| m.map(Ok::<Event, Infallible>));
    Ok(Sse::new(all).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn topics(list: Option<&str>) -> Result<HashSet<&'static str>, ApiError> {
    match list.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(TOPICS.iter().copied().collect()),
        Some(list) => list
            .split(',')
            .map(|t| {
                let t = t.trim();
                TOPICS.iter().copied().find(|known| *known == t).ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        format!("Unknown topic '{t}'; available: {}.", TOPICS.join(", ")),
                    )
                })
            })
            .collect(),
    }
}

fn joined(topics: &HashSet<&'static str>) -> String {
    let mut list: Vec<&str> = topics.iter().copied().collect();
    list.sort();
    list.join(",")
}

fn message(live: &app::engine::live::Live, m: &LiveMessage) -> Event {
    Event::default().event(m.topic).id(live.id_of(m)).data(&*m.data)
}
