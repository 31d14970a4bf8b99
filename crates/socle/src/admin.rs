//! `socle org|user|token`: administration from the command line, for the
//! first administrator of an instance and for scripts. Every change is
//! written to the audit trail as done by `system:cli`.

use std::io::Read;

use anyhow::{bail, Context};
use chrono::{Duration, Utc};
use clap::{Args, Subcommand};
use socle_api::policy::{hash_password, hash_secret, new_token_secret};
use socle_domain::organisation::parse_timezone;
use socle_domain::{
    ApiToken, AuditEntry, Email, NewOrganisation, OfficialCode, OrganisationId, OrganisationKind, Role, TokenKind,
    TokenScope, User,
};
use socle_storage::DynStore;

use crate::config::Config;
use crate::server::open_store;

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Create or update an organisation.
    Create(OrgArgs),
    /// List organisations.
    List,
}

#[derive(Args)]
pub struct OrgArgs {
    /// Identifier (a-z, 0-9, -), e.g. commune-saint-aubin.
    #[arg(long)]
    id: String,
    /// commune, epci, syndicat, departement or partenaire.
    #[arg(long)]
    kind: String,
    #[arg(long)]
    name: String,
    /// INSEE code (5 characters) or SIREN (9 digits).
    #[arg(long)]
    code: String,
    #[arg(long)]
    parent: Option<String>,
    #[arg(long)]
    population: Option<u32>,
    #[arg(long, default_value = "Europe/Paris")]
    timezone: String,
    /// Days of raw observations kept (rollups are kept for ever).
    #[arg(long)]
    retention_days: Option<u32>,
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input (one line) if --password-stdin.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    List,
    /// Give a user a role in an organisation.
    Grant(GrantArgs),
    /// Take a role back.
    Revoke(GrantArgs),
}

#[derive(Args)]
pub struct GrantArgs {
    #[arg(long)]
    email: String,
    #[arg(long)]
    org: String,
    /// admin, agent, elected or partner.
    #[arg(long)]
    role: String,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a personal token (--email) or an ingestion token (--ingestion); the secret is printed once.
    Create {
        /// The user the token acts for.
        #[arg(long, required_unless_present = "ingestion")]
        email: Option<String>,
        /// An ingestion token for network servers instead of a personal one.
        #[arg(long, conflicts_with = "email")]
        ingestion: bool,
        #[arg(long)]
        org: String,
        /// read, write or admin.
        #[arg(long, default_value = "read")]
        scope: String,
        #[arg(long, default_value_t = 90)]
        days: u32,
        #[arg(long, default_value = "")]
        label: String,
    },
    List,
    Revoke {
        id: uuid::Uuid,
    },
}

async fn audit(store: &DynStore, org: Option<&OrganisationId>, action: &str, object: &str) -> anyhow::Result<()> {
    store
        .append_audit(&AuditEntry {
            at: Utc::now(),
            actor: "system:cli".into(),
            organisation: org.cloned(),
            action: action.into(),
            object: object.into(),
            detail: String::new(),
        })
        .await?;
    Ok(())
}

async fn user_by_email(store: &DynStore, email: &str) -> anyhow::Result<User> {
    let email = Email::parse(email).context("e-mail address")?;
    Ok(store.credentials(&email).await?.context("no user with this e-mail address")?.user)
}

pub async fn org(config: &Config, command: OrgCommand) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    match command {
        OrgCommand::Create(a) => {
            let org = NewOrganisation {
                id: OrganisationId::parse(&a.id)?,
                kind: a.kind.parse::<OrganisationKind>()?,
                name: a.name,
                code: OfficialCode::parse(&a.code)?,
                parent: a.parent.as_deref().map(OrganisationId::parse).transpose()?,
                population: a.population,
                timezone: parse_timezone(&a.timezone)?,
                retention_days: a.retention_days,
            };
            let saved = store.upsert_organisation(&org).await?;
            audit(&store, Some(&saved.id), "organisation.upsert", saved.id.as_str()).await?;
            println!("{}\t{}\t{}", saved.id, saved.kind.as_str(), saved.name);
        }
        OrgCommand::List => {
            for o in store.list_organisations().await? {
                let parent = o.parent.map(|p| p.to_string()).unwrap_or_default();
                println!("{}\t{}\t{}\t{}\t{}", o.id, o.kind.as_str(), o.code.as_str(), parent, o.name);
            }
        }
    }
    Ok(())
}

