//! `/api/v1/workflows`: create from a template or JSON, save drafts with
//! revisions, validate, publish (409 with node-level issues), versions,
//! diff, rollback, pause/resume, archive; editors write, viewers read.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

mod common;

use app::model::Role;
use app::store::testing;
use axum::http::{Method, StatusCode};
use common::{api, app, key};
use serde_json::json;

#[tokio::test]
async fn a_workflow_goes_from_template_to_published_versions_over_the_api() {
    for db in testing::all().await {
        let app = app(&db);
        let (ed, vi) = (key(&db, Role::Editor).await, key(&db, Role::Viewer).await);

        let templates = api(&app, Method::GET, "/api/v1/workflow-templates", &vi, None).await;
        assert_eq!(templates.status, StatusCode::OK);
        let names: Vec<String> =
            templates.json().as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect();
        assert_eq!(names, ["abandoned_cart", "high_value_transaction", "low_inventory"]);

        let created =
            api(&app, Method::POST, "/api/v1/workflows", &ed, Some(json!({ "template": "abandoned_cart" }))).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let w = created.json();
        let id = w["workflow_id"].as_str().unwrap().to_string();
        assert_eq!(w["status"], "draft");
        assert_eq!(w["issues"], json!([]));
        assert_eq!(w["draft"]["schema_version"], 1);
        let url = format!("/api/v1/workflows/{id}");

        // Break the draft: the reminder's output is no longer ended.
        let mut draft = w["draft"].clone();
        draft["edges"].as_array_mut().unwrap().retain(|e| e["from"] != "reminder");
        let body = json!({ "revision": w["revision"], "definition": draft });
        let saved = api(&app, Method::PUT, &url, &ed, Some(body.clone())).await;
        assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
        let saved = saved.json();
        assert_eq!(saved["issues"][0]["node"], "reminder");
        assert_eq!(saved["issues"][0]["field"], "port:next");
        let stale = api(&app, Method::PUT, &url, &ed, Some(body)).await;
        assert_eq!((stale.status, stale.json()["error"].as_str()), (StatusCode::CONFLICT, Some("conflict")));

        let checked = api(&app, Method::POST, &format!("{url}/validate"), &vi, None).await;
        assert_eq!(checked.json().as_array().unwrap().len(), 1);
        let refused = api(&app, Method::POST, &format!("{url}/publish"), &ed, None).await;
        assert_eq!(refused.status, StatusCode::CONFLICT);
        let refused = refused.json();
        assert_eq!(refused["error"], "invalid_workflow");
        assert!(refused["detail"].as_str().unwrap().contains("'next'"), "{refused}");
        assert_eq!(refused["issues"][0]["node"], "reminder");

        // Fix it and publish version 1.
        let fixed = json!({ "revision": saved["revision"], "definition": w["draft"], "name": "Cart rescue" });
        let fixed = api(&app, Method::PUT, &url, &ed, Some(fixed)).await.json();
        assert_eq!(fixed["issues"], json!([]));
        let v1 = api(&app, Method::POST, &format!("{url}/publish"), &ed, None).await;
        assert_eq!(v1.status, StatusCode::OK, "{}", v1.body);
        let v1 = v1.json();
        assert_eq!((v1["status"].as_str(), v1["active_version"].as_i64()), (Some("active"), Some(1)));

        // Version 2 changes the offer; the diff says so.
        let mut draft2 = v1["draft"].clone();
        for n in draft2["nodes"].as_array_mut().unwrap() {
            if n["id"] == "offer" {
                n["value"] = json!(15.0);
            }
        }
        let body = json!({ "revision": v1["revision"], "definition": draft2 });
        assert_eq!(api(&app, Method::PUT, &url, &ed, Some(body)).await.status, StatusCode::OK);
        let v2 = api(&app, Method::POST, &format!("{url}/publish"), &ed, None).await.json();
        assert_eq!(v2["latest_version"], 2);
        let diff = api(&app, Method::GET, &format!("{url}/diff?from=1&to=2"), &vi, None).await;
        assert_eq!(diff.status, StatusCode::OK, "{}", diff.body);
        assert_eq!(
            diff.json()["nodes"],
            json!([{ "node": "offer", "label": "Offer", "change": "changed", "what": ["settings"] }])
        );
        let bad = api(&app, Method::GET, &format!("{url}/diff?from=latest"), &vi, None).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

        let versions = api(&app, Method::GET, &format!("{url}/versions"), &vi, None).await.json();
        assert_eq!(versions.as_array().unwrap().len(), 2);
        assert_eq!(versions[1]["published_by"], "editor key");
        let one = api(&app, Method::GET, &format!("{url}/versions/1"), &vi, None).await.json();
        assert_eq!(one["definition"], w["draft"]);
        assert_eq!(api(&app, Method::GET, &format!("{url}/versions/9"), &vi, None).await.status, StatusCode::NOT_FOUND);

        let back = api(&app, Method::POST, &format!("{url}/versions/1/rollback"), &ed, None).await.json();
        assert_eq!((back["latest_version"].as_i64(), back["active_version"].as_i64()), (Some(3), Some(3)));

        let paused = api(&app, Method::POST, &format!("{url}/pause"), &ed, None).await.json();
        assert_eq!(paused["status"], "paused");
        let resumed = api(&app, Method::POST, &format!("{url}/resume"), &ed, None).await.json();
        assert_eq!(resumed["status"], "active");

        // Viewers read everything and change nothing.
        assert_eq!(api(&app, Method::GET, &url, &vi, None).await.status, StatusCode::OK);
        for (method, path) in [
            (Method::POST, format!("{url}/publish")),
            (Method::POST, format!("{url}/pause")),
            (Method::DELETE, url.clone()),
            (Method::POST, "/api/v1/workflows".to_string()),
        ] {
            let r = api(&app, method, &path, &vi, Some(json!({}))).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.body);
        }

        let list = api(&app, Method::GET, "/api/v1/workflows?q=rescue", &vi, None).await.json();
        assert_eq!(list["items"][0]["name"], "Cart rescue");
        assert_eq!(api(&app, Method::DELETE, &url, &ed, None).await.status, StatusCode::NO_CONTENT);
        let list = api(&app, Method::GET, "/api/v1/workflows", &vi, None).await.json();
        assert_eq!(list["items"], json!([]));
        let archived = api(&app, Method::GET, "/api/v1/workflows?status=archived", &vi, None).await.json();
        assert_eq!(archived["items"][0]["workflow_id"], id.as_str());
    }
}

