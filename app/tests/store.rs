//! The storage suite: every test runs on SQLite, and on Postgres when
//! TEST_POSTGRES_URL is set, each on a fresh database or schema.
#![cfg(feature = "ssr")]
#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use app::error::AppError;
use app::model::Role;
use app::service::{self, Actor, Ctx};
use app::store::{self, sessions::DbSessionStore, testing};
use std::collections::HashMap;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{ExpiredDeletion, SessionStore};

#[tokio::test]
async fn users_are_unique_by_email_and_listed_in_pages() {
    for db in testing::all().await {
        let backend = db.backend();
        assert_eq!(store::users::count(&db).await.unwrap(), 0, "{backend}");
        for i in 0..5 {
            store::users::insert(&db, &store::new_id(), &format!("u{i}@example.com"), "hash", Role::Viewer)
                .await
                .unwrap();
        }
        let dup = store::users::insert(&db, &store::new_id(), "u0@example.com", "hash", Role::Admin).await;
        let err = AppError::from(dup.expect_err("duplicate email must fail"));
        assert!(matches!(err, AppError::Conflict(_)), "{backend}: {err:?}");

        let first = store::users::list(&db, None, 3).await.unwrap();
        assert_eq!(first.len(), 3, "{backend}");
        let rest = store::users::list(&db, Some(&first[2].user_id), 3).await.unwrap();
        assert_eq!(rest.len(), 2, "{backend}");
        let emails: Vec<_> = first.iter().chain(&rest).map(|u| u.email.as_str()).collect();
        assert_eq!(emails, ["u0@example.com", "u1@example.com", "u2@example.com", "u3@example.com", "u4@example.com"]);

        let id = &first[1].user_id;
        assert!(store::users::update_role(&db, id, Role::Editor).await.unwrap());
        assert_eq!(store::users::find_by_id(&db, id).await.unwrap().unwrap().role(), Role::Editor);
        assert!(store::users::delete(&db, id).await.unwrap());
        assert!(store::users::find_by_id(&db, id).await.unwrap().is_none(), "{backend}");
        assert_eq!(store::users::count(&db).await.unwrap(), 4, "{backend}");
    }
}

#[tokio::test]
async fn only_one_first_admin_can_ever_be_set_up() {
    for db in testing::all().await {
        let backend = db.backend();
        assert!(store::users::insert_first(&db, &store::new_id(), "a@example.com", "h").await.unwrap(), "{backend}");
        assert!(!store::users::insert_first(&db, &store::new_id(), "b@example.com", "h").await.unwrap(), "{backend}");
        assert_eq!(store::users::count_admins(&db).await.unwrap(), 1, "{backend}");

        let ctx = Ctx::new(db.clone());
        let err = service::auth::setup_first_admin(&ctx, "c@example.com", "long enough password").await.unwrap_err();
        assert!(matches!(err, AppError::Conflict(_)), "{backend}: {err:?}");
    }
}

#[tokio::test]
async fn api_keys_are_found_by_hash_until_revoked() {
    for db in testing::all().await {
        let backend = db.backend();
        let ctx = Ctx::new(db.clone());
        let created = service::api_keys::create(&ctx, &Actor::system(), "shop backend", Role::Editor).await.unwrap();
        assert!(created.secret.starts_with("nudge_") && created.secret.len() == 70, "{backend}");
        assert!(created.secret.starts_with(&created.api_key.prefix));

        let actor = service::auth::actor_for_api_key(&ctx, &created.secret).await.unwrap();
        assert_eq!(actor.role, Role::Editor, "{backend}");
        assert_eq!(actor.me().name, "shop backend");
        let wrong = service::auth::actor_for_api_key(&ctx, "nudge_0000").await.unwrap_err();
        assert!(matches!(wrong, AppError::Unauthorized(_)), "{backend}");

        // The secret itself is not stored anywhere.
        let stored: Vec<String> =
            app::with_pool!(&db, p => sqlx::query_scalar("select key_hash from api_key").fetch_all(p).await).unwrap();
        assert_eq!(stored, vec![service::auth::hash_api_key(&created.secret)]);

        service::api_keys::revoke(&ctx, &Actor::system(), &created.api_key.api_key_id).await.unwrap();
        let revoked = service::auth::actor_for_api_key(&ctx, &created.secret).await.unwrap_err();
        assert!(matches!(revoked, AppError::Unauthorized(_)), "{backend}");
        let again = service::api_keys::revoke(&ctx, &Actor::system(), &created.api_key.api_key_id).await.unwrap_err();
        assert!(matches!(again, AppError::NotFound(_)), "{backend}");

        let page = service::api_keys::list(&ctx, &Actor::system(), None, None).await.unwrap();
        assert_eq!(page.items.len(), 1);
        assert!(page.items[0].revoked_at.is_some(), "{backend}");
        assert_eq!(store::api_keys::count_active(&db).await.unwrap(), 0);
    }
}

