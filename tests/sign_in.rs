//! Sign-in with Microsoft Entra end to end, through HTTP only: dirsync's sign-in redirect, the
//! Entra emulator's authorize form, the callback, the session cookie, sign-out — driven by a
//! client with a cookie jar, as a browser would. Bad ID tokens (signature, audience, expiry, a
//! replayed nonce, a wrong `tid`) are each refused and leave no session.
// These tests run the emulators, which only the `emulators` feature (on by default) builds.
#![cfg(feature = "emulators")]

use std::sync::Arc;
use std::time::Duration;

use dirsync::auth::caller::app_roles;
use dirsync::auth::settings::{AuthSettings, OidcSettings};
use dirsync::domain::{DeactivationStatus, EntraObjectId, SecretEnvPolicy, TenantKey};
use dirsync::emulator::entra::{
    AppRegistration, AppRoleAssignment, ClientSecret, Directory, EntraEmulator, IdTokenFault,
    TenantDirectory,
};
use dirsync::plan::TenantPolicy;
use dirsync::schedule::{SchedulerSettings, SystemClock};
use dirsync::service::{Service, ServiceHandle, start};
use dirsync::source::memory::{MemoryDirectory, MemorySource};
use dirsync::store::access::{AccessStore, AuditFilter};
use dirsync::store::{PgStore, Store};
use dirsync::sync::{FixedConnector, SyncContext, SyncSettings};
use dirsync::target::memory::MemoryTarget;
use dirsync::tenant::{Retention, Tenant};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

/// The vendor's own directory: its operators sign in from here.
const OPERATORS: &str = "0e7a0000-0000-4000-8000-000000000001";
/// Acme's directory.
const CONTOSO: &str = "c0750000-0000-4000-8000-000000000002";
const SIGN_IN_APP: &str = "5161a000-0000-4000-8000-000000000003";
const SIGN_IN_SECRET: &str = "sign-in-app-secret";

fn user(id: &str, name: &str, upn: &str) -> Value {
    json!({"id": id, "displayName": name, "userPrincipalName": upn, "mail": upn,
           "accountEnabled": true})
}

fn assigned(user: &str, role: &str) -> AppRoleAssignment {
    AppRoleAssignment {
        user: user.to_owned(),
        role: role.to_owned(),
    }
}

const OLGA: &str = "00000000-0000-4000-8000-00000000019a";
const ADA: &str = "00000000-0000-4000-8000-0000000000ad";
const EVE: &str = "00000000-0000-4000-8000-0000000000e5";
const NOBODY: &str = "00000000-0000-4000-8000-0000000000b0";

/// The operators' directory holds the sign-in app (with its secret and redirect URI) and Olga,
/// an operator by app role. Contoso consented to the app: Ada is a tenant admin by app role,
/// Eve claims the operator role there, Nobody has no role.
fn directory(redirect_uri: &str) -> Directory {
    let mut ops = TenantDirectory::new(OPERATORS);
    ops.put_user(user(OLGA, "Olga Operator", "olga@ops.example"));
    ops.apps.push(AppRegistration {
        client_id: SIGN_IN_APP.to_owned(),
        secrets: vec![ClientSecret {
            value: SIGN_IN_SECRET.to_owned(),
            expires: None,
        }],
        redirect_uris: vec![redirect_uri.to_owned()],
        app_role_assignments: vec![assigned(OLGA, app_roles::OPERATOR)],
        ..AppRegistration::default()
    });
    let mut contoso = TenantDirectory::new(CONTOSO);
    contoso.put_user(user(ADA, "Ada Lovelace", "ada@contoso.com"));
    contoso.put_user(user(EVE, "Eve Mallory", "eve@contoso.com"));
    contoso.put_user(user(NOBODY, "No Body", "nobody@contoso.com"));
    contoso.apps.push(AppRegistration {
        client_id: SIGN_IN_APP.to_owned(),
        app_role_assignments: vec![
            assigned(ADA, app_roles::TENANT_ADMIN),
            assigned(EVE, app_roles::OPERATOR),
        ],
        ..AppRegistration::default()
    });
    Directory {
        tenants: vec![ops, contoso],
    }
}