pub async fn user(config: &Config, command: UserCommand) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    match command {
        UserCommand::Create { email, name, password_stdin } => {
            let email = Email::parse(&email).context("e-mail address")?;
            let hash = if password_stdin {
                let mut password = String::new();
                std::io::stdin().read_to_string(&mut password)?;
                let password = password.trim_end_matches(['\n', '\r']);
                if password.chars().count() < 12 {
                    bail!("the password must have at least 12 characters");
                }
                Some(hash_password(password).map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?)
            } else {
                None
            };
            let user = store.create_user(&email, &name, hash.as_deref()).await?;
            audit(&store, None, "user.create", &format!("user:{}", user.id)).await?;
            println!("{}", user.id);
        }
        UserCommand::List => {
            for u in store.list_users().await? {
                let roles: Vec<String> =
                    u.memberships.iter().map(|m| format!("{}:{}", m.organisation, m.role.as_str())).collect();
                println!("{}\t{}\t{}\t{}", u.id, u.email.as_str(), u.display_name, roles.join(","));
            }
        }
        UserCommand::Grant(g) => {
            let user = user_by_email(&store, &g.email).await?;
            let org = OrganisationId::parse(&g.org)?;
            let role: Role = g.role.parse()?;
            store.grant(user.id, &org, role).await?;
            audit(&store, Some(&org), "membership.grant", &format!("user:{} {}", user.id, role.as_str())).await?;
        }
        UserCommand::Revoke(g) => {
            let user = user_by_email(&store, &g.email).await?;
            let org = OrganisationId::parse(&g.org)?;
            let role: Role = g.role.parse()?;
            if !store.revoke(user.id, &org, role).await? {
                bail!("this user does not hold this role in this organisation");
            }
            audit(&store, Some(&org), "membership.revoke", &format!("user:{} {}", user.id, role.as_str())).await?;
        }
    }
    Ok(())
}

/// Creates a token and returns its secret (shown once, stored hashed).
pub async fn issue_token(
    store: &DynStore,
    kind: TokenKind,
    user: Option<&User>,
    org: &OrganisationId,
    scope: TokenScope,
    days: u32,
    label: &str,
) -> anyhow::Result<(ApiToken, String)> {
    let secret = new_token_secret(kind);
    let now = Utc::now();
    let token = ApiToken {
        id: uuid::Uuid::new_v4(),
        kind,
        label: label.to_owned(),
        user: user.map(|u| u.id),
        organisation: org.clone(),
        scope,
        created_at: now,
        expires_at: Some(now + Duration::days(i64::from(days.max(1)))),
        revoked_at: None,
    };
    store.create_token(&token, &hash_secret(&secret)).await?;
    audit(store, Some(org), "token.create", &format!("token:{}", token.id)).await?;
    Ok((token, secret))
}

pub async fn token(config: &Config, command: TokenCommand) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    match command {
        TokenCommand::Create { email, ingestion, org, scope, days, label } => {
            let org = OrganisationId::parse(&org)?;
            store.organisation(&org).await?.context("no such organisation")?;
            let (kind, user) = if ingestion {
                (TokenKind::Ingestion, None)
            } else {
                let user = user_by_email(&store, email.as_deref().unwrap_or_default()).await?;
                if !user.memberships.iter().any(|m| m.organisation == org) {
                    bail!("this user holds no role in {org}: grant one first");
                }
                (TokenKind::Personal, Some(user))
            };
            let scope: TokenScope = if ingestion { TokenScope::Write } else { scope.parse()? };
            let (token, secret) = issue_token(&store, kind, user.as_ref(), &org, scope, days, &label).await?;
            eprintln!("token {} ({}), valid until {}", token.id, kind.as_str(), token.expires_at.unwrap_or_default());
            println!("{secret}");
        }
        TokenCommand::List => {
            for t in store.list_tokens(None).await? {
                let state = if t.is_usable(Utc::now()) { "active" } else { "revoked/expired" };
                let user = t.user.map(|u| u.to_string()).unwrap_or_default();
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{state}\t{}",
                    t.id,
                    t.kind.as_str(),
                    t.organisation,
                    t.scope.as_str(),
                    user,
                    t.label
                );
            }
        }
        TokenCommand::Revoke { id } => {
            if !store.revoke_token(id, Utc::now()).await? {
                bail!("no active token with this id");
            }
            audit(&store, None, "token.revoke", &format!("token:{id}")).await?;
        }
    }
    Ok(())
}
