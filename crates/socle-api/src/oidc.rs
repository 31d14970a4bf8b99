//! Sign-in through an OpenID Connect provider (ProConnect, Keycloak…):
//! authorization code flow with PKCE (S256), state and nonce, with the
//! `openidconnect` crate. The provider's metadata and keys are read at first
//! use and refreshed every 15 minutes, so Socle starts even when the
//! provider is down and follows key rotations.

use std::time::{Duration, Instant};

use chrono::Utc;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use socle_storage::{Accounts, PendingOidcLogin};

use crate::policy::hash_secret;
use crate::settings::OidcSettings;

type Client =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

const METADATA_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a person has to finish signing in at the provider.
const LOGIN_TTL: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// What the provider vouches for. Personal data: never logged.
#[derive(Clone, PartialEq)]
pub struct OidcIdentity {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
}

impl std::fmt::Debug for OidcIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OidcIdentity(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the provider's metadata could not be read: {0}")]
    Discovery(String),
    #[error("unknown, used or expired state")]
    UnknownState,
    #[error("the code exchange failed: {0}")]
    Exchange(String),
    #[error("the ID token is not valid: {0}")]
    IdToken(String),
    #[error("storage: {0}")]
    Store(#[from] socle_storage::StoreError),
}

pub struct Provider {
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: ClientSecret,
    scopes: Vec<String>,
    redirect: RedirectUrl,
    http: openidconnect::reqwest::Client,
    cache: tokio::sync::Mutex<Option<(Instant, Client)>>,
}

impl Provider {
    pub fn new(s: &OidcSettings, public_url: &str) -> Result<Self, String> {
        let http = openidconnect::reqwest::ClientBuilder::new()
            // Following redirects would let a provider's answer steer Socle's requests (SSRF).
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| format!("HTTP client for OpenID Connect: {e}"))?;
        Ok(Self {
            issuer: IssuerUrl::new(s.issuer.clone()).map_err(|e| format!("oidc.issuer: {e}"))?,
            client_id: ClientId::new(s.client_id.clone()),
            client_secret: ClientSecret::new(s.client_secret.clone()),
            scopes: s.scopes.iter().filter(|s| s.as_str() != "openid").cloned().collect(),
            redirect: RedirectUrl::new(format!("{public_url}/connexion/oidc/retour"))
                .map_err(|e| format!("public_url: {e}"))?,
            http,
            cache: tokio::sync::Mutex::new(None),
        })
    }

    async fn client(&self) -> Result<Client, OidcError> {
        let mut cache = self.cache.lock().await;
        if let Some((at, client)) = cache.as_ref() {
            if at.elapsed() < METADATA_TTL {
                return Ok(client.clone());
            }
        }
        let metadata = CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| OidcError::Discovery(error_chain(&e)))?;
        let client =
            CoreClient::from_provider_metadata(metadata, self.client_id.clone(), Some(self.client_secret.clone()))
                .set_redirect_uri(self.redirect.clone());
        *cache = Some((Instant::now(), client.clone()));
        Ok(client)
    }

    /// The provider's authorization URL for a new sign-in, its state, nonce
    /// and PKCE verifier kept (single use, ten minutes) for the callback.
    pub async fn begin(&self, store: &dyn Accounts, return_to: &str) -> Result<String, OidcError> {
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request =
            client.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random);
        for s in &self.scopes {
            request = request.add_scope(Scope::new(s.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        store
            .create_oidc_login(
                &hash_secret(state.secret()),
                &PendingOidcLogin {
                    nonce: nonce.secret().clone(),
                    pkce_verifier: verifier.secret().clone(),
                    return_to: return_to.to_owned(),
                    expires_at: Utc::now() + LOGIN_TTL,
                },
            )
            .await?;
        Ok(url.to_string())
    }

    /// Finishes a sign-in: checks the state, exchanges the code with the PKCE
    /// verifier, verifies the ID token (signature, issuer, audience, expiry,
    /// nonce) and reads the claims, from the user-info endpoint when the ID
    /// token lacks the e-mail address. Returns the identity and where to go.
    pub async fn finish(
        &self,
        store: &dyn Accounts,
        state: &str,
        code: &str,
    ) -> Result<(OidcIdentity, String), OidcError> {
        let pending = store.take_oidc_login(&hash_secret(state), Utc::now()).await?.ok_or(OidcError::UnknownState)?;
        let client = self.client().await?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Exchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Exchange(error_chain(&e)))?;
        let id_token = token.id_token().ok_or_else(|| OidcError::IdToken("no ID token in the response".into()))?;
        let claims = id_token
            .claims(&client.id_token_verifier(), &Nonce::new(pending.nonce))
            .map_err(|e| OidcError::IdToken(e.to_string()))?;
        let name = |given: Option<String>, family: Option<String>, full: Option<String>| {
            full.or_else(|| {
                let parts: Vec<String> = [given, family].into_iter().flatten().collect();
                (!parts.is_empty()).then(|| parts.join(" "))
            })
        };
        let mut identity = OidcIdentity {
            subject: claims.subject().to_string(),
            email: claims.email().map(|e| e.to_string()),
            email_verified: claims.email_verified().unwrap_or(false),
            name: name(
                claims.given_name().and_then(|n| n.get(None)).map(|n| n.to_string()),
                claims.family_name().and_then(|n| n.get(None)).map(|n| n.to_string()),
                claims.name().and_then(|n| n.get(None)).map(|n| n.to_string()),
            ),
        };
        if identity.email.is_none() {
            if let Ok(request) = client.user_info(token.access_token().clone(), Some(claims.subject().clone())) {
                let info: CoreUserInfoClaims =
                    request.request_async(&self.http).await.map_err(|e| OidcError::Exchange(error_chain(&e)))?;
                identity.email = info.email().map(|e| e.to_string());
                identity.email_verified = info.email_verified().unwrap_or(false);
                identity.name = identity.name.or_else(|| {
                    name(
                        info.given_name().and_then(|n| n.get(None)).map(|n| n.to_string()),
                        info.family_name().and_then(|n| n.get(None)).map(|n| n.to_string()),
                        info.name().and_then(|n| n.get(None)).map(|n| n.to_string()),
                    )
                });
            }
        }
        Ok((identity, pending.return_to))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