fn tenant(key: &str, entra: &str) -> Tenant {
    Tenant {
        key: TenantKey::parse(key).unwrap(),
        display_name: key.to_owned(),
        entra_tenant_id: EntraObjectId::parse(entra).unwrap(),
        time_zone: chrono_tz::UTC,
        report_retention: Retention::ThreeMonths,
        policy: TenantPolicy {
            selected_groups: vec![],
            deactivation_status: DeactivationStatus::Inactive,
            deletion_threshold: 500,
        },
        source: Default::default(),
        target: None,
    }
}

struct World {
    entra: EntraEmulator,
    service: ServiceHandle,
    store: Arc<PgStore>,
    base: String,
}

async fn world(pool: PgPool) -> World {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let entra = EntraEmulator::start(directory(&format!("{base}/auth/callback")))
        .await
        .unwrap();
    let store = Arc::new(PgStore::new(pool));
    store.upsert_tenant(&tenant("acme", CONTOSO)).await.unwrap();
    store
        .upsert_tenant(&tenant("beta", "be7a0000-0000-4000-8000-000000000009"))
        .await
        .unwrap();
    let auth = AuthSettings {
        public_url: Some(base.parse().unwrap()),
        oidc: Some(OidcSettings {
            authority: format!("{}/organizations/v2.0", entra.base_url())
                .parse()
                .unwrap(),
            client_id: SIGN_IN_APP.to_owned(),
            client_secret: SIGN_IN_SECRET.to_owned().into(),
            operator_tenant_id: Some(EntraObjectId::parse(OPERATORS).unwrap()),
            extra_root_certificates_pem: vec![entra.ca_pem().to_owned()],
            request_timeout_secs: 15,
        }),
        ..AuthSettings::default()
    };
    let service = start(
        Service {
            ctx: SyncContext {
                store: store.clone(),
                connector: Arc::new(FixedConnector {
                    source: Arc::new(MemorySource::new(MemoryDirectory::default())),
                    target: Arc::new(MemoryTarget::new()),
                }),
                settings: SyncSettings::default(),
            },
            access: store.clone(),
            auth,
            secrets: SecretEnvPolicy::default(),
            clock: Arc::new(SystemClock),
            scheduler: SchedulerSettings {
                enabled: false,
                ..SchedulerSettings::default()
            },
            shutdown_grace: Duration::from_secs(5),
            metrics_listener: None,
        },
        listener,
    )
    .unwrap();
    World {
        entra,
        service,
        store,
        base,
    }
}

