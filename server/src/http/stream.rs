//! `GET /api/v1/stream`: server-sent events of what happens, for browsers
//! (session) and API clients (bearer key) alike.

use super::api::ApiActor;
use super::error::{ApiError, ErrorBody};
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::Deserialize;
use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;
use tokio_stream::wrappers::{errors::BroadcastStreamRecvError, BroadcastStream};
use tokio_stream::{Stream, StreamExt};

/// Topics a client can subscribe to.
pub const TOPICS: [&str; 4] = ["events", "runs", "offers", "alerts"];

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct StreamParams {
    /// Comma-separated topics; default all. Available: `events`, `runs`, `offers`, `alerts`.
    pub topics: Option<String>,
}

/// A live stream. Each message's `event:` is its topic and its `data:` the whole
/// object: an Event (`events`), a Run as it now stands (`runs`: started,
/// waiting, completed, converted, failed), an Offer (`offers`: issued,
/// redeemed) or an Alert (`alerts`: raised, acknowledged, resolved). A `ready` message opens the stream; `resync`
/// means messages were missed (a slow client): refetch, then carry on.
#[utoipa::path(get, path = "/api/v1/stream", tag = "live", params(StreamParams),
    responses((status = 200, content_type = "text/event-stream", description = "Server-sent events"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn stream(
    State(state): State<AppState>,
    ApiActor(_actor): ApiActor,
    params: Result<Query<StreamParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(p) = params?;
    let topics: HashSet<String> = match p.topics.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => TOPICS.iter().map(|t| t.to_string()).collect(),
        Some(list) => {
            let wanted: HashSet<String> = list.split(',').map(|t| t.trim().to_string()).collect();
            if let Some(bad) = wanted.iter().find(|t| !TOPICS.contains(&t.as_str())) {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("Unknown topic '{bad}'; available: {}.", TOPICS.join(", ")),
                ));
            }
            wanted
        }
    };
    let ready = Event::default().event("ready").data(topics.iter().cloned().collect::<Vec<_>>().join(","));
    let live = BroadcastStream::new(state.ctx.live.subscribe()).filter_map(move |msg| match msg {
        Ok(m) if topics.contains(m.topic) => {
            Some(Ok(Event::default().event(m.topic).id(m.id.to_string()).data(m.data.to_string())))
        }
        Ok(_) => None,
        Err(BroadcastStreamRecvError::Lagged(missed)) => {
            Some(Ok(Event::default().event("resync").data(missed.to_string())))
        }
    });
    let all = tokio_stream::once(Ok(ready)).chain(live);
    Ok(Sse::new(all).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
