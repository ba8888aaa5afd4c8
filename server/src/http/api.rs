//! `/api/v1`: the REST API. Handlers decode, authenticate and call the same
//! service functions as the UI's server fns.

use super::error::{ApiError, ApiResult, ErrorBody};
use crate::AppState;
use app::model::{
    ApiKey, CreatedApiKey, CustomerDetail, DeadLetter, Event, EventFilter, Mapping, Me, Page, Role, Source,
    SourceWithSecret, SystemStatus, User,
};
use app::service::ingest::{BatchResult, HookOutcome, ItemResult};
use app::service::sources::{SignedExample, SourcePatch};
use app::service::{self, auth, Actor};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, patch, post};
use axum::Router;
use serde::Deserialize;
use tower_sessions::Session;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me", get(me))
        .route("/status", get(status))
        .route("/users", get(list_users).post(create_user))
        .route("/users/{user_id}", patch(update_user).delete(delete_user))
        .route("/api-keys", get(list_api_keys).post(create_api_key))
        .route("/api-keys/{api_key_id}", delete(revoke_api_key))
        .route("/sources", get(list_sources).post(create_source))
        .route("/sources/{slug}", get(get_source).patch(update_source).delete(delete_source))
        .route("/sources/{slug}/rotate-secret", post(rotate_source_secret))
        .route("/sources/{slug}/example", get(source_example))
        .route("/sources/{slug}/test-event", post(send_test_event))
        .route("/events", get(list_events))
        .route("/events/{event_id}", get(get_event))
        .route("/customers/{customer_id}", get(get_customer))
        .route("/dead-letters", get(list_dead_letters))
        .route("/dead-letters/{dead_letter_id}/replay", post(replay_dead_letter))
        .route("/stream", get(super::stream::stream))
        .merge(super::workflows::routes())
        .merge(super::runs::routes())
        .merge(super::dashboard::routes())
        .fallback(not_found)
}

/// JSON body extractor whose rejections are API errors.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// The authenticated caller: a bearer API key, or else the browser session.
/// Every `/api/v1` handler takes one, so requests without credentials get 401.
pub struct ApiActor(pub Actor);

impl FromRequestParts<AppState> for ApiActor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let value = value.to_str().unwrap_or_default();
            let Some(secret) = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")) else {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "Use `Authorization: Bearer <api key>`.",
                ));
            };
            return Ok(ApiActor(auth::actor_for_api_key(&state.ctx, secret).await?));
        }
        let unauthorized = || {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "Send `Authorization: Bearer <api key>` or log in.")
        };
        let session = Session::from_request_parts(parts, state).await.map_err(|_| unauthorized())?;
        let user_id: Option<String> =
            session.get(app::web::SESSION_USER_KEY).await.map_err(|e| ApiError::from(app::web::session_error(e)))?;
        let Some(user_id) = user_id else { return Err(unauthorized()) };
        auth::actor_for_user(&state.ctx, &user_id).await?.map(ApiActor).ok_or_else(unauthorized)
    }
}

/// `?limit=&cursor=` of list endpoints.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PageParams {
    /// Items per page, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

async fn not_found(_actor: ApiActor) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such API endpoint.")
}

/// The caller's identity and role.
#[utoipa::path(get, path = "/api/v1/me", tag = "identity",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
pub async fn me(ApiActor(actor): ApiActor) -> Json<Me> {
    Json(actor.me())
}

/// Version, database backend and counts of this installation.
#[utoipa::path(get, path = "/api/v1/status", tag = "identity",
    responses((status = 200, body = SystemStatus), (status = 401, body = ErrorBody)))]
pub async fn status(State(state): State<AppState>, ApiActor(actor): ApiActor) -> ApiResult<Json<SystemStatus>> {
    Ok(Json(service::system_status(&state.ctx, &actor).await?))
}