/// A browser: a cookie jar, redirects followed by hand so each step can be checked, and the
/// emulator's CA trusted.
fn browser(entra: &EntraEmulator) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(reqwest::Certificate::from_pem(entra.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap()
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("a redirect, got {}", response.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// One sign-in attempt, as far as it goes.
struct Attempt {
    /// Entra's authorize URL dirsync sent the browser to.
    authorize: url::Url,
    /// The callback URL Entra sent the browser back to.
    callback: String,
    /// Where dirsync sent the browser after the callback.
    landed: String,
}

impl Attempt {
    fn nonce(&self) -> String {
        self.authorize
            .query_pairs()
            .find(|(k, _)| k == "nonce")
            .map(|(_, v)| v.into_owned())
            .expect("the authorize URL carries a nonce")
    }

    /// The reason on the sign-in page dirsync sent the browser back to.
    fn refusal(&self) -> Option<String> {
        let landed = url::Url::parse(&format!("http://x{}", self.landed)).ok()?;
        if landed.path() != "/sign-in" {
            return None;
        }
        landed
            .query_pairs()
            .find(|(k, _)| k == "error")
            .map(|(_, v)| v.into_owned())
    }
}

async fn sign_in(browser: &reqwest::Client, base: &str, username: &str) -> Attempt {
    let start = browser
        .get(format!("{base}/auth/sign-in?return_to=/api/v1/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let authorize = url::Url::parse(&location(&start)).unwrap();
    let form = browser.get(authorize.clone()).send().await.unwrap();
    assert_eq!(form.status(), 200);
    assert!(form.text().await.unwrap().contains("name=\"username\""));
    let posted = browser
        .post(authorize.clone())
        .form(&[("username", username)])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::SEE_OTHER, "{posted:?}");
    let callback = location(&posted);
    assert!(
        callback.starts_with(&format!("{base}/auth/callback?code=")),
        "{callback}"
    );
    let back = browser.get(&callback).send().await.unwrap();
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    Attempt {
        authorize,
        callback,
        landed: location(&back),
    }
}

async fn me(browser: &reqwest::Client, base: &str) -> (StatusCode, Value) {
    let response = browser
        .get(format!("{base}/api/v1/me"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[sqlx::test(migrations = "./migrations")]
async fn people_sign_in_through_entra_and_get_what_their_app_roles_allow_in_their_own_directory(
    pool: PgPool,
) {
    let w = world(pool).await;

    // Olga: an operator, by app role in the operators' directory.
    let olga = browser(&w.entra);
    let attempt = sign_in(&olga, &w.base, "olga@ops.example").await;
    assert_eq!(attempt.landed, "/api/v1/me", "back where she was going");
    let (status, who) = me(&olga, &w.base).await;
    assert_eq!(status, 200, "{who}");
    assert_eq!(who["name"], "Olga Operator (olga@ops.example)");
    assert_eq!(who["operator"], true);
    assert_eq!(who["actor_id"], format!("entra:{OPERATORS}/{OLGA}"));

    // Ada: tenant admin of acme (synced from her directory), nothing of beta.
    let ada = browser(&w.entra);
    sign_in(&ada, &w.base, "ada@contoso.com").await;
    let (_, who) = me(&ada, &w.base).await;
    assert_eq!(who["operator"], false);
    assert_eq!(who["tenants"], json!({"acme": "tenant_admin"}));
    let beta = ada
        .get(format!("{}/api/v1/tenants/beta", w.base))
        .send()
        .await
        .unwrap();
    assert_eq!(beta.status(), 404);
    let home = ada.get(format!("{}/", w.base)).send().await.unwrap();
    let home = home.text().await.unwrap();
    assert!(
        home.contains("Ada Lovelace") && home.contains("acme"),
        "{home}"
    );

    // Eve holds the operator app role, but in a customer's directory: nothing.
    let eve = browser(&w.entra);
    let refused = sign_in(&eve, &w.base, "eve@contoso.com").await;
    let reason = refused.refusal().expect("refused");
    assert!(reason.contains("Eve Mallory has no access"), "{reason}");
    assert_eq!(me(&eve, &w.base).await.0, 401);

    // No role, no grant: no session either.
    let nobody = browser(&w.entra);
    let refused = sign_in(&nobody, &w.base, "nobody@contoso.com").await;
    assert!(refused.refusal().unwrap().contains("has no access"));
    assert_eq!(me(&nobody, &w.base).await.0, 401);

    // Every sign-in is in the audit log, refused ones with the reason.
    let events = w
        .store
        .audit_events(&AuditFilter {
            action: Some("sign_in".to_owned()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let seen: Vec<(String, &str)> = events
        .iter()
        .rev()
        .map(|r| (r.event.actor.clone(), r.event.outcome.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("Olga Operator".to_owned(), "ok"),
            ("Ada Lovelace".to_owned(), "ok"),
            ("Eve Mallory".to_owned(), "refused"),
            ("No Body".to_owned(), "refused")
        ]
    );
    assert_eq!(events[0].event.source_ip.as_deref(), Some("127.0.0.1"));
    assert!(
        events[1].event.detail["reason"]
            .as_str()
            .unwrap()
            .contains("has no access")
    );
    w.service.stop().await.unwrap();
}

#[sqlx::test(migrations = "./migrations")]
async fn a_bad_signature_wrong_audience_expired_token_replayed_nonce_or_wrong_tid_is_refused(
    pool: PgPool,
) {
    let w = world(pool).await;
    let ada = browser(&w.entra);
    let first = sign_in(&ada, &w.base, "ada@contoso.com").await;
    assert_eq!(first.refusal(), None, "{}", first.landed);
    let used_nonce = first.nonce();

    // The callback replayed: the attempt is gone.
    let replayed = ada.get(&first.callback).send().await.unwrap();
    assert!(location(&replayed).contains("expired+or+was+already+used"));

    let faults = [
        (IdTokenFault::BadSignature, "signature"),
        (IdTokenFault::WrongAudience, "audience"),
        (IdTokenFault::Expired, "expired"),
        (IdTokenFault::Nonce(used_nonce), "nonce"),
        (
            IdTokenFault::WrongTid(OPERATORS.to_owned()),
            "is not the issuer of its directory",
        ),
    ];
    for (fault, words) in faults {
        let browser = browser(&w.entra);
        w.entra.set_id_token_fault(Some(fault.clone()));
        let attempt = sign_in(&browser, &w.base, "ada@contoso.com").await;
        let reason = attempt
            .refusal()
            .unwrap_or_else(|| panic!("{fault:?} was accepted: {}", attempt.landed));
        assert!(
            reason.starts_with("the ID token is not valid")
                && reason.to_lowercase().contains(words),
            "{fault:?}: {reason}"
        );
        assert_eq!(
            me(&browser, &w.base).await.0,
            401,
            "{fault:?} left a session"
        );
    }

    // With the emulator honest again, the same person signs in.
    let again = browser(&w.entra);
    assert_eq!(
        sign_in(&again, &w.base, "ada@contoso.com").await.refusal(),
        None
    );
    assert_eq!(me(&again, &w.base).await.0, 200);
    w.service.stop().await.unwrap();
}

#[sqlx::test(migrations = "./migrations")]
async fn signing_in_again_rotates_the_session_and_signing_out_ends_it(pool: PgPool) {
    let w = world(pool).await;
    let ada = browser(&w.entra);
    let start = ada
        .get(format!("{}/auth/sign-in", w.base))
        .send()
        .await
        .unwrap();
    let cookie = start.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("dirsync_sign_in=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );

    let session_cookie = |response: &reqwest::Response| {
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|c| c.starts_with("dirsync_session="))
    };
    // The first sign-in, step by step, to read its session cookie.
    let first = sign_in(&ada, &w.base, "ada@contoso.com").await;
    assert_eq!(first.refusal(), None);
    let (_, before) = me(&ada, &w.base).await;
    let old_csrf = before["csrf_token"].as_str().unwrap().to_owned();

    // Signing in again gives a new session; the old one no longer works.
    let second = sign_in(&ada, &w.base, "ada@contoso.com").await;
    assert_eq!(second.refusal(), None);
    let (_, after) = me(&ada, &w.base).await;
    assert_ne!(after["csrf_token"], old_csrf.as_str());
    let stale = reqwest::Client::new()
        .get(format!("{}/api/v1/me", w.base))
        .header("x-csrf-token", &old_csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 401);

    // The home page's sign-out form (a plain form post with the CSRF field) ends the session.
    let home = ada.get(format!("{}/", w.base)).send().await.unwrap();
    let home = home.text().await.unwrap();
    let csrf = after["csrf_token"].as_str().unwrap();
    assert!(
        home.contains(&format!("name=\"csrf_token\" value=\"{csrf}\"")),
        "{home}"
    );
    let without = ada
        .post(format!("{}/sign-out", w.base))
        .form(&[("nothing", "here")])
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), 403, "sign-out needs the CSRF field");
    let out = ada
        .post(format!("{}/sign-out", w.base))
        .form(&[("csrf_token", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let cleared = session_cookie(&out).expect("the cookie is cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(me(&ada, &w.base).await.0, 401);
    let home = ada.get(format!("{}/", w.base)).send().await.unwrap();
    assert_eq!(home.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&home), "/sign-in?return_to=%2F");
    w.service.stop().await.unwrap();
}
