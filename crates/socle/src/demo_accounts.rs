//! The demo's accounts: one person per role, so every view can be tried.
//! Their tokens are re-issued at each start (secrets are stored hashed and
//! cannot be shown again) and printed with the password.

use anyhow::Context;
use chrono::Utc;
use socle_api::policy::hash_password;
use socle_demo::{PARTNER_ID, SYNDICATE_ID};
use socle_domain::{Email, OrganisationId, Role, TokenKind, TokenScope, User};
use socle_storage::DynStore;

use crate::admin::issue_token;

/// Shared by every demo account; the demo is not for production data.
pub const DEMO_PASSWORD: &str = "socle-demo-2026";
const LABEL: &str = "démo";
const SAINT_AUBIN: &str = "commune-saint-aubin";

struct DemoAccount {
    email: &'static str,
    name: &'static str,
    org: &'static str,
    role: Role,
    scope: TokenScope,
    what: &'static str,
}

const ACCOUNTS: [DemoAccount; 5] = [
    DemoAccount {
        email: "admin@val-de-lemance.fr",
        name: "Claire Admin",
        org: SYNDICATE_ID,
        role: Role::Admin,
        scope: TokenScope::Admin,
        what: "administratrice du syndicat",
    },
    DemoAccount {
        email: "admin@saint-aubin-sur-lemance.fr",
        name: "Hugo Admin",
        org: SAINT_AUBIN,
        role: Role::Admin,
        scope: TokenScope::Admin,
        what: "administrateur de Saint-Aubin",
    },
    DemoAccount {
        email: "agent@saint-aubin-sur-lemance.fr",
        name: "Karim Technicien",
        org: SAINT_AUBIN,
        role: Role::Agent,
        scope: TokenScope::Write,
        what: "agent technique de Saint-Aubin",
    },
    DemoAccount {
        email: "elu@saint-aubin-sur-lemance.fr",
        name: "Martine Élue",
        org: SAINT_AUBIN,
        role: Role::Elected,
        scope: TokenScope::Read,
        what: "élue de Saint-Aubin",
    },
    DemoAccount {
        email: "technicien@eclairages-du-poitou.fr",
        name: "Paul Prestataire",
        org: PARTNER_ID,
        role: Role::Partner,
        scope: TokenScope::Read,
        what: "prestataire éclairage",
    },
];

async fn ensure_user(store: &DynStore, a: &DemoAccount, password_hash: &str) -> anyhow::Result<User> {
    let email = Email::parse(a.email)?;
    let user = match store.credentials(&email).await? {
        Some(c) => c.user,
        None => store.create_user(&email, a.name, Some(password_hash)).await?,
    };
    store.grant(user.id, &OrganisationId::parse(a.org)?, a.role).await?;
    Ok(user)
}

pub async fn create(store: &DynStore) -> anyhow::Result<()> {
    let hash = hash_password(DEMO_PASSWORD).map_err(|e| anyhow::anyhow!("hashing the demo password: {e}"))?;
    // Tokens of a previous run can no longer be shown: retire them.
    for t in store.list_tokens(None).await? {
        if t.label == LABEL && t.revoked_at.is_none() {
            store.revoke_token(t.id, Utc::now()).await?;
        }
    }
    let mut lines = Vec::new();
    for a in &ACCOUNTS {
        let user = ensure_user(store, a, &hash).await.with_context(|| format!("demo account {}", a.email))?;
        let org = OrganisationId::parse(a.org)?;
        let (_, secret) = issue_token(store, TokenKind::Personal, Some(&user), &org, a.scope, 30, LABEL).await?;
        lines.push(format!("  {:<8} {:<38} {:<32} {secret}", a.role.as_str(), a.email, a.what));
    }
    let org = OrganisationId::parse(SAINT_AUBIN)?;
    let (_, ingestion) = issue_token(store, TokenKind::Ingestion, None, &org, TokenScope::Write, 30, LABEL).await?;
    println!("\nComptes de démonstration / demo accounts — mot de passe / password: {DEMO_PASSWORD}");
    println!("Jetons d'API / API tokens (Authorization: Bearer …):");
    for l in lines {
        println!("{l}");
    }
    println!("  ingestion token (Saint-Aubin): {ingestion}\n");
    Ok(())
}