/// Users, oldest first (admin).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(PageParams),
    responses((status = 200, body = Page<User>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    params: Result<Query<PageParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Page<User>>> {
    let Query(p) = params?;
    Ok(Json(service::users::list(&state.ctx, &actor, p.cursor.as_deref(), p.limit).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateUserBody {
    pub email: String,
    /// At least 10 characters.
    pub password: String,
    pub role: Role,
}

/// Creates a user (admin).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUserBody,
    responses((status = 201, body = User), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_user(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Json(body): Json<CreateUserBody>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let new = service::users::NewUser { email: &body.email, password: &body.password, role: body.role };
    Ok((StatusCode::CREATED, Json(service::users::create(&state.ctx, &actor, new).await?)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UpdateUserBody {
    pub role: Role,
}

/// Changes a user's role (admin). The last admin cannot be demoted.
#[utoipa::path(patch, path = "/api/v1/users/{user_id}", tag = "users", request_body = UpdateUserBody,
    params(("user_id" = String, Path, description = "The user's id")),
    responses((status = 200, body = User), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_user(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Path(user_id): Path<String>,
    Json(body): Json<UpdateUserBody>,
) -> ApiResult<Json<User>> {
    Ok(Json(service::users::set_role(&state.ctx, &actor, &user_id, body.role).await?))
}

/// Removes a user (admin). Admins cannot remove themselves.
#[utoipa::path(delete, path = "/api/v1/users/{user_id}", tag = "users",
    params(("user_id" = String, Path, description = "The user's id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_user(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Path(user_id): Path<String>,
) -> ApiResult<StatusCode> {
    service::users::delete(&state.ctx, &actor, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// API keys, oldest first, revoked ones included (admin). Secrets are never listed.
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys", params(PageParams),
    responses((status = 200, body = Page<ApiKey>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_api_keys(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    params: Result<Query<PageParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Page<ApiKey>>> {
    let Query(p) = params?;
    Ok(Json(service::api_keys::list(&state.ctx, &actor, p.cursor.as_deref(), p.limit).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateApiKeyBody {
    pub name: String,
    pub role: Role,
}

/// Creates an API key (admin); the response carries the secret, shown this once.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", request_body = CreateApiKeyBody,
    responses((status = 201, body = CreatedApiKey), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn create_api_key(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Json(body): Json<CreateApiKeyBody>,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    Ok((StatusCode::CREATED, Json(service::api_keys::create(&state.ctx, &actor, &body.name, body.role).await?)))
}

/// Revokes an API key (admin); it stops working at once.
#[utoipa::path(delete, path = "/api/v1/api-keys/{api_key_id}", tag = "api-keys",
    params(("api_key_id" = String, Path, description = "The key's id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Path(api_key_id): Path<String>,
) -> ApiResult<StatusCode> {
    service::api_keys::revoke(&state.ctx, &actor, &api_key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

type QueryResult<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

/// Sources by slug (any role).
#[utoipa::path(get, path = "/api/v1/sources", tag = "sources", params(PageParams),
    responses((status = 200, body = Page<Source>), (status = 401, body = ErrorBody)))]
pub async fn list_sources(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    params: QueryResult<PageParams>,
) -> ApiResult<Json<Page<Source>>> {
    let Query(p) = params?;
    Ok(Json(service::sources::list(&state.ctx, &actor, p.cursor.as_deref(), p.limit).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateSourceBody {
    pub name: String,
    /// URL-safe and unique: lower-case letters, digits, `-`, `_`.
    pub slug: String,
    pub mapping: Mapping,
}

/// Creates a source (editor). The answer is the only one that carries the full secret.
#[utoipa::path(post, path = "/api/v1/sources", tag = "sources", request_body = CreateSourceBody,
    responses((status = 201, body = SourceWithSecret), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_source(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Json(body): Json<CreateSourceBody>,
) -> ApiResult<(StatusCode, Json<SourceWithSecret>)> {
    let input = service::sources::NewSourceInput { name: &body.name, slug: &body.slug, mapping: &body.mapping };
    Ok((StatusCode::CREATED, Json(service::sources::create(&state.ctx, &actor, input).await?)))
}

/// One source with its counters (any role).
#[utoipa::path(get, path = "/api/v1/sources/{slug}", tag = "sources",
    params(("slug" = String, Path, description = "The source's slug")),
    responses((status = 200, body = Source), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_source(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Path(slug): Path<String>,
) -> ApiResult<Json<Source>> {
    Ok(Json(service::sources::get(&state.ctx, &actor, &slug).await?))
}

/// Renames, enables/disables or re-maps a source (editor). Absent fields stay.
#[utoipa::path(patch, path = "/api/v1/sources/{slug}", tag = "sources", request_body = SourcePatch,
    params(("slug" = String, Path, description = "The source's slug")),
    responses((status = 200, body = Source), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_source(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Path(slug): Path<String>,
    Json(patch): Json<SourcePatch>,
) -> ApiResult<Json<Source>> {
    Ok(Json(service::sources::update(&state.ctx, &actor, &slug, patch).await?))
}

/// Deletes a source, its dedupe keys and dead letters (editor); its events stay on customer timelines.
#[utoipa::path(delete, path = "/api/v1/sources/{slug}", tag = "sources",
    params(("slug" = String, Path, description = "The source's slug")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_source(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Path(slug): Path<String>,
) -> ApiResult<StatusCode> {
    service::sources::delete(&state.ctx, &actor, &slug).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct RotateBody {
    /// Hours the previous secret stays valid (default 24, at most 720; 0 ends it at once).
    pub grace_hours: Option<u32>,
}

/// Issues a new signing secret (editor); the previous one is accepted during the grace period.
#[utoipa::path(post, path = "/api/v1/sources/{slug}/rotate-secret", tag = "sources", request_body(content = RotateBody, description = "Optional"),
    params(("slug" = String, Path, description = "The source's slug")),
    responses((status = 200, body = SourceWithSecret), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn rotate_source_secret(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Path(slug): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<SourceWithSecret>> {
    // The body is optional: empty means the default grace period.
    let grace = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<RotateBody>(&body)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", e.to_string()))?
            .grace_hours
    };
    Ok(Json(service::sources::rotate_secret(&state.ctx, &actor, &slug, grace).await?))
}

/// A sample body and its signature, valid for 5 minutes (editor).
#[utoipa::path(get, path = "/api/v1/sources/{slug}/example", tag = "sources",
    params(("slug" = String, Path, description = "The source's slug")),
    responses((status = 200, body = SignedExample), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn source_example(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Path(slug): Path<String>,
) -> ApiResult<Json<SignedExample>> {
    Ok(Json(service::sources::signed_example(&state.ctx, &actor, &slug, app::store::now_ms()).await?))
}

/// Sends a signed sample event through the webhook's code path (editor).
#[utoipa::path(post, path = "/api/v1/sources/{slug}/test-event", tag = "sources",
    params(("slug" = String, Path, description = "The source's slug")),
    responses((status = 202, body = ItemResult), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn send_test_event(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Path(slug): Path<String>,
) -> ApiResult<(StatusCode, axum::response::Response)> {
    let outcome = service::sources::send_test_event(&state.ctx, &actor, &slug, app::store::now_ms()).await?;
    let body = match outcome {
        HookOutcome::Single(one) => axum::Json(one).into_response(),
        HookOutcome::Batch(batch) => axum::Json::<BatchResult>(batch).into_response(),
    };
    Ok((StatusCode::ACCEPTED, body))
}

/// Filters of `GET /api/v1/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EventParams {
    /// A source slug.
    pub source: Option<String>,
    /// An event name.
    pub name: Option<String>,
    /// A customer id.
    pub customer: Option<String>,
    /// Received at or after: unix milliseconds or RFC 3339.
    pub from: Option<String>,
    /// Received before: unix milliseconds or RFC 3339.
    pub to: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn time_param(name: &str, value: Option<&str>) -> ApiResult<Option<i64>> {
    let Some(v) = value.filter(|v| !v.trim().is_empty()) else { return Ok(None) };
    let parsed = match v.trim().parse::<i64>() {
        Ok(ms) => Some(ms),
        Err(_) => app::ingest::mapping::parse_rfc3339(v),
    };
    parsed.map(Some).ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", format!("{name}: use unix milliseconds or RFC 3339 time"))
    })
}

/// Events, newest first, filtered (any role).
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventParams),
    responses((status = 200, body = Page<Event>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_events(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    params: QueryResult<EventParams>,
) -> ApiResult<Json<Page<Event>>> {
    let Query(p) = params?;
    let filter = EventFilter {
        source: p.source,
        name: p.name.filter(|s| !s.is_empty()),
        customer: p.customer.filter(|s| !s.is_empty()),
        from: time_param("from", p.from.as_deref())?,
        to: time_param("to", p.to.as_deref())?,
    };
    Ok(Json(service::events::list(&state.ctx, &actor, &filter, p.cursor.as_deref(), p.limit).await?))
}

/// One event with its payload (any role).
#[utoipa::path(get, path = "/api/v1/events/{event_id}", tag = "events",
    params(("event_id" = String, Path, description = "Nudge's event id")),
    responses((status = 200, body = Event), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_event(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Path(event_id): Path<String>,
) -> ApiResult<Json<Event>> {
    Ok(Json(service::events::get(&state.ctx, &actor, &event_id).await?))
}

/// A customer's profile and latest events (any role).
#[utoipa::path(get, path = "/api/v1/customers/{customer_id}", tag = "customers",
    params(("customer_id" = String, Path, description = "The customer id, as the sources send it")),
    responses((status = 200, body = CustomerDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_customer(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Path(customer_id): Path<String>,
) -> ApiResult<Json<CustomerDetail>> {
    Ok(Json(service::events::customer(&state.ctx, &actor, &customer_id).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DeadLetterParams {
    /// A source slug.
    pub source: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Events that could not be mapped, newest first (any role).
#[utoipa::path(get, path = "/api/v1/dead-letters", tag = "events", params(DeadLetterParams),
    responses((status = 200, body = Page<DeadLetter>), (status = 401, body = ErrorBody)))]
pub async fn list_dead_letters(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    params: QueryResult<DeadLetterParams>,
) -> ApiResult<Json<Page<DeadLetter>>> {
    let Query(p) = params?;
    Ok(Json(
        service::events::dead_letters(&state.ctx, &actor, p.source.as_deref(), p.cursor.as_deref(), p.limit).await?,
    ))
}

/// Maps a dead letter again with its source's current mapping and stores it as an event (editor).
#[utoipa::path(post, path = "/api/v1/dead-letters/{dead_letter_id}/replay", tag = "events",
    params(("dead_letter_id" = String, Path, description = "The dead letter's id")),
    responses((status = 201, body = Event), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn replay_dead_letter(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Path(dead_letter_id): Path<String>,
) -> ApiResult<(StatusCode, Json<Event>)> {
    let event = service::events::replay(&state.ctx, &actor, &dead_letter_id, app::store::now_ms()).await?;
    Ok((StatusCode::CREATED, Json(event)))
}
