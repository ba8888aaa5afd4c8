//! Headless administration: create an admin or an API key against the configured database.

use app::model::Role;
use app::service::{self, Actor, Ctx};
use std::io::BufRead;

/// `nudge admin create --email E --password-stdin`
pub async fn admin_create(ctx: &Ctx, email: &str, stdin: impl BufRead) -> anyhow::Result<()> {
    let password = read_password(stdin)?;
    let user = if ctx.needs_setup().await? {
        service::auth::setup_first_admin(ctx, email, &password).await?
    } else {
        let new = service::users::NewUser { email, password: &password, role: Role::Admin };
        service::users::create(ctx, &Actor::system(), new).await?
    };
    println!("Admin {} created (id {}).", user.email, user.user_id);
    Ok(())
}

/// `nudge api-key create --name N --role R`: prints the key, once.
pub async fn api_key_create(ctx: &Ctx, name: &str, role: Role) -> anyhow::Result<()> {
    let created = service::api_keys::create(ctx, &Actor::system(), name, role).await?;
    eprintln!("API key '{}' ({}) created. It is shown once:", created.api_key.name, created.api_key.role);
    println!("{}", created.secret);
    Ok(())
}

fn read_password(mut stdin: impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    stdin.read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        anyhow::bail!("no password on standard input; pipe it in, e.g. `echo \"$PASSWORD\" | nudge admin create --email E --password-stdin`");
    }
    Ok(password)
}
