//! The OpenAPI 3 document, generated from the handlers' annotations.

use super::error::ErrorBody;
use super::{api, dashboard, runs, workflows};
use crate::AppState;
use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Nudge API", description = "Real-time customer engagement. Authenticate with `Authorization: Bearer <api key>` (create keys in Settings) or a browser session. Errors are `{ \"error\", \"detail\" }`. Lists take `?limit=&cursor=` and return `next_cursor`."),
    paths(
        api::me, api::status,
        api::list_users, api::create_user, api::update_user, api::delete_user,
        api::list_api_keys, api::create_api_key, api::revoke_api_key,
        api::list_sources, api::create_source, api::get_source, api::update_source, api::delete_source,
        api::rotate_source_secret, api::source_example, api::send_test_event,
        api::list_events, api::get_event, api::get_customer, api::list_dead_letters, api::replay_dead_letter,
        super::hooks::receive, super::stream::stream,
        workflows::list_workflows, workflows::create_workflow, workflows::get_workflow, workflows::update_workflow,
        workflows::archive_workflow, workflows::duplicate_workflow, workflows::validate_workflow,
        workflows::publish_workflow, workflows::pause_workflow, workflows::resume_workflow,
        workflows::list_versions, workflows::get_version, workflows::rollback_workflow, workflows::diff_workflow,
        workflows::list_templates,
        runs::list_runs, runs::get_run, runs::retry_action, runs::list_offers, runs::get_offer, runs::redeem_offer,
        runs::list_alerts, runs::acknowledge_alert, runs::resolve_alert,
        dashboard::summary, dashboard::timeseries, dashboard::funnel,
    ),
    components(schemas(ErrorBody, app::model::Role)),
    modifiers(&BearerAuth),
    security(("bearer" = []), ("session" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
                utoipa::openapi::security::ApiKeyValue::new("nudge_session"),
            )),
        );
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(|| async { axum::Json(ApiDoc::openapi()) }))
}
