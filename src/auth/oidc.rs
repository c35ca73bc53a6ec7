//! Sign-in with Microsoft Entra: the OpenID Connect authorization code flow with PKCE, state and
//! nonce, through the `openidconnect` crate, its HTTP client built with redirects off.
//!
//! Entra's multi-tenant discovery document (`…/organizations/v2.0`) publishes its issuer as the
//! literal `https://login.microsoftonline.com/{tenantid}/v2.0`, which no token carries, so the
//! crate's strict issuer check is turned off and replaced here: a token's `iss` must be that
//! template with the token's own `tid` put in (and for a single-directory authority, exactly
//! the published issuer, whose directory must be the token's `tid`). Signature (against the
//! JWKS read at each sign-in, so Entra's key rotation needs nothing), audience, expiry and nonce
//! are checked by the crate.

use std::sync::Arc;
use std::time::Duration;

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthenticationFlow, AuthorizationCode, Client, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenClaims,
    IdTokenFields, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    StandardErrorResponse, StandardTokenResponse,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use url::Url;

use super::settings::OidcSettings;
use crate::domain::EntraObjectId;
use crate::schedule::Clock;
use crate::store::access::EntraIdentity;

/// The claims Entra adds to an ID token that dirsync reads: the person's directory and object,
/// and the app roles assigned to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntraClaims {
    pub tid: String,
    pub oid: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

impl AdditionalClaims for EntraClaims {}

pub type EntraIdTokenClaims = IdTokenClaims<EntraClaims, CoreGenderClaim>;
pub type EntraIdToken = openidconnect::IdToken<
    EntraClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type EntraTokenResponse = StandardTokenResponse<
    IdTokenFields<
        EntraClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;
type EntraClient = Client<
    EntraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    EntraTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Where a refused sign-in went wrong, as one sentence for the person and the audit log.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("Microsoft Entra could not be reached: {0}")]
    Unreachable(String),
    #[error("Microsoft Entra refused the sign-in: {0}")]
    Refused(String),
    #[error("the ID token is not valid: {0}")]
    InvalidToken(String),
}

/// A sign-in begun: where to send the browser, and what the callback must find again.
pub struct SignInStart {
    pub authorize_url: Url,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// A person Entra vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub identity: EntraIdentity,
    pub name: String,
    pub username: Option<String>,
    pub app_roles: Vec<String>,
}

/// The OpenID Connect client of one Entra app registration.
pub struct OidcClient {
    settings: OidcSettings,
    redirect_url: RedirectUrl,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient")
            .field("settings", &self.settings)
            .field("redirect_url", &self.redirect_url.as_str())
            .finish_non_exhaustive()
    }
}

/// The path Entra sends the browser back to.
pub const CALLBACK_PATH: &str = "/auth/callback";

