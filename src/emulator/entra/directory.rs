//! The emulated Entra directory and its JSON fixture format: tenants, each with its app
//! registrations (consent, secrets, certificates, federated subjects, granted permissions),
//! users (as Graph's JSON), groups with members (users, nested groups, devices, service
//! principals), devices and service principals.
//!
//! ```json
//! {"tenants": [{
//!   "tenant_id": "6babcaad-604b-40ac-a9d7-9fd97c0b779f",
//!   "apps": [{"client_id": "…", "secrets": [{"value": "…", "expires": "2030-01-01T00:00:00Z"}],
//!             "permissions": ["Group.Read.All", "GroupMember.Read.All", "User.Read.All"]}],
//!   "users": [{"id": "…", "displayName": "Adele Vance", "givenName": "Adele", "surname": "Vance",
//!              "mail": "AdeleV@contoso.com", "userPrincipalName": "AdeleV@contoso.com",
//!              "businessPhones": ["+1 425 555 0109"], "jobTitle": "Retail Manager",
//!              "accountEnabled": true}],
//!   "groups": [{"id": "…", "displayName": "Sales", "members": ["<user, group, device or sp id>"]}],
//!   "devices": [{"id": "…", "displayName": "LAPTOP-01"}],
//!   "service_principals": [{"id": "…", "displayName": "Robot", "appId": "…"}]
//! }]}
//! ```
//!
//! An app missing from a tenant's `apps` is not consented there (AADSTS700016); an app with no
//! `permissions` signs in but Graph answers 403 `Authorization_RequestDenied`.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::emulator::EmulatorError;

/// Every tenant the emulated authority knows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    #[serde(default)]
    pub tenants: Vec<TenantDirectory>,
}

impl Directory {
    pub fn load(path: &Path) -> Result<Self, EmulatorError> {
        let text = std::fs::read_to_string(path).map_err(|e| EmulatorError::Fixture {
            path: path.display().to_string(),
            problem: e.to_string(),
        })?;
        serde_json::from_str(&text).map_err(|e| EmulatorError::Fixture {
            path: path.display().to_string(),
            problem: e.to_string(),
        })
    }

    pub fn tenant(&self, tenant_id: &str) -> Option<&TenantDirectory> {
        self.tenants
            .iter()
            .find(|t| t.tenant_id.eq_ignore_ascii_case(tenant_id))
    }

    pub fn tenant_mut(&mut self, tenant_id: &str) -> Option<&mut TenantDirectory> {
        self.tenants
            .iter_mut()
            .find(|t| t.tenant_id.eq_ignore_ascii_case(tenant_id))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantDirectory {
    pub tenant_id: String,
    #[serde(default)]
    pub apps: Vec<AppRegistration>,
    /// Users by lowercase object ID; a list of Graph user objects in the fixture.
    #[serde(default, serialize_with = "users_out", deserialize_with = "users_in")]
    pub users: BTreeMap<String, Map<String, Value>>,
    #[serde(default)]
    pub groups: Vec<Group>,
    #[serde(default)]
    pub devices: Vec<Map<String, Value>>,
    #[serde(default)]
    pub service_principals: Vec<Map<String, Value>>,
}

impl TenantDirectory {
    pub fn new(tenant_id: impl Into<String>) -> Self {
        Self {
            tenant_id: tenant_id.into(),
            ..Self::default()
        }
    }

    pub fn app(&self, client_id: &str) -> Option<&AppRegistration> {
        self.apps
            .iter()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }

    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.id.eq_ignore_ascii_case(id))
    }

    pub fn group_mut(&mut self, id: &str) -> Option<&mut Group> {
        self.groups
            .iter_mut()
            .find(|g| g.id.eq_ignore_ascii_case(id))
    }

    /// Adds or replaces a user, given as Graph's JSON (must have an `id`).
    pub fn put_user(&mut self, user: Value) {
        if let Value::Object(map) = user {
            if let Some(id) = map.get("id").and_then(Value::as_str) {
                self.users.insert(id.to_ascii_lowercase(), map);
            }
        }
    }

    /// The `@odata.type` of a directory object in this tenant, if it exists.
    pub fn object_type(&self, id: &str) -> Option<&'static str> {
        let id = id.to_ascii_lowercase();
        let has = |list: &[Map<String, Value>]| {
            list.iter().any(|o| {
                o.get("id")
                    .and_then(Value::as_str)
                    .map(str::to_ascii_lowercase)
                    == Some(id.clone())
            })
        };
        if self.users.contains_key(&id) {
            Some("#microsoft.graph.user")
        } else if self.group(&id).is_some() {
            Some("#microsoft.graph.group")
        } else if has(&self.devices) {
            Some("#microsoft.graph.device")
        } else if has(&self.service_principals) {
            Some("#microsoft.graph.servicePrincipal")
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRegistration {
    pub client_id: String,
    #[serde(default)]
    pub secrets: Vec<ClientSecret>,
    /// SHA-1 thumbprints (hex) of certificates uploaded to the app.
    #[serde(default)]
    pub certificate_thumbprints: Vec<String>,
    /// When the uploaded certificates expire (`keyCredentials[].endDateTime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates_expire: Option<DateTime<Utc>>,
    /// `sub` claims of federated (workload identity) tokens the app accepts.
    #[serde(default)]
    pub federated_subjects: Vec<String>,
    /// Application permissions granted by admin consent, such as `Group.Read.All`.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Where sign-in may send a person back (OpenID Connect `redirect_uri`s).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// App roles assigned to people in this directory's enterprise application (the ID
    /// token's `roles` claim).
    #[serde(default)]
    pub app_role_assignments: Vec<AppRoleAssignment>,
}

/// An app role (its value, such as `DirSync.TenantAdmin`) assigned to a user (object ID).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRoleAssignment {
    pub user: String,
    pub role: String,
}

impl AppRegistration {
    /// An app consented with the three permissions dirsync needs and one secret.
    pub fn consented(client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            secrets: vec![ClientSecret {
                value: secret.into(),
                expires: None,
            }],
            certificate_thumbprints: Vec::new(),
            certificates_expire: None,
            federated_subjects: Vec::new(),
            redirect_uris: Vec::new(),
            app_role_assignments: Vec::new(),
            permissions: vec![
                "Group.Read.All".into(),
                "GroupMember.Read.All".into(),
                "User.Read.All".into(),
            ],
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSecret {
    pub value: String,
    #[serde(default)]
    pub expires: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub id: String,
    #[serde(rename = "displayName")]
    pub display_name: String,
    /// Direct members in order: users, nested groups, devices, service principals.
    #[serde(default)]
    pub members: Vec<String>,
}

fn users_in<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, Map<String, Value>>, D::Error> {
    let list = Vec::<Map<String, Value>>::deserialize(deserializer)?;
    list.into_iter()
        .map(|user| {
            let id = user
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| serde::de::Error::custom("every user needs a string \"id\""))?
                .to_ascii_lowercase();
            Ok((id, user))
        })
        .collect()
}

fn users_out<S: Serializer>(
    users: &BTreeMap<String, Map<String, Value>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(users.values())
}
