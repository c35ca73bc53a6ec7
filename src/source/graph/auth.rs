//! Signing in to a tenant through `azure_identity`: building the configured credential with a
//! transport that trusts the configured roots, and turning Entra's AADSTS errors into sentences an
//! operator can act on.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, SecretBytes, TokenCredential};
use azure_core::error::ErrorKind;
use azure_core::http::headers::{HeaderName, HeaderValue, Headers};
use azure_core::http::{
    AsyncRawResponse, Body, ClientOptions, HttpClient, Method, Request, Transport,
};
use base64::Engine as _;
use secrecy::ExposeSecret;

use super::settings::{CredentialSettings, GraphSettings};
use crate::source::SourceError;

/// The permissions SPEC "Source" asks every customer to consent to.
pub const REQUIRED_PERMISSIONS: &str = "Group.Read.All, GroupMember.Read.All and User.Read.All";

/// The OAuth scope for Graph's application permissions.
pub fn graph_scope(graph_base_url: &url::Url) -> String {
    match graph_base_url.host_str() {
        Some(host) if host.starts_with("graph.microsoft") => format!("https://{host}/.default"),
        // A local emulator or a proxy: the token is still for Microsoft Graph.
        _ => "https://graph.microsoft.com/.default".to_owned(),
    }
}

/// `azure_core`'s pipeline sending through dirsync's own `reqwest` client, so the credential
/// trusts the same extra roots (the emulator's certificate) and uses the same timeouts.
#[derive(Debug, Clone)]
pub(crate) struct ReqwestTransport(pub reqwest::Client);

#[async_trait]
impl HttpClient for ReqwestTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let method = match request.method() {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
            Method::Patch => reqwest::Method::PATCH,
            Method::Head => reqwest::Method::HEAD,
            other => {
                return Err(azure_core::Error::with_message(
                    ErrorKind::Other,
                    format!("unsupported method {other:?}"),
                ));
            }
        };
        let mut builder = self.0.request(method, request.url().as_str());
        for (name, value) in request.headers().iter() {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder = match request.body() {
            Body::Bytes(bytes) => builder.body(bytes.to_vec()),
            #[allow(unreachable_patterns)]
            _ => {
                return Err(azure_core::Error::with_message(
                    ErrorKind::Other,
                    "streamed request bodies are not supported by the dirsync transport",
                ));
            }
        };
        let response = builder.send().await.map_err(|e| {
            let kind = if e.is_connect() {
                ErrorKind::Connection
            } else {
                ErrorKind::Io
            };
            azure_core::Error::with_error(kind, e, "the request to the authority failed")
        })?;
        let status = response.status().as_u16();
        let headers: HashMap<HeaderName, HeaderValue> = response
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                let value = value.to_str().ok()?;
                Some((
                    HeaderName::from(name.as_str().to_owned()),
                    HeaderValue::from(value.to_owned()),
                ))
            })
            .collect();
        let body = response.bytes().await.map_err(|e| {
            azure_core::Error::with_error(ErrorKind::Io, e, "reading the authority's answer failed")
        })?;
        Ok(AsyncRawResponse::from_bytes(
            status.into(),
            Headers::from(headers),
            body,
        ))
    }
}

/// Who signs in where: enough to build a credential and to word its errors.
#[derive(Debug, Clone)]
pub(crate) struct SignIn {
    pub tenant_id: String,
    pub client_id: String,
    pub authority_host: url::Url,
}

