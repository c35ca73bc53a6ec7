//! Who is calling and what they may do: a signed-in person (session) or an API token, with the
//! roles their grants, app roles or token give them on each tenant.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::{AccessRole, TenantKey};
use crate::store::access::{EntraIdentity, GrantRecord, SecretHash, SessionRecord, TokenRecord};

/// The app roles of the sign-in app registration (Entra "App roles", assigned to people or
/// groups in each customer's enterprise application).
pub mod app_roles {
    /// Operator everywhere; honoured only from the configured operator directory.
    pub const OPERATOR: &str = "DirSync.Operator";
    /// Tenant admin of every dirsync tenant synced from the person's own directory.
    pub const TENANT_ADMIN: &str = "DirSync.TenantAdmin";
    /// Viewer of every dirsync tenant synced from the person's own directory.
    pub const VIEWER: &str = "DirSync.Viewer";
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A browser session (cookie): state-changing requests need its CSRF token.
    Session {
        id_hash: SecretHash,
        csrf_token: String,
    },
    /// `Authorization: Bearer dsy_…`: exempt from CSRF (a browser never sends it by itself).
    Token { id: i64 },
}

/// Where a request came from, for the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClientInfo {
    pub ip: Option<String>,
    /// `X-Forwarded-For` as received (recorded, never trusted for decisions).
    pub forwarded_for: Option<String>,
    pub user_agent: Option<String>,
}

/// What a caller may do: operator everywhere, or a role per tenant (the highest one held).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Access {
    pub operator: bool,
    pub tenants: BTreeMap<TenantKey, AccessRole>,
}

impl Access {
    /// The caller's role on `tenant`, if any: operators hold on every tenant.
    pub fn role_on(&self, tenant: &TenantKey) -> Option<AccessRole> {
        if self.operator {
            Some(AccessRole::Operator)
        } else {
            self.tenants.get(tenant).copied()
        }
    }

    fn add(&mut self, role: AccessRole, tenant: Option<&TenantKey>) {
        match (role, tenant) {
            (AccessRole::Operator, _) => self.operator = true,
            (role, Some(tenant)) => {
                let held = self.tenants.entry(tenant.clone()).or_insert(role);
                if rank(role) > rank(*held) {
                    *held = role;
                }
            }
            (_, None) => {}
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.operator && self.tenants.is_empty()
    }

    /// A person's access: their grants, plus what their app roles give. `directory_tenants`
    /// are the dirsync tenants synced from the person's own Entra directory; `operator_directory`
    /// is the one directory whose operator app role counts.
    pub fn of_person(
        identity: &EntraIdentity,
        grants: &[GrantRecord],
        app_roles: &[String],
        directory_tenants: &[TenantKey],
        operator_directory: Option<&crate::domain::EntraObjectId>,
    ) -> Self {
        let mut access = Self::default();
        for grant in grants.iter().filter(|g| &g.identity == identity) {
            access.add(grant.role, grant.tenant.as_ref());
        }
        for role in app_roles {
            match role.as_str() {
                app_roles::OPERATOR if operator_directory == Some(&identity.tenant_id) => {
                    access.add(AccessRole::Operator, None)
                }
                app_roles::TENANT_ADMIN => directory_tenants
                    .iter()
                    .for_each(|t| access.add(AccessRole::TenantAdmin, Some(t))),
                app_roles::VIEWER => directory_tenants
                    .iter()
                    .for_each(|t| access.add(AccessRole::Viewer, Some(t))),
                _ => {}
            }
        }
        access
    }

    /// An API token's access: exactly its role, on its tenant.
    pub fn of_token(token: &TokenRecord) -> Self {
        let mut access = Self::default();
        access.add(token.role, token.tenant.as_ref());
        access
    }
}

/// Viewer < tenant admin < operator.
pub fn rank(role: AccessRole) -> u8 {
    match role {
        AccessRole::Viewer => 1,
        AccessRole::TenantAdmin => 2,
        AccessRole::Operator => 3,
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who, as a person reads it: what "forced by" and "approved by" show.
    pub name: String,
    /// Who, as a machine matches it: `entra:{tid}/{oid}` or `token:{id}`.
    pub actor_id: String,
    pub credential: Credential,
    pub access: Access,
    pub client: ClientInfo,
}

impl Caller {
    pub fn from_session(session: &SessionRecord, access: Access, client: ClientInfo) -> Self {
        let name = match &session.username {
            Some(username) if username != &session.name => {
                format!("{} ({username})", session.name)
            }
            _ => session.name.clone(),
        };
        Self {
            name,
            actor_id: format!("entra:{}", session.identity),
            credential: Credential::Session {
                id_hash: session.id_hash,
                csrf_token: session.csrf_token.clone(),
            },
            access,
            client,
        }
    }

    pub fn from_token(token: &TokenRecord, client: ClientInfo) -> Self {
        Self {
            name: format!("token {} ({})", token.prefix, token.name),
            actor_id: format!("token:{}", token.id),
            credential: Credential::Token { id: token.id },
            access: Access::of_token(token),
            client,
        }
    }

    pub fn csrf_token(&self) -> Option<&str> {
        match &self.credential {
            Credential::Session { csrf_token, .. } => Some(csrf_token),
            Credential::Token { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EntraObjectId;

    fn id(n: u128) -> EntraObjectId {
        uuid::Uuid::from_u128(n).into()
    }

    fn key(text: &str) -> TenantKey {
        TenantKey::parse(text).unwrap()
    }

    #[test]
    fn app_roles_grant_only_within_the_persons_own_directory() {
        let operators = id(1);
        let customer = EntraIdentity {
            tenant_id: id(2),
            object_id: id(20),
        };
        let roles = vec![
            app_roles::OPERATOR.to_owned(),
            app_roles::VIEWER.to_owned(),
            app_roles::TENANT_ADMIN.to_owned(),
        ];
        let access = Access::of_person(&customer, &[], &roles, &[key("acme")], Some(&operators));
        assert!(
            !access.operator,
            "a customer's Entra admin cannot make themselves an operator"
        );
        assert_eq!(access.role_on(&key("acme")), Some(AccessRole::TenantAdmin));
        assert_eq!(access.role_on(&key("beta")), None);

        let staff = EntraIdentity {
            tenant_id: operators.clone(),
            object_id: id(10),
        };
        let access = Access::of_person(&staff, &[], &roles[..1], &[], Some(&operators));
        assert!(access.operator);
        assert_eq!(access.role_on(&key("beta")), Some(AccessRole::Operator));
        let access = Access::of_person(&staff, &[], &roles[..1], &[], None);
        assert!(access.is_empty(), "no operator directory configured");
    }

    #[test]
    fn grants_give_the_highest_role_held_per_tenant() {
        let person = EntraIdentity {
            tenant_id: id(2),
            object_id: id(20),
        };
        let grant = |role, tenant: &str| GrantRecord {
            id: 1,
            identity: person.clone(),
            role,
            tenant: Some(key(tenant)),
            label: None,
            granted_by: "t".to_owned(),
            granted_at: chrono::Utc::now(),
        };
        let grants = [
            grant(AccessRole::TenantAdmin, "acme"),
            grant(AccessRole::Viewer, "beta"),
        ];
        let access = Access::of_person(
            &person,
            &grants,
            &[app_roles::VIEWER.to_owned()],
            &[key("acme")],
            None,
        );
        assert_eq!(access.role_on(&key("acme")), Some(AccessRole::TenantAdmin));
        assert_eq!(access.role_on(&key("beta")), Some(AccessRole::Viewer));
    }
}