#[tokio::test]
async fn sessions_persist_expire_and_are_deleted() {
    for db in testing::all().await {
        let backend = db.backend();
        let store = DbSessionStore::new(db.clone());
        let mut data = HashMap::new();
        data.insert("user_id".to_string(), serde_json::json!("u-1"));
        let mut live = Record {
            id: Id::default(),
            data: data.clone(),
            expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        };
        store.create(&mut live).await.unwrap();
        let loaded = store.load(&live.id).await.unwrap().expect("the session was saved");
        assert_eq!(loaded.data, data, "{backend}");

        // A new store over the same database (a restart) still has it.
        let restarted = DbSessionStore::new(db.clone());
        assert!(restarted.load(&live.id).await.unwrap().is_some(), "{backend}");

        let mut old = Record {
            id: Id::default(),
            data,
            expiry_date: time::OffsetDateTime::now_utc() - time::Duration::minutes(1),
        };
        store.create(&mut old).await.unwrap();
        assert!(store.load(&old.id).await.unwrap().is_none(), "{backend}: expired sessions never load");
        store.delete_expired().await.unwrap();
        let left: i64 =
            app::with_pool!(&db, p => sqlx::query_scalar("select count(*) from session").fetch_one(p).await).unwrap();
        assert_eq!(left, 1, "{backend}");

        store.delete(&live.id).await.unwrap();
        assert!(store.load(&live.id).await.unwrap().is_none(), "{backend}");
    }
}

#[tokio::test]
async fn roles_are_enforced_by_the_service_layer() {
    for db in testing::all().await {
        let backend = db.backend();
        let ctx = Ctx::new(db.clone());
        let admin = service::auth::setup_first_admin(&ctx, "Admin@Example.com", "correct horse battery").await.unwrap();
        assert_eq!(admin.email, "admin@example.com", "emails are stored lower-case");
        let new =
            service::users::NewUser { email: "viewer@example.com", password: "viewer password 1", role: Role::Viewer };
        let viewer_user = service::users::create(&ctx, &Actor::system(), new).await.unwrap();
        let viewer = service::auth::actor_for_user(&ctx, &viewer_user.user_id).await.unwrap().unwrap();
        assert_eq!(viewer.role, Role::Viewer);

        let denied = service::api_keys::create(&ctx, &viewer, "x", Role::Admin).await.unwrap_err();
        assert!(matches!(denied, AppError::Forbidden(_)), "{backend}: {denied:?}");
        assert!(matches!(service::users::list(&ctx, &viewer, None, None).await, Err(AppError::Forbidden(_))));
        assert!(service::system_status(&ctx, &viewer).await.is_ok(), "viewers may read");

        // The last admin can be neither demoted nor removed.
        let admin_actor = service::auth::actor_for_user(&ctx, &admin.user_id).await.unwrap().unwrap();
        let demote = service::users::set_role(&ctx, &admin_actor, &admin.user_id, Role::Viewer).await.unwrap_err();
        assert!(matches!(demote, AppError::Conflict(_)), "{backend}");
        let remove_self = service::users::delete(&ctx, &admin_actor, &admin.user_id).await.unwrap_err();
        assert!(matches!(remove_self, AppError::Conflict(_)), "{backend}");

        // Login: wrong password and unknown account answer the same.
        let wrong = service::auth::login(&ctx, "admin@example.com", "nope nope nope", None).await.unwrap_err();
        let unknown = service::auth::login(&ctx, "ghost@example.com", "nope nope nope", None).await.unwrap_err();
        assert_eq!(wrong, unknown, "{backend}");
        assert_eq!(wrong.status(), 401);
        let ok = service::auth::login(&ctx, " ADMIN@example.com", "correct horse battery", None).await.unwrap();
        assert_eq!(ok.user_id, admin.user_id);
    }
}