pub(crate) fn build_credential(
    settings: &GraphSettings,
    sign_in: &SignIn,
    credential: &CredentialSettings,
    http: reqwest::Client,
) -> Result<Arc<dyn TokenCredential>, SourceError> {
    let mut custom = CustomConfiguration::default();
    custom.authority_host = settings
        .authority_host
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let cloud: CloudConfiguration = custom.into();
    let client_options = ClientOptions {
        transport: Some(Transport::new(Arc::new(ReqwestTransport(http)))),
        cloud: Some(Arc::new(cloud)),
        ..ClientOptions::default()
    };
    let not_built = |e: azure_core::Error| {
        SourceError::Authentication(format!(
            "the {} credential for tenant {} could not be set up: {e}",
            credential.kind(),
            sign_in.tenant_id
        ))
    };
    let built: Arc<dyn TokenCredential> = match credential {
        CredentialSettings::ClientSecret { client_secret } => {
            azure_identity::ClientSecretCredential::new(
                &sign_in.tenant_id,
                sign_in.client_id.clone(),
                Secret::new(client_secret.expose_secret().to_owned()),
                Some(azure_identity::ClientSecretCredentialOptions { client_options }),
            )
            .map_err(not_built)?
        }
        CredentialSettings::ClientCertificate {
            pkcs12_base64,
            password,
        } => {
            let der = base64::engine::general_purpose::STANDARD
                .decode(pkcs12_base64.expose_secret().trim())
                .map_err(|e| {
                    SourceError::Authentication(format!(
                        "the client certificate for tenant {} is not base64-encoded PKCS#12: {e}",
                        sign_in.tenant_id
                    ))
                })?;
            azure_identity::ClientCertificateCredential::new(
                sign_in.tenant_id.clone(),
                sign_in.client_id.clone(),
                SecretBytes::new(der),
                Some(azure_identity::ClientCertificateCredentialOptions {
                    client_options,
                    password: password
                        .as_ref()
                        .map(|p| Secret::new(p.expose_secret().to_owned())),
                }),
            )
            .map_err(not_built)?
        }
        CredentialSettings::WorkloadIdentity { token_file } => {
            azure_identity::WorkloadIdentityCredential::new(Some(
                azure_identity::WorkloadIdentityCredentialOptions {
                    credential_options: azure_identity::ClientAssertionCredentialOptions {
                        client_options,
                    },
                    client_id: Some(sign_in.client_id.clone()),
                    tenant_id: Some(sign_in.tenant_id.clone()),
                    token_file_path: token_file.clone(),
                },
            ))
            .map_err(not_built)?
        }
        CredentialSettings::ManagedIdentity { client_id } => {
            azure_identity::ManagedIdentityCredential::new(Some(
                azure_identity::ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id
                        .clone()
                        .map(azure_identity::UserAssignedId::ClientId),
                    client_options,
                },
            ))
            .map_err(not_built)?
        }
    };
    Ok(built)
}

/// The AADSTS codes found in an error from `azure_identity`: the structured `error_codes` when
/// the error carries them, else any `AADSTS…` in its text.
pub(crate) fn aadsts_codes(error: &azure_core::Error) -> Vec<u64> {
    let mut codes = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(err) = current {
        if let Some(azure) = err.downcast_ref::<azure_core::Error>() {
            if let ErrorKind::HttpResponse {
                error_code: Some(code),
                ..
            } = azure.kind()
            {
                codes.extend(code.split(',').filter_map(|c| c.trim().parse::<u64>().ok()));
            }
        }
        current = err.source();
    }
    if codes.is_empty() {
        codes = codes_in_text(&error.to_string());
    }
    codes
}

