//! The extractors every guarded route takes, so a handler never checks access itself:
//!
//! | extractor | who gets through | otherwise |
//! |---|---|---|
//! | [`Signed`] | any caller | 401 |
//! | [`TenantAccess<Read>`] | a viewer, tenant admin or operator of `{tenant}` | 401, 404, 403 |
//! | [`TenantAccess<Operate>`] | a tenant admin or operator of `{tenant}` | 401, 404, 403 |
//! | [`ConfigureTenant`] | an operator (the tenant may not exist yet) | 401, 404/403 |
//! | [`Operator`] | an operator | 401, 403 |
//!
//! A caller without a grant on a tenant gets the same 404 as for a tenant that does not exist,
//! so a tenant's existence is not revealed. Every extractor first checks CSRF ([`super::csrf`]).
//! [`Page`] wraps any of them for a page route: anonymous visitors are sent to sign in.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, Path};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};

use super::Auth;
use super::caller::{Caller, rank};
use super::csrf;
use crate::domain::{AccessRole, TenantKey};
use crate::http::ApiError;
use crate::tenant::Tenant;

/// Any authenticated caller (CSRF checked for state-changing session requests).
#[derive(Debug, Clone)]
pub struct Signed(pub Arc<Caller>);

impl<S> FromRequestParts<S> for Signed
where
    Arc<Auth>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Arc<Caller>>() {
            return Ok(Self(caller.clone()));
        }
        let auth = Arc::<Auth>::from_ref(state);
        let caller = Arc::new(auth.authenticate(parts).await?);
        csrf::check(parts, &caller, auth.settings())?;
        parts.extensions.insert(caller.clone());
        Ok(Self(caller))
    }
}

/// The least role a tenant route needs.
pub trait TenantNeed: Send + Sync + 'static {
    const ROLE: AccessRole;
    /// What the role allows, for the 403 sentence.
    const ACTION: &'static str;
}

/// Reading a tenant: its configuration (secrets redacted), groups, runs and reports.
#[derive(Debug)]
pub struct Read;

impl TenantNeed for Read {
    const ROLE: AccessRole = AccessRole::Viewer;
    const ACTION: &'static str = "read";
}

/// Operating a tenant: force a sync, approve a held run, preview.
#[derive(Debug)]
pub struct Operate;

impl TenantNeed for Operate {
    const ROLE: AccessRole = AccessRole::TenantAdmin;
    const ACTION: &'static str = "force syncs, approve held runs or preview";
}

/// The path's `{tenant}`, resolved, with the caller's role on it.
#[derive(Debug)]
pub struct TenantAccess<N> {
    pub caller: Arc<Caller>,
    pub tenant: Tenant,
    pub role: AccessRole,
    need: PhantomData<N>,
}

fn no_tenant(key: &str) -> ApiError {
    ApiError::NotFound(format!("no tenant with key {key:?}"))
}

async fn path_tenant(parts: &mut Parts) -> Result<String, ApiError> {
    let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, &())
        .await
        .map_err(ApiError::from)?;
    params
        .get("tenant")
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the route has no {{tenant}}")))
}

impl<S, N> FromRequestParts<S> for TenantAccess<N>
where
    Arc<Auth>: FromRef<S>,
    S: Send + Sync,
    N: TenantNeed,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Signed(caller) = Signed::from_request_parts(parts, state).await?;
        let text = path_tenant(parts).await?;
        let key = TenantKey::parse(&text).map_err(|_| no_tenant(&text))?;
        let role = caller
            .access
            .role_on(&key)
            .ok_or_else(|| no_tenant(&text))?;
        let auth = Arc::<Auth>::from_ref(state);
        let tenant = auth
            .store()
            .tenant(&key)
            .await?
            .ok_or_else(|| no_tenant(&text))?;
        if rank(role) < rank(N::ROLE) {
            return Err(ApiError::Forbidden(format!(
                "{} of tenant {key} may not {}",
                plural(role),
                N::ACTION
            )));
        }
        Ok(Self {
            caller,
            tenant,
            role,
            need: PhantomData,
        })
    }
}

fn plural(role: AccessRole) -> &'static str {
    match role {
        AccessRole::Viewer => "viewers",
        AccessRole::TenantAdmin => "tenant admins",
        AccessRole::Operator => "operators",
    }
}

/// An operator configuring `{tenant}`, which may not exist yet.
#[derive(Debug)]
pub struct ConfigureTenant {
    pub caller: Arc<Caller>,
    pub key: TenantKey,
    pub current: Option<Tenant>,
}

impl<S> FromRequestParts<S> for ConfigureTenant
where
    Arc<Auth>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Signed(caller) = Signed::from_request_parts(parts, state).await?;
        let text = path_tenant(parts).await?;
        if !caller.access.operator {
            let held = TenantKey::parse(&text)
                .ok()
                .and_then(|key| caller.access.role_on(&key));
            return Err(match held {
                Some(role) => ApiError::Forbidden(format!(
                    "{} may not change a tenant's configuration; operators do",
                    plural(role)
                )),
                None => no_tenant(&text),
            });
        }
        let key = TenantKey::parse(&text).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let auth = Arc::<Auth>::from_ref(state);
        let current = auth.store().tenant(&key).await?;
        Ok(Self {
            caller,
            key,
            current,
        })
    }
}

/// An operator (tenants, access grants, API tokens, the audit log).
#[derive(Debug)]
pub struct Operator(pub Arc<Caller>);

impl<S> FromRequestParts<S> for Operator
where
    Arc<Auth>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Signed(caller) = Signed::from_request_parts(parts, state).await?;
        if !caller.access.operator {
            return Err(ApiError::Forbidden("only operators may do this".to_owned()));
        }
        Ok(Self(caller))
    }
}

/// A page route's guard: as `E`, but an anonymous visitor is redirected to sign in and comes
/// back here afterwards, and a refusal is a page (with the API's status and sentence).
#[derive(Debug)]
pub struct Page<E>(pub E);

/// Where sign-in starts.
pub const SIGN_IN_PATH: &str = "/sign-in";

impl<S, E> FromRequestParts<S> for Page<E>
where
    E: FromRequestParts<S, Rejection = ApiError> + Send,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match E::from_request_parts(parts, state).await {
            Ok(inner) => Ok(Self(inner)),
            Err(ApiError::Unauthorized(_)) => {
                let here = parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair("return_to", &here)
                    .finish();
                Err(Redirect::to(&format!("{SIGN_IN_PATH}?{query}")).into_response())
            }
            Err(other) => Err(crate::http::error_page(other)),
        }
    }
}