#[tokio::test]
async fn imports_are_checked_with_clear_errors() {
    for db in testing::all().await {
        let app = app(&db);
        let ed = key(&db, Role::Editor).await;
        let unknown_kind =
            json!({ "definition": { "schema_version": 1, "nodes": [{ "id": "a", "type": "teleport" }], "edges": [] } });
        let r = api(&app, Method::POST, "/api/v1/workflows", &ed, Some(unknown_kind)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.json()["detail"].as_str().unwrap().contains("teleport"), "{}", r.body);

        let future = json!({ "definition": { "schema_version": 7, "nodes": [], "edges": [] } });
        let r = api(&app, Method::POST, "/api/v1/workflows", &ed, Some(future)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.json()["detail"].as_str().unwrap().contains("schema_version 7"), "{}", r.body);

        let r = api(&app, Method::POST, "/api/v1/workflows", &ed, Some(json!({ "template": "nope" }))).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

        let good = json!({ "name": "Imported", "definition": app::workflow::templates::low_inventory() });
        let r = api(&app, Method::POST, "/api/v1/workflows", &ed, Some(good)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let id = r.json()["workflow_id"].as_str().unwrap().to_string();
        let not_json = api(&app, Method::POST, &format!("/api/v1/workflows/{id}/validate"), &ed, None).await;
        assert_eq!(not_json.json(), json!([]));
        let r = api(&app, Method::GET, "/api/v1/workflows/nope", &ed, None).await;
        assert_eq!((r.status, r.json()["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    }
}
