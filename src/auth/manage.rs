//! Managing access, shared by the API and the CLI: checking a grant or token request and
//! issuing API tokens.

use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;

use super::credential::new_api_token;
use super::settings::TokenSettings;
use crate::domain::{AccessRole, EntraObjectId, TenantKey};
use crate::store::StoreError;
use crate::store::access::{AccessStore, EntraIdentity, NewGrant, NewToken, TokenRecord};

/// The longest label or token name.
pub const MAX_NAME_CHARS: usize = 100;

/// Why a grant or token request was refused, or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A role and its scope must agree: operators hold everywhere, the others on one tenant.
pub fn scope(role: AccessRole, tenant: Option<&str>) -> Result<Option<TenantKey>, ManageError> {
    match (role, tenant) {
        (AccessRole::Operator, None) => Ok(None),
        (AccessRole::Operator, Some(_)) => Err(ManageError::Invalid(
            "an operator holds on every tenant; give no tenant".to_owned(),
        )),
        (role, None) => Err(ManageError::Invalid(format!(
            "a {} grant or token needs a tenant",
            role.as_str()
        ))),
        (_, Some(text)) => TenantKey::parse(text)
            .map(Some)
            .map_err(|e| ManageError::Invalid(format!("tenant: {e}"))),
    }
}

fn name(what: &str, text: &str) -> Result<String, ManageError> {
    let text = text.trim();
    if text.is_empty()
        || text.chars().count() > MAX_NAME_CHARS
        || text.chars().any(char::is_control)
    {
        return Err(ManageError::Invalid(format!(
            "{what} must be 1 to {MAX_NAME_CHARS} printable characters"
        )));
    }
    Ok(text.to_owned())
}

/// A grant as asked for: the person's directory and object IDs (GUIDs), a role and its scope.
pub fn new_grant(
    entra_tenant_id: &str,
    entra_object_id: &str,
    role: AccessRole,
    tenant: Option<&str>,
    label: Option<&str>,
    granted_by: &str,
) -> Result<NewGrant, ManageError> {
    let guid = |what: &str, text: &str| {
        EntraObjectId::parse(text).map_err(|_| {
            ManageError::Invalid(format!(
                "{what} {text:?} is not a GUID (the person's {what} from Entra)"
            ))
        })
    };
    Ok(NewGrant {
        identity: EntraIdentity {
            tenant_id: guid("entra_tenant_id", entra_tenant_id)?,
            object_id: guid("entra_object_id", entra_object_id)?,
        },
        role,
        tenant: scope(role, tenant)?,
        label: label.map(|l| name("label", l)).transpose()?,
        granted_by: granted_by.to_owned(),
    })
}

/// Issues an API token: returns the token itself (to be shown once, never again) and its record.
#[allow(clippy::too_many_arguments)]
pub async fn issue_token(
    store: &dyn AccessStore,
    limits: &TokenSettings,
    token_name: &str,
    role: AccessRole,
    tenant: Option<&str>,
    expires_in_days: Option<u32>,
    created_by: &str,
    now: DateTime<Utc>,
) -> Result<(SecretString, TokenRecord), ManageError> {
    let days = expires_in_days.unwrap_or(limits.default_days);
    if days == 0 || days > limits.max_days {
        return Err(ManageError::Invalid(format!(
            "expires_in_days must be 1 to {} (setting auth.tokens.max_days), not {days}",
            limits.max_days
        )));
    }
    let issued = new_api_token();
    let record = store
        .create_token(&NewToken {
            prefix: issued.prefix,
            secret_hash: issued.hash,
            name: name("name", token_name)?,
            role,
            tenant: scope(role, tenant)?,
            created_by: created_by.to_owned(),
            created_at: now,
            expires_at: now + Duration::days(i64::from(days)),
        })
        .await?;
    Ok((issued.token, record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_and_its_scope_must_agree() {
        assert!(scope(AccessRole::Operator, None).unwrap().is_none());
        assert!(scope(AccessRole::Operator, Some("acme")).is_err());
        assert!(scope(AccessRole::Viewer, None).is_err());
        assert!(scope(AccessRole::Viewer, Some("Not A Key")).is_err());
        let err = new_grant("x", "y", AccessRole::Operator, None, None, "t").unwrap_err();
        assert!(err.to_string().contains("entra_tenant_id"), "{err}");
    }
}