fn new_event(
    source: &str,
    external: &str,
    customer: &str,
    at: i64,
    profile: serde_json::Value,
) -> store::events::Write {
    store::events::Write::Event(store::events::NewEvent {
        event_id: store::new_id(),
        source_id: source.into(),
        external_id: external.into(),
        name: "cart_updated".into(),
        customer_id: customer.into(),
        occurred_at: at,
        received_at: at,
        payload: "{}".into(),
        parsed: serde_json::json!({}),
        profile: profile.as_object().cloned().unwrap_or_default(),
        offer_code: None,
        replay_of: None,
    })
}

#[tokio::test]
async fn one_group_merges_a_customers_events_and_drops_repeats() {
    use store::events::Written;
    for db in testing::all().await {
        let backend = db.backend();
        let ctx = Ctx::new(db.clone());
        let mapping = app::model::Mapping {
            event_name: "$.type".into(),
            customer_id: "$.c".into(),
            event_id: "$.id".into(),
            timestamp: None,
            profile: vec![],
            offer_code: None,
        };
        let src = service::sources::create(
            &ctx,
            &Actor::system(),
            service::sources::NewSourceInput { name: "S", slug: "s", mapping: &mapping },
        )
        .await
        .unwrap();
        let sid = src.source.source_id.as_str();
        let group = vec![
            new_event(sid, "a", "c-1", 2_000, serde_json::json!({ "email": "old@x.io", "tier": "gold" })),
            new_event(sid, "b", "c-1", 1_000, serde_json::json!({ "email": "new@x.io" })),
            new_event(sid, "a", "c-1", 3_000, serde_json::json!({})),
            new_event(sid, "c", "c-2", 5_000, serde_json::json!({})),
        ];
        let out = store::group::store_only(&db, 0, &group).await.unwrap();
        assert!(matches!(out[0], Written::Accepted { .. }) && matches!(out[1], Written::Accepted { .. }), "{backend}");
        let Written::Accepted { event_id: first } = &out[0] else { unreachable!() };
        assert_eq!(out[2], Written::Duplicate { event_id: first.clone() }, "{backend}: a repeat in the same group");
        let c1 = store::events::customer(&db, "c-1").await.unwrap().unwrap().to_customer();
        assert_eq!(c1.event_count, 2, "{backend}");
        assert_eq!((c1.first_seen_at, c1.last_seen_at), (1_000, 2_000), "{backend}");
        assert_eq!(c1.attributes["email"], "new@x.io", "{backend}: the later event's value wins");
        assert_eq!(c1.attributes["tier"], "gold", "{backend}");

        // A later group: the known id is a duplicate, the customer accumulates.
        let out = store::group::store_only(
            &db,
            0,
            &[
                new_event(sid, "b", "c-1", 9_000, serde_json::json!({})),
                new_event(sid, "d", "c-1", 9_000, serde_json::json!({ "tier": "silver" })),
            ],
        )
        .await
        .unwrap();
        assert!(matches!(out[0], Written::Duplicate { .. }), "{backend}");
        let c1 = store::events::customer(&db, "c-1").await.unwrap().unwrap().to_customer();
        assert_eq!((c1.event_count, c1.last_seen_at), (3, 9_000), "{backend}");
        assert_eq!(c1.attributes["tier"], "silver");
        assert_eq!(c1.attributes["email"], "new@x.io");
        let source = store::sources::find_by_slug(&db, "s").await.unwrap().unwrap();
        assert_eq!((source.accepted_count, source.duplicate_count), (4, 2), "{backend}");

        // Nested values are replaced, not merged, on every backend.
        let address =
            |v: serde_json::Value| new_event(sid, &store::new_id(), "c-3", 1, serde_json::json!({ "address": v }));
        store::group::store_only(&db, 0, &[address(serde_json::json!({ "city": "Lyon", "zip": "69001" }))])
            .await
            .unwrap();
        store::group::store_only(&db, 0, &[address(serde_json::json!({ "city": "Nice" }))]).await.unwrap();
        let c3 = store::events::customer(&db, "c-3").await.unwrap().unwrap().to_customer();
        assert_eq!(c3.attributes["address"], serde_json::json!({ "city": "Nice" }), "{backend}");
    }
}
