//! The headless commands, against a real database: `nudge admin create` and
//! `nudge api-key create`.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use app::model::Role;
use app::service::{self, Ctx};
use app::store::{self, testing};

#[tokio::test]
async fn admin_create_sets_up_a_headless_install_and_adds_further_admins() {
    for db in testing::all().await {
        let ctx = Ctx::new(db.clone());
        server::cli::admin_create(&ctx, "ops@example.com", "first admin password\n".as_bytes()).await.unwrap();
        assert!(!ctx.needs_setup().await.unwrap(), "the browser set-up page is no longer offered");
        let user = service::auth::login(&ctx, "ops@example.com", "first admin password", None).await.unwrap();
        assert_eq!(user.role, Role::Admin);

        server::cli::admin_create(&ctx, "second@example.com", "second admin password\r\n".as_bytes()).await.unwrap();
        assert_eq!(store::users::count_admins(&db).await.unwrap(), 2);

        let empty = server::cli::admin_create(&ctx, "third@example.com", "".as_bytes()).await.unwrap_err();
        assert!(empty.to_string().contains("no password on standard input"), "{empty}");
        let weak = server::cli::admin_create(&ctx, "third@example.com", "short\n".as_bytes()).await.unwrap_err();
        assert!(weak.to_string().contains("at least 10 characters"), "{weak}");
        let dup = server::cli::admin_create(&ctx, "OPS@example.com", "yet another password\n".as_bytes()).await;
        assert!(dup.is_err(), "emails are unique regardless of case");
        assert_eq!(store::users::count(&db).await.unwrap(), 2);
    }
}

#[tokio::test]
async fn api_key_create_stores_a_usable_key_with_its_role() {
    for db in testing::all().await {
        let ctx = Ctx::new(db.clone());
        server::cli::api_key_create(&ctx, "deploy bot", Role::Editor).await.unwrap();
        let page = service::api_keys::list(&ctx, &service::Actor::system(), None, None).await.unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].name, "deploy bot");
        assert_eq!(page.items[0].role, Role::Editor);
        let blank = server::cli::api_key_create(&ctx, "  ", Role::Admin).await.unwrap_err();
        assert!(blank.to_string().contains("name"), "{blank}");
    }
}