impl OidcClient {
    pub fn new(
        settings: OidcSettings,
        public_url: &Url,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        let redirect = public_url
            .join(CALLBACK_PATH)
            .map_err(|e| format!("auth.public_url {public_url}: {e}"))?;
        let redirect_url = RedirectUrl::new(redirect.to_string()).map_err(|e| e.to_string())?;
        // Following redirects would let a token endpoint send our client (and its secret) on.
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(settings.request_timeout_secs.max(1)))
            .user_agent(concat!("dirsync/", env!("CARGO_PKG_VERSION")));
        for pem in &settings.extra_root_certificates_pem {
            let cert = reqwest::Certificate::from_pem(pem.as_bytes())
                .map_err(|e| format!("auth.oidc.extra_root_certificates_pem: {e}"))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| format!("auth.oidc: the HTTP client could not be built: {e}"))?;
        Ok(Self {
            settings,
            redirect_url,
            http,
            clock,
        })
    }

    /// The discovery document, and the issuer it publishes as written (a template for the
    /// multi-tenant authorities).
    async fn provider(&self) -> Result<(CoreProviderMetadata, String), SignInError> {
        let mut url = self.settings.authority.clone();
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        let url = url
            .join(".well-known/openid-configuration")
            .map_err(|e| SignInError::Unreachable(e.to_string()))?;
        let unreachable = |e: reqwest::Error| SignInError::Unreachable(e.to_string());
        let document: serde_json::Value = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(unreachable)?
            .error_for_status()
            .map_err(unreachable)?
            .json()
            .await
            .map_err(unreachable)?;
        let issuer = document["issuer"]
            .as_str()
            .ok_or_else(|| SignInError::Unreachable(format!("{url} has no issuer")))?
            .to_owned();
        let metadata: CoreProviderMetadata = serde_json::from_value(document)
            .map_err(|e| SignInError::Unreachable(format!("{url}: {e}")))?;
        let jwks = openidconnect::JsonWebKeySet::fetch_async(metadata.jwks_uri(), &self.http)
            .await
            .map_err(|e| SignInError::Unreachable(format!("the signing keys: {e}")))?;
        Ok((metadata.set_jwks(jwks), issuer))
    }

    fn client(&self, metadata: CoreProviderMetadata) -> EntraClient {
        Client::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            Some(ClientSecret::new(
                self.settings.client_secret.expose_secret().to_owned(),
            )),
        )
        .set_redirect_uri(self.redirect_url.clone())
    }

    /// Begins a sign-in: fresh state, nonce and PKCE verifier, and Entra's authorize URL.
    pub async fn start(&self) -> Result<SignInStart, SignInError> {
        let (metadata, _) = self.provider().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (authorize_url, state, nonce) = self
            .client(metadata)
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".to_owned()))
            .add_scope(Scope::new("email".to_owned()))
            .set_pkce_challenge(challenge)
            .url();
        Ok(SignInStart {
            authorize_url,
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Finishes a sign-in: exchanges the code (with the PKCE verifier) and verifies the ID token
    /// against the nonce of this sign-in.
    pub async fn finish(
        &self,
        code: &str,
        nonce: &str,
        pkce_verifier: &str,
    ) -> Result<SignedIn, SignInError> {
        let (metadata, issuer_template) = self.provider().await?;
        let client = self.client(metadata);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| SignInError::Unreachable(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| SignInError::Refused(token_error(&e)))?;
        let id_token = response
            .extra_fields()
            .id_token()
            .ok_or_else(|| SignInError::InvalidToken("Entra sent no ID token".to_owned()))?;
        let clock = self.clock.clone();
        let verifier = client
            .id_token_verifier()
            .require_issuer_match(false)
            .set_time_fn(move || clock.now());
        let claims = id_token
            .claims(&verifier, &Nonce::new(nonce.to_owned()))
            .map_err(|e| SignInError::InvalidToken(e.to_string()))?;
        check_issuer(claims, &issuer_template)?;
        let extra = claims.additional_claims();
        let guid = |what: &str, text: &str| {
            EntraObjectId::parse(text)
                .map_err(|_| SignInError::InvalidToken(format!("its {what} is not a GUID")))
        };
        let identity = EntraIdentity {
            tenant_id: guid("tid", &extra.tid)?,
            object_id: guid("oid", &extra.oid)?,
        };
        let username = claims
            .preferred_username()
            .map(|u| u.as_str().to_owned())
            .or_else(|| claims.email().map(|e| e.as_str().to_owned()));
        let name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_owned())
            .or_else(|| username.clone())
            .unwrap_or_else(|| identity.to_string());
        Ok(SignedIn {
            identity,
            name,
            username,
            app_roles: extra.roles.clone(),
        })
    }
}

/// The issuer must be the published one with the token's own `tid` in place of `{tenantid}`:
/// a token issued for one directory cannot pass as another's.
fn check_issuer(claims: &EntraIdTokenClaims, template: &str) -> Result<(), SignInError> {
    let tid = &claims.additional_claims().tid;
    let iss = claims.issuer().as_str();
    let expected = template.replace("{tenantid}", tid);
    let names_tid = iss
        .split('/')
        .any(|segment| segment.eq_ignore_ascii_case(tid));
    if iss.trim_end_matches('/') == expected.trim_end_matches('/') && names_tid {
        Ok(())
    } else {
        Err(SignInError::InvalidToken(format!(
            "its issuer {iss} is not the issuer of its directory (tid {tid})"
        )))
    }
}

fn token_error<E: std::error::Error>(err: &E) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
