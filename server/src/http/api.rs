//! `/api/v1`: the REST API. Handlers decode, authenticate and call the same
//! service functions as the UI's server fns.

use super::error::{ApiError, ApiResult, ErrorBody};
use crate::AppState;
use app::model::{ApiKey, CreatedApiKey, Me, Page, Role, SystemStatus, User};
use app::service::{self, auth, Actor};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, patch};
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
