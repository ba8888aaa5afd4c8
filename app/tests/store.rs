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

/// A SQLite database written before ids were stored as blobs (migrations up
/// to 0010) reads the same after `0011_binary_ids`: every id comes back as
/// the text it was, lookups and keyset pages by id work, and new rows sort
/// after the old ones.
#[tokio::test]
async fn sqlite_ids_written_as_text_read_the_same_once_stored_as_blobs() {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    let path = std::env::temp_dir().join(format!("nudge-test-{}.db", uuid::Uuid::new_v4().simple()));
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(&path).create_if_missing(true).foreign_keys(true))
        .await
        .unwrap();
    let all = sqlx::migrate!("../migrations/sqlite");
    let before = sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(all.migrations.iter().filter(|m| m.version <= 10).cloned().collect()),
        ..sqlx::migrate!("../migrations/sqlite")
    };
    before.run(&pool).await.unwrap();

    let (source, workflow, event, run, alert) =
        (store::new_id(), store::new_id(), store::new_id(), store::new_id(), store::new_id());
    let action_key = format!("{run}:offer");
    let statements = [
        format!(
            "insert into source (source_id, name, slug, mapping, secret, created_at, updated_at) \
             values ('{source}', 'Shop', 'shop', '{{}}', 'whsec_x', 1, 1)"
        ),
        format!(
            "insert into workflow (workflow_id, name, status, draft, active_version, latest_version, created_by, \
             created_at, updated_by, updated_at) values ('{workflow}', 'Cart', 'active', '{{}}', 1, 1, 'u', 1, 'u', 1)"
        ),
        format!(
            "insert into workflow_version (workflow_id, version, definition, published_by, published_at) \
             values ('{workflow}', 1, '{{}}', 'u', 1)"
        ),
        format!(
            "insert into event (event_id, source_id, external_id, name, customer_id, occurred_at, received_at, payload) \
             values ('{event}', '{source}', 'x1', 'cart_updated', 'ana', 1, 1, '{{}}')"
        ),
        format!(
            "insert into event_dedupe (source_id, external_id, event_id, created_at) values ('{source}', 'x1', '{event}', 1)"
        ),
        format!(
            "insert into run (run_id, workflow_id, version, customer_id, status, at_node, wake_at, state, \
             trigger_event_id, started_at, updated_at) \
             values ('{run}', '{workflow}', 1, 'ana', 'waiting', 'wait', 99, '{{}}', '{event}', 1, 1)"
        ),
        format!(
            "insert into run_step (run_id, seq, node, outcome, detail, at) values ('{run}', 1, 'trigger', 'next', null, 1)"
        ),
        format!("insert into workflow_entry (workflow_id, customer_id, last_entered_at) values ('{workflow}', 'ana', 1)"),
        format!(
            "insert into action (action_key, run_id, workflow_id, node, kind, payload, status, created_at, updated_at) \
             values ('{action_key}', '{run}', '{workflow}', 'offer', 'issue_offer', '{{}}', 'done', 1, 1)"
        ),
        format!(
            "insert into offer (code, action_key, workflow_id, run_id, customer_id, discount, value, expires_at, created_at) \
             values ('SAVE-1', '{action_key}', '{workflow}', '{run}', 'ana', 'percent', 10, 99, 1)"
        ),
        format!(
            "insert into alert (alert_id, action_key, workflow_id, run_id, customer_id, severity, audience, message, \
             status, created_at) values ('{alert}', '{run}:alert', '{workflow}', '{run}', 'ana', 'warning', 'cs', 'hi', 'open', 1)"
        ),
    ];
    for sql in &statements {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    all.run(&pool).await.unwrap();
    let kinds: Vec<String> =
        sqlx::query_scalar("select typeof(run_id) || typeof(workflow_id) || typeof(trigger_event_id) from run")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(kinds, ["blobblobblob"], "the ids are stored as blobs");
    let db = store::Db::Sqlite(pool);

    let r = store::runs::get(&db, &run).await.unwrap().expect("the run by its id");
    assert_eq!((r.run_id.as_str(), r.workflow_id.as_str(), r.trigger_event_id.as_str()), (&*run, &*workflow, &*event));
    assert_eq!(store::runs::steps(&db, &run).await.unwrap().len(), 1, "the step of the run");
    assert_eq!(store::runs::actions(&db, &run).await.unwrap()[0].action_key, action_key);
    let e = store::events::get(&db, &event).await.unwrap().expect("the event by its id");
    assert_eq!((e.event_id.as_str(), e.source_id.as_str()), (&*event, &*source));
    assert_eq!(store::sources::find_by_id(&db, &source).await.unwrap().unwrap().source_id, source);
    assert_eq!(store::workflows::find(&db, &workflow).await.unwrap().unwrap().workflow_id, workflow);
    assert_eq!(store::workflows::versions(&db, &workflow).await.unwrap().len(), 1);
    assert_eq!(store::offers::offer(&db, "SAVE-1").await.unwrap().unwrap().run_id, run);
    assert_eq!(store::offers::alert(&db, &alert).await.unwrap().unwrap().workflow_id, workflow);
    let query = store::runs::RunQuery { workflow_id: Some(&workflow), ..Default::default() };
    let listed = store::runs::list(&db, &query, None, 10).await.unwrap();
    assert_eq!(listed.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(), [run.as_str()]);
    let later = store::new_id();
    assert!(store::runs::list(&db, &query, Some(&later), 10).await.unwrap().len() == 1, "a page before a newer id");
    assert!(store::runs::list(&db, &query, Some(&run), 10).await.unwrap().is_empty(), "nothing before the oldest");
    let entered = store::runs::last_entered_of(&db, &["ana".to_string()]).await.unwrap();
    assert_eq!(entered, [(workflow.clone(), "ana".to_string(), 1)]);
    let duplicate = store::events::Write::Event(store::events::NewEvent {
        event_id: store::new_id(),
        source_id: source.clone(),
        external_id: "x1".into(),
        name: "cart_updated".into(),
        customer_id: "ana".into(),
        occurred_at: 2,
        received_at: 2,
        payload: "{}".into(),
        parsed: serde_json::json!({}),
        profile: serde_json::Map::new(),
        offer_code: None,
        replay_of: None,
    });
    let written = store::group::store_only(&db, 2, &[duplicate]).await.unwrap();
    assert_eq!(written, [store::events::Written::Duplicate { event_id: event.clone() }], "the old dedupe key holds");
    let _ = std::fs::remove_file(&path);
}
