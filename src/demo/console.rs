//! The demo's console: the service (API, console pages, sign-in) on the demo's database and
//! emulators, with people to sign in as through the Entra emulator's sign-in form: an operator in
//! an operators' directory, and a tenant admin and a viewer of the demo tenant in its directory.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use tokio::net::TcpListener;

use super::{Demo, directory};
use crate::auth::caller::app_roles;
use crate::auth::settings::{AuthSettings, OidcSettings};
use crate::domain::{EntraObjectId, SecretEnvPolicy};
use crate::emulator::entra::{AppRegistration, AppRoleAssignment, ClientSecret, TenantDirectory};
use crate::schedule::{SchedulerSettings, SystemClock};
use crate::service::{Service, ServiceHandle, start};

/// The operators' own Entra directory (operators sign in from here, by app role).
pub const OPERATORS_TENANT: &str = "0e7a0000-0000-4000-8000-0000000000de";
/// The console's sign-in app registration.
pub const SIGN_IN_APP: &str = "5161a000-0000-4000-8000-0000000000de";
const SIGN_IN_SECRET: &str = "demo-sign-in-secret";

/// Someone to sign in to the demo console as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoPerson {
    pub username: &'static str,
    pub name: &'static str,
    /// What they may do, in words.
    pub role: &'static str,
    object_id: &'static str,
    directory: &'static str,
    app_role: &'static str,
}

pub const OPERATOR: DemoPerson = DemoPerson {
    username: "olga@ops.example",
    name: "Olga Operator",
    role: "operator: every tenant, access grants, API tokens, the audit log",
    object_id: "00000000-0000-4000-8000-0000000001de",
    directory: OPERATORS_TENANT,
    app_role: app_roles::OPERATOR,
};

pub const TENANT_ADMIN: DemoPerson = DemoPerson {
    username: "tess.admin@contoso-legal.com",
    name: "Tess Admin",
    role: "tenant admin of \"demo\": force syncs, approve held runs, preview",
    object_id: "00000000-0000-4000-8000-0000000002de",
    directory: directory::TENANT_ID,
    app_role: app_roles::TENANT_ADMIN,
};

pub const VIEWER: DemoPerson = DemoPerson {
    username: "val.viewer@contoso-legal.com",
    name: "Val Viewer",
    role: "viewer of \"demo\": reports only",
    object_id: "00000000-0000-4000-8000-0000000003de",
    directory: directory::TENANT_ID,
    app_role: app_roles::VIEWER,
};

pub const PEOPLE: [DemoPerson; 3] = [OPERATOR, TENANT_ADMIN, VIEWER];

/// Adds the sign-in app and the demo's people to the Entra emulator, for a console served at
/// `base` (its `/auth/callback` is the app's redirect URI).
fn register_sign_in(demo: &Demo, base: &str) {
    let redirect_uri = format!("{base}/auth/callback");
    demo.entra.edit(|dir| {
        if !dir.tenants.iter().any(|t| t.tenant_id == OPERATORS_TENANT) {
            dir.tenants.push(TenantDirectory::new(OPERATORS_TENANT));
        }
        for tenant in dir.tenants.iter_mut() {
            let here: Vec<DemoPerson> = PEOPLE
                .into_iter()
                .filter(|p| p.directory == tenant.tenant_id)
                .collect();
            if here.is_empty() {
                continue;
            }
            for person in &here {
                tenant.put_user(json!({
                    "id": person.object_id, "displayName": person.name,
                    "userPrincipalName": person.username, "mail": person.username,
                    "accountEnabled": true,
                }));
            }
            tenant.apps.retain(|app| app.client_id != SIGN_IN_APP);
            tenant.apps.push(AppRegistration {
                client_id: SIGN_IN_APP.to_owned(),
                secrets: vec![ClientSecret {
                    value: SIGN_IN_SECRET.to_owned(),
                    expires: None,
                }],
                redirect_uris: vec![redirect_uri.clone()],
                app_role_assignments: here
                    .iter()
                    .map(|p| AppRoleAssignment {
                        user: p.object_id.to_owned(),
                        role: p.app_role.to_owned(),
                    })
                    .collect(),
                ..AppRegistration::default()
            });
        }
    });
}

/// Serves the console on `listener` for the demo: sign-in through the Entra emulator, the demo's
/// store and emulators behind it, no scheduler (runs are forced from the console).
pub async fn serve(demo: &Demo, listener: TcpListener) -> anyhow::Result<ServiceHandle> {
    let base = format!("http://{}", listener.local_addr()?);
    register_sign_in(demo, &base);
    let auth = AuthSettings {
        public_url: Some(base.parse().context("the console's URL")?),
        oidc: Some(OidcSettings {
            authority: format!("{}/organizations/v2.0", demo.entra.base_url())
                .parse()
                .context("the Entra emulator's authority URL")?,
            client_id: SIGN_IN_APP.to_owned(),
            client_secret: SIGN_IN_SECRET.to_owned().into(),
            operator_tenant_id: Some(EntraObjectId::parse(OPERATORS_TENANT)?),
            extra_root_certificates_pem: vec![demo.entra.ca_pem().to_owned()],
            request_timeout_secs: 15,
        }),
        ..AuthSettings::default()
    };
    let service = Service {
        ctx: demo.ctx.clone(),
        access: demo.store.clone(),
        auth,
        secrets: SecretEnvPolicy::default(),
        clock: Arc::new(SystemClock),
        scheduler: SchedulerSettings {
            enabled: false,
            ..SchedulerSettings::default()
        },
        shutdown_grace: Duration::from_secs(5),
        metrics_listener: None,
    };
    Ok(start(service, listener)?)
}