pub(crate) fn codes_in_text(text: &str) -> Vec<u64> {
    text.match_indices("AADSTS")
        .filter_map(|(at, _)| {
            let digits: String = text[at + 6..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .collect()
}

fn is_unreachable(error: &azure_core::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(err) = current {
        if let Some(azure) = err.downcast_ref::<azure_core::Error>() {
            if matches!(azure.kind(), ErrorKind::Connection | ErrorKind::Io) {
                return true;
            }
        }
        current = err.source();
    }
    false
}

/// The first line of Entra's description, without its trace and correlation IDs.
fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.contains("AADSTS"))
        .unwrap_or_else(|| text.lines().next().unwrap_or(""));
    let line = match line.find("AADSTS") {
        Some(at) => &line[at..],
        None => line,
    };
    super::wire::truncate(line.trim(), 300)
}

/// A token failure as a sentence for the report and the CLI.
pub(crate) fn token_error(sign_in: &SignIn, error: &azure_core::Error) -> SourceError {
    let codes = aadsts_codes(error);
    let tenant = &sign_in.tenant_id;
    let app = &sign_in.client_id;
    let authority = sign_in.authority_host.as_str().trim_end_matches('/');
    let consent_url = format!("{authority}/{tenant}/adminconsent?client_id={app}");
    let sentence = if let Some(code) = codes.first() {
        match code {
            90002 => format!(
                "tenant {tenant} was not found (AADSTS90002): check the tenant's Entra tenant ID in dirsync \
                 (the Directory ID on the Entra overview page) and that the tenant is in the cloud of {authority}"
            ),
            700016 | 500011 => format!(
                "the app {app} is not consented in tenant {tenant} (AADSTS{code}): ask a Global Administrator of \
                 that tenant to grant admin consent at {consent_url} for {REQUIRED_PERMISSIONS}"
            ),
            7000215 => format!(
                "the client secret of app {app} was rejected in tenant {tenant} (AADSTS7000215): copy the secret's \
                 Value (not its Secret ID) from the app registration's Certificates & secrets page into dirsync's settings"
            ),
            7000222 => format!(
                "the client secret of app {app} has expired (AADSTS7000222): create a new client secret on the app \
                 registration's Certificates & secrets page and put its Value into dirsync's settings"
            ),
            700027 | 700024 | 7000274 => format!(
                "the certificate or assertion of app {app} was rejected in tenant {tenant} (AADSTS{code}): upload \
                 the certificate dirsync uses to the app registration's Certificates & secrets page, or fix the clock \
                 of this host"
            ),
            70021 | 700213 | 700211 => format!(
                "no federated credential of app {app} matches this workload's token (AADSTS{code}): add a federated \
                 credential with this service account's issuer and subject to the app registration"
            ),
            7000112 => format!(
                "the app {app} is disabled in tenant {tenant} (AADSTS7000112): ask a tenant administrator to enable \
                 its enterprise application"
            ),
            other => format!(
                "signing in to tenant {tenant} as app {app} failed (AADSTS{other}): {}",
                first_line(&error.to_string())
            ),
        }
    } else if is_unreachable(error) {
        return SourceError::Unavailable(format!(
            "the sign-in authority {authority} could not be reached for tenant {tenant}: {}",
            first_line(&error.to_string())
        ));
    } else {
        format!(
            "signing in to tenant {tenant} as app {app} failed: {}",
            first_line(&error.to_string())
        )
    };
    SourceError::Authentication(sentence)
}

/// Graph's 403 `Authorization_RequestDenied`: the token is valid but carries no consented role.
pub(crate) fn permission_denied(sign_in: &SignIn, graph_message: &str) -> String {
    let authority = sign_in.authority_host.as_str().trim_end_matches('/');
    format!(
        "the app {app} lacks permission in tenant {tenant} (Graph: {graph_message}): ask a Global Administrator to \
         grant admin consent at {authority}/{tenant}/adminconsent?client_id={app} for the application permissions \
         {REQUIRED_PERMISSIONS}",
        app = sign_in.client_id,
        tenant = sign_in.tenant_id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign_in() -> SignIn {
        SignIn {
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            client_id: "00000000-0000-0000-0000-0000000000aa".into(),
            authority_host: url::Url::parse("https://login.microsoftonline.com").expect("url"),
        }
    }

    #[test]
    fn aadsts_codes_are_found_in_entra_descriptions() {
        assert_eq!(
            codes_in_text(
                "ClientSecretCredential authentication failed. AADSTS7000215: Invalid client secret"
            ),
            vec![7000215]
        );
        assert!(codes_in_text("no code here").is_empty());
    }

    #[test]
    fn a_missing_consent_becomes_an_instruction_to_the_global_administrator() {
        let err = azure_core::Error::with_message(
            ErrorKind::Credential,
            "ClientSecretCredential authentication failed. AADSTS700016: Application with identifier 'x' was not found",
        );
        let SourceError::Authentication(sentence) = token_error(&sign_in(), &err) else {
            panic!("expected an authentication error");
        };
        assert!(sentence.starts_with(
            "the app 00000000-0000-0000-0000-0000000000aa is not consented in tenant 72f988bf"
        ));
        assert!(sentence.contains("ask a Global Administrator"));
        assert!(sentence.contains("/adminconsent?client_id="));
    }

    #[test]
    fn the_graph_scope_stays_microsoft_graph_for_a_local_emulator() {
        let local = url::Url::parse("https://127.0.0.1:4443").expect("url");
        assert_eq!(graph_scope(&local), "https://graph.microsoft.com/.default");
        let us = url::Url::parse("https://graph.microsoft.us").expect("url");
        assert_eq!(graph_scope(&us), "https://graph.microsoft.us/.default");
    }
}
