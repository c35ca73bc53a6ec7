//! The Microsoft Graph `DirectorySource`: reads a tenant's selected groups and their direct user
//! members with application permissions, exactly as SPEC "Source" lists the requests.
//!
//! A [`GraphConnector`] is built once per process from [`GraphSettings`]; it holds the one HTTP
//! client for Graph and the authority, and one credential (with its token cache) per tenant.
//! [`GraphConnector::source_for`] gives the `DirectorySource` of one tenant.

mod auth;
mod check;
mod http;
mod settings;
pub mod wire;

use foldhash::{HashMap, HashMapExt as _, HashSet, HashSetExt as _};
use std::pin::pin;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use futures::StreamExt as _;
use futures::future::{self, Either};
use reqwest::StatusCode;
use tracing::instrument;

pub use auth::REQUIRED_PERMISSIONS;
pub use check::{CheckReport, GroupCheck, GroupCheckOutcome, TokenCheck, check_connection};
pub use settings::{
    CredentialSettings, DEFAULT_CONCURRENCY, GraphSettings, PUBLIC_AUTHORITY_HOST, SettingsError,
    TenantSourceOverrides,
};

use self::auth::SignIn;
use self::http::{
    Answer, Attempt, GetError, GetRequest, RetryBudget, RetryPolicy, StatsCounter, get_with_retries,
};
use self::wire::{GraphGroup, GraphPage, USER_SELECT};
use super::{
    DirectorySource, GroupCount, GroupCountOutcome, PersonFetch, PersonOutcome, SharedUsers,
    SourceError, SourceFetch, UserPresence,
};
use crate::domain::EntraObjectId;
use crate::plan::{
    GroupFetch, GroupOutcome, MAX_GROUP_MEMBERS, Note, Severity, SnapshotUser, SourceSnapshot,
    Subject, UserLabel,
};
use crate::tenant::Tenant;

/// Item 7: pages in a row that add no member while linking to another page, before a group's
/// read is given up as a loop (Graph may send a few empty pages; it does not send ten).
const MAX_PAGES_WITHOUT_PROGRESS: usize = 10;

/// The most members a page holds (`$top`, SPEC "Source").
const PAGE_SIZE: usize = 999;

/// How much of a page's start is read for its next link before the whole page is waited for
/// (Graph gives the link within its first hundred bytes).
const LEADING_LINK_WITHIN: usize = 64 * 1024;

/// The most room made ahead for a page as it arrives: 999 members with long names fit in 2 MiB.
const PAGE_ROOM: u64 = 2 * 1024 * 1024;

/// Built once per process: the HTTP client and the per-tenant credentials (each with its own
/// token cache, refreshed by `azure_identity` five minutes before expiry).
#[derive(Clone)]
pub struct GraphConnector {
    inner: Arc<ConnectorInner>,
}

struct ConnectorInner {
    settings: GraphSettings,
    http: reqwest::Client,
    credentials: Mutex<HashMap<CredentialKey, Arc<dyn TokenCredential>>>,
}

/// One credential per tenant and app registration: overriding a tenant's app gives it its own,
/// and a changed override (a rotated secret) a new one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CredentialKey {
    tenant_id: String,
    client_id: String,
    /// SHA-256 of the overriding credential, if there is one.
    overridden: Option<[u8; 32]>,
}

impl std::fmt::Debug for GraphConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphConnector")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl GraphConnector {
    pub fn new(settings: GraphSettings) -> Result<Self, SettingsError> {
        settings.validate()?;
        let mut builder = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("dirsync/", env!("CARGO_PKG_VERSION")));
        for pem in &settings.extra_root_certificates_pem {
            let cert = reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|e| {
                SettingsError::Invalid {
                    field: "extra_root_certificates_pem",
                    problem: e.to_string(),
                }
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder.build().map_err(|e| SettingsError::Invalid {
            field: "http client",
            problem: e.to_string(),
        })?;
        Ok(Self {
            inner: Arc::new(ConnectorInner {
                settings,
                http,
                credentials: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn settings(&self) -> &GraphSettings {
        &self.inner.settings
    }

    /// The `DirectorySource` of one tenant, with the tenant's overrides from `Tenant.source`
    /// (whose secrets must be read already: `Tenant::resolved`).
    pub fn source_for(&self, tenant: &Tenant) -> Result<GraphSource, SourceError> {
        let overrides = TenantSourceOverrides::from_settings(&tenant.source)
            .map_err(|e| SourceError::Other(format!("tenant {}: {e}", tenant.key)))?;
        self.source_for_tenant_id(&tenant.entra_tenant_id.to_string(), &overrides)
    }

    /// As [`source_for`](Self::source_for), from the bare Entra tenant ID.
    pub fn source_for_tenant_id(
        &self,
        tenant_id: &str,
        overrides: &TenantSourceOverrides,
    ) -> Result<GraphSource, SourceError> {
        let settings = &self.inner.settings;
        let client_id = overrides
            .client_id
            .clone()
            .unwrap_or_else(|| settings.client_id.clone());
        let credential_settings = overrides
            .credential
            .as_ref()
            .unwrap_or(&settings.credential);
        let sign_in = SignIn {
            tenant_id: tenant_id.to_owned(),
            client_id: client_id.clone(),
            authority_host: settings.authority_host.clone(),
        };
        let key = CredentialKey {
            tenant_id: tenant_id.to_owned(),
            client_id,
            overridden: overrides
                .credential
                .as_ref()
                .map(CredentialSettings::fingerprint),
        };
        let credential = {
            let mut cache = self
                .inner
                .credentials
                .lock()
                .map_err(|_| SourceError::Other("the credential cache is poisoned".into()))?;
            match cache.get(&key) {
                Some(existing) => existing.clone(),
                None => {
                    let built = auth::build_credential(
                        settings,
                        &sign_in,
                        credential_settings,
                        self.inner.http.clone(),
                    )?;
                    cache.insert(key, built.clone());
                    built
                }
            }
        };
        Ok(GraphSource {
            connector: self.inner.clone(),
            sign_in,
            credential,
            scope: auth::graph_scope(&settings.graph_base_url),
        })
    }
}

/// The Microsoft Graph `DirectorySource` of one tenant.
#[derive(Clone)]
pub struct GraphSource {
    connector: Arc<ConnectorInner>,
    sign_in: SignIn,
    credential: Arc<dyn TokenCredential>,
    scope: String,
}

impl std::fmt::Debug for GraphSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphSource")
            .field("tenant_id", &self.sign_in.tenant_id)
            .field("client_id", &self.sign_in.client_id)
            .finish_non_exhaustive()
    }
}

/// How one group's read ended before it becomes a `GroupOutcome`: an auth-class failure is kept
/// apart so that a read where every group was refused becomes `SourceError::Authentication`.
enum GroupRead {
    Outcome(GroupOutcome),
    Refused(String),
}

impl GraphSource {
    pub fn tenant_id(&self) -> &str {
        &self.sign_in.tenant_id
    }

    /// A token for Graph, from the credential's cache when still fresh.
    pub async fn token(&self) -> Result<String, SourceError> {
        let scopes = [self.scope.as_str()];
        match self.credential.get_token(&scopes, None).await {
            Ok(token) => Ok(token.token.secret().to_owned()),
            Err(e) => Err(auth::token_error(&self.sign_in, &e)),
        }
    }

    fn policy(&self) -> RetryPolicy {
        let s = &self.connector.settings;
        RetryPolicy {
            max_retries: s.max_retries,
            max_wait: s.max_retry_wait,
            backoff_base: s.backoff_base,
            backoff_max: s.backoff_max,
        }
    }

    fn url(&self, path_and_query: &str) -> String {
        let base = self
            .connector
            .settings
            .graph_base_url
            .as_str()
            .trim_end_matches('/');
        format!("{base}{path_and_query}")
    }

    async fn get(
        &self,
        url: &str,
        consistency_eventual: bool,
        budget: &mut RetryBudget,
        stats: &StatsCounter,
    ) -> Result<bytes::Bytes, GetError> {
        let token = self.token().await.map_err(GetError::Token)?;
        get_with_retries(
            &self.connector.http,
            GetRequest {
                url,
                token: &token,
                consistency_eventual,
                arriving: false,
            },
            &self.policy(),
            budget,
            stats,
        )
        .await
    }

    /// One attempt at a page of members, taken ahead of knowing whether it will be wanted;
    /// carried on with [`Self::keep_asking_page`] if it is. A page is handed over as it arrives.
    async fn ask_page_once(&self, url: &str, stats: &StatsCounter) -> Attempt {
        let token = match self.token().await {
            Ok(token) => token,
            Err(err) => return Attempt::Failed(GetError::Token(err)),
        };
        let request = GetRequest {
            url,
            token: &token,
            consistency_eventual: false,
            arriving: true,
        };
        http::attempt(&self.connector.http, &request, &self.policy(), 0, stats).await
    }

    /// The rest of asking for a page whose first attempt was [`Self::ask_page_once`]: retried
    /// as any other GET, a 2xx handed over as it arrives when `arriving`, else read whole.
    async fn keep_asking_page(
        &self,
        url: &str,
        first: Attempt,
        arriving: bool,
        budget: &mut RetryBudget,
        stats: &StatsCounter,
    ) -> Result<Answer, GetError> {
        match first {
            Attempt::Answered(answer) => return Ok(answer),
            Attempt::Failed(failure) => return Err(failure),
            Attempt::Retry { .. } => {}
        }
        let token = self.token().await.map_err(GetError::Token)?;
        http::keep_trying(
            &self.connector.http,
            GetRequest {
                url,
                token: &token,
                consistency_eventual: false,
                arriving,
            },
            first,
            &self.policy(),
            budget,
            stats,
        )
        .await
    }

    /// A page whose body broke off as it arrived (`broke` says how), taken as a failed attempt:
    /// asked again after a back-off and within the group's retry budget, read whole this time.
    async fn ask_page_again(
        &self,
        url: &str,
        broke: String,
        budget: &mut RetryBudget,
        stats: &StatsCounter,
    ) -> Result<Answer, GetError> {
        let broken = Attempt::Retry {
            failure: GetError::Transport(broke),
            wait: http::backoff(&self.policy(), 0),
            answered_at: tokio::time::Instant::now(),
        };
        self.keep_asking_page(url, broken, false, budget, stats)
            .await
    }

    /// A page of members, retried as any other GET, handed over as it arrives.
    async fn ask_page(
        &self,
        url: &str,
        budget: &mut RetryBudget,
        stats: &StatsCounter,
    ) -> Result<Answer, GetError> {
        let first = self.ask_page_once(url, stats).await;
        self.keep_asking_page(url, first, true, budget, stats).await
    }

    /// A failed GET as the group's reason; 401/403 are refusals, worded for the operator.
    fn refusal_or_failure(&self, what: &str, err: &GetError) -> GroupRead {
        match err {
            GetError::Status { status, graph, .. } if *status == StatusCode::FORBIDDEN => {
                let message = graph
                    .as_ref()
                    .map(|g| g.message.as_str())
                    .unwrap_or("Forbidden");
                if err.graph_code() == Some("Authorization_RequestDenied") {
                    GroupRead::Refused(auth::permission_denied(&self.sign_in, message))
                } else {
                    GroupRead::Refused(format!("{what}: {}", err.describe()))
                }
            }
            GetError::Status { status, .. } if *status == StatusCode::UNAUTHORIZED => {
                GroupRead::Refused(format!(
                    "{what}: Graph refused the access token of app {} for tenant {}: {}",
                    self.sign_in.client_id,
                    self.sign_in.tenant_id,
                    err.describe()
                ))
            }
            GetError::Token(e) => GroupRead::Refused(e.to_string()),
            _ => GroupRead::Outcome(GroupOutcome::Failed {
                reason: format!("{what}: {}", err.describe()),
            }),
        }
    }

    /// The group's display name, or how reading it ended (Deleted only on 404
    /// `Request_ResourceNotFound`).
    async fn read_group(
        &self,
        id: &EntraObjectId,
        budget: &mut RetryBudget,
        stats: &StatsCounter,
    ) -> Result<String, GroupRead> {
        let url = self.url(&format!("/v1.0/groups/{id}?$select=id,displayName"));
        let body = match self.get(&url, false, budget, stats).await {
            Ok(body) => body,
            Err(err) => {
                if let GetError::Status { status, .. } = &err {
                    if *status == StatusCode::NOT_FOUND
                        && err.graph_code() == Some("Request_ResourceNotFound")
                    {
                        return Err(GroupRead::Outcome(GroupOutcome::Deleted));
                    }
                }
                return Err(self.refusal_or_failure("reading the group failed", &err));
            }
        };
        let group: GraphGroup = serde_json::from_slice(&body).map_err(|e| {
            GroupRead::Outcome(GroupOutcome::Failed {
                reason: format!("the group's answer is not the JSON Graph sends: {e}"),
            })
        })?;
        if !group.id.eq_ignore_ascii_case(&id.to_string()) {
            return Err(GroupRead::Outcome(GroupOutcome::Failed {
                reason: format!("Graph answered with group {} when asked for {id}", group.id),
            }));
        }
        Ok(group.display_name.unwrap_or_default())
    }

    /// Issue 14: one person, `GET /users/{id | userPrincipalName}`, then the groups they are a
    /// direct member of, `GET /users/{id}/memberOf/microsoft.graph.group` (every page), kept
    /// to `groups`.
    async fn fetch_person(
        &self,
        asked: &str,
        groups: &[EntraObjectId],
        stats: &StatsCounter,
    ) -> Result<PersonOutcome, SourceError> {
        let mut budget = RetryBudget::default();
        let failed = |what: &str, err: &GetError| match self.refusal_or_failure(what, err) {
            GroupRead::Refused(reason) => Err(SourceError::Authentication(reason)),
            _ => Ok(PersonOutcome::Failed {
                reason: format!("{what}: {}", err.describe()),
            }),
        };
        let url = self.url(&format!(
            "/v1.0/users/{}?$select={USER_SELECT}",
            path_segment(asked)
        ));
        let body = match self.get(&url, false, &mut budget, stats).await {
            Ok(body) => body,
            Err(GetError::Token(e)) => return Err(e),
            Err(err)
                if matches!(&err, GetError::Status { status, .. } if *status == StatusCode::NOT_FOUND)
                    && err.graph_code() == Some("Request_ResourceNotFound") =>
            {
                return Ok(PersonOutcome::NotFound);
            }
            Err(err) => return failed("reading the user failed", &err),
        };
        let user = match serde_json::from_slice::<serde_json::Value>(&body)
            .map_err(|e| format!("the user's answer is not the JSON Graph sends: {e}"))
            .and_then(wire::member_entry)
        {
            Ok(wire::MemberEntry::User { user, .. }) => user,
            Ok(wire::MemberEntry::NotAUser { odata_type, .. }) => {
                return Ok(PersonOutcome::Failed {
                    reason: format!("Graph answered with a {odata_type}, not a user"),
                });
            }
            Err(reason) => return Ok(PersonOutcome::Failed { reason }),
        };
        let mut member_of = Vec::new();
        let mut url = self.url(&format!(
            "/v1.0/users/{}/memberOf/microsoft.graph.group?$select=id,displayName&$top=999",
            user.id
        ));
        let mut links_followed: HashSet<String> = HashSet::new();
        loop {
            let body = match self.get(&url, false, &mut budget, stats).await {
                Ok(body) => body,
                Err(GetError::Token(e)) => return Err(e),
                Err(err) => return failed("reading the user's group memberships failed", &err),
            };
            let page: GraphPage<GraphGroup> = match serde_json::from_slice(&body) {
                Ok(page) => page,
                Err(e) => {
                    return Ok(PersonOutcome::Failed {
                        reason: format!(
                            "the user's group memberships are not the JSON Graph sends: {e}"
                        ),
                    });
                }
            };
            for group in page.value.unwrap_or_default() {
                if let Some(selected) = groups
                    .iter()
                    .find(|g| g.to_string().eq_ignore_ascii_case(&group.id))
                {
                    if !member_of.contains(selected) {
                        member_of.push(selected.clone());
                    }
                }
            }
            match page.next_link {
                Some(next) if self.same_origin(&next) && links_followed.insert(next.clone()) => {
                    url = next
                }
                Some(next) => {
                    return Ok(PersonOutcome::Failed {
                        reason: format!(
                            "the user's group memberships link to {:?}, which was not followed",
                            wire::truncate(&next, 200)
                        ),
                    });
                }
                None => break,
            }
        }
        Ok(PersonOutcome::Found { user, member_of })
    }

    /// Checks that a `@odata.nextLink` stays on the Graph host before a token is sent there.
    fn same_origin(&self, link: &str) -> bool {
        let Ok(link) = url::Url::parse(link) else {
            return false;
        };
        let base = &self.connector.settings.graph_base_url;
        link.scheme() == base.scheme()
            && link.host_str() == base.host_str()
            && link.port_or_known_default() == base.port_or_known_default()
    }

    /// The first page of a group's direct user members.
    fn members_url(&self, id: &EntraObjectId) -> String {
        self.url(&format!(
            "/v1.0/groups/{id}/members/microsoft.graph.user?$select={USER_SELECT}&$top={PAGE_SIZE}"
        ))
    }

    /// Every direct user member of the group, page by page from the first page's address
    /// (`first_url`, [`Self::members_url`]) and attempt (`first`), with the report's notes
    /// about what was ignored or cleaned on the way (see [`wire::member_entry`]).
    async fn read_members(
        &self,
        group: &GroupLabel<'_>,
        (first_url, first): (&str, Attempt),
        budget: &mut RetryBudget,
        stats: &StatsCounter,
        shared: &SharedUsers,
    ) -> Result<(Vec<Arc<SnapshotUser>>, Vec<Note>), GroupRead> {
        let failed = |reason: String| GroupRead::Outcome(GroupOutcome::Failed { reason });
        // Each member is made compact as its page is decoded, and shared with the other groups
        // as it is taken in: a 40,000-member group is never held in full (issue 13).
        let mut intake = MemberIntake::new(group, shared);
        let mut page_number = 0usize;
        // Item 7: paging that makes no progress ends the read with an error, never a loop.
        let mut links_followed: HashSet<String> = HashSet::new();
        let mut response = self
            .keep_asking_page(first_url, first, true, budget, stats)
            .await;
        // The address of the page being read: a page whose body breaks off is asked again.
        let mut url = first_url.to_owned();
        // The page decoded last, taken in while the next one is decoded and the one after it
        // asked for: taking a page in is off the chain of pages (issue 13).
        let mut decoded: Option<DecodedPage> = None;
        // What is wrong with a page is said before anything of the pages after it: the page
        // before is taken in first.
        let fail =
            |intake: &mut MemberIntake, decoded: &mut Option<DecodedPage>, why: GroupRead| {
                match decoded.take().map(|page| intake.take(page)) {
                    Some(Err(earlier)) => failed(earlier),
                    _ => why,
                }
            };
        loop {
            page_number += 1;
            let mut arriving = match response {
                Ok(answer) => ArrivingPage::new(answer),
                Err(err) => {
                    let why = self.refusal_or_failure(
                        &format!("reading page {page_number} of the group's members failed"),
                        &err,
                    );
                    return Err(fail(&mut intake, &mut decoded, why));
                }
            };
            // Issue 13: the next page is asked for as soon as this page's start names it, while
            // the rest of this page arrives; otherwise once this page has come and been read as
            // far as its link and where its entries lie (one pass, nothing copied). Either way
            // this page's entries are decoded on the blocking pool while the next one is asked
            // for, so a large group's chain of pages waits on Graph alone. This page is not
            // counted yet, so a full one is assumed: a page that may take the group past R16's
            // limit is read, decoded and taken in before anything more is asked for.
            let pending = decoded.as_ref().map_or(0, |page| page.entries.len());
            let named_ahead = match arriving.leading_link().await {
                Some(link) if intake.members.len() + pending + PAGE_SIZE <= MAX_GROUP_MEMBERS => {
                    Some(link)
                }
                _ => None,
            };
            // Forgotten again if this page breaks off and is asked for anew.
            let first_named = named_ahead
                .clone()
                .filter(|link| !links_followed.contains(link));
            let checked_ahead = named_ahead
                .as_deref()
                .map(|link| self.next_page(page_number, Some(link), &mut links_followed));
            let early = match &checked_ahead {
                Some(Ok(Some(next))) => Some(next.clone()),
                _ => None,
            };
            // The next page named only at this page's end is passed over once this page is read.
            let (named_late, late) = tokio::sync::oneshot::channel::<String>();
            let requesting = async {
                let next = match &early {
                    Some(next) => next.clone(),
                    None => late.await.ok()?,
                };
                Some(self.ask_page(&next, budget, stats).await)
            };
            let this_page = async {
                let body = match arriving.rest().await {
                    Ok(body) => body,
                    Err(err) => return Ok(Err(http::broke_off(200, &err))),
                };
                let mut skimmed = match wire::skim_member_page(body) {
                    Ok(skimmed) => skimmed,
                    Err(problem) => {
                        let why = failed(format!(
                            "page {page_number} of the group's members{problem}"
                        ));
                        return Err(fail(&mut intake, &mut decoded, why));
                    }
                };
                let link = skimmed.next_link.take();
                let next = match checked_ahead {
                    Some(checked) if link == named_ahead => checked,
                    Some(_) => Err(format!(
                        "page {page_number} names {:?} as the next page at its start and {:?} at \
                         its end; reading stopped and nothing in the group was changed",
                        named_ahead.as_deref().map(|l| wire::truncate(l, 200)),
                        link.as_deref().map(|l| wire::truncate(l, 200)),
                    )),
                    None => self.next_page(page_number, link.as_deref(), &mut links_followed),
                };
                let read_ahead =
                    intake.members.len() + pending + skimmed.entry_count() <= MAX_GROUP_MEMBERS;
                match &next {
                    Ok(Some(next)) if read_ahead && early.is_none() => {
                        // The receiver is gone only if the read is.
                        let _ = named_late.send(next.clone());
                    }
                    _ => drop(named_late),
                }
                let decoding = on_blocking_pool(page_number, move || skimmed.decode());
                // Polled after the request is sent: the page before is taken in while both wait.
                let taking = async {
                    match decoded.take() {
                        Some(page) => intake.take(page),
                        None => Ok(()),
                    }
                };
                let (entries, taken) = tokio::join!(decoding, taking);
                taken.map_err(failed)?;
                decoded = Some(DecodedPage {
                    number: page_number,
                    entries: entries?,
                    links_on: link.is_some(),
                });
                match next {
                    Ok(next) => Ok(Ok((next, read_ahead))),
                    Err(reason) => Err(fail(&mut intake, &mut decoded, failed(reason))),
                }
            };
            let (read, next_response) =
                tokio::try_join!(this_page, async { Ok(requesting.await) })?;
            let (next, read_ahead) = match read {
                Ok(read) => read,
                Err(broke) => {
                    // The page broke off while it arrived: it is asked for again as any failed
                    // GET is, and what was asked after it is dropped.
                    if let Some(link) = &first_named {
                        links_followed.remove(link);
                    }
                    page_number -= 1;
                    response = self.ask_page_again(&url, broke, budget, stats).await;
                    continue;
                }
            };
            let Some(next) = next else {
                break;
            };
            if !read_ahead && let Some(page) = decoded.take() {
                intake.take(page).map_err(failed)?;
            }
            response = match next_response {
                Some(asked) => asked,
                None => self.ask_page(&next, budget, stats).await,
            };
            url = next;
        }
        if let Some(page) = decoded.take() {
            intake.take(page).map_err(failed)?;
        }
        Ok(intake.finish())
    }

    #[instrument(skip_all, fields(tenant = %self.sign_in.tenant_id, group = %id))]
    async fn fetch_one(
        &self,
        id: &EntraObjectId,
        stats: &StatsCounter,
        shared: &SharedUsers,
    ) -> (GroupRead, Vec<Note>) {
        let mut budget = RetryBudget::default();
        // Issue 13: the first page of members is asked for beside the group itself, once, so
        // the group's chain of pages is one answer shorter. It is retried only when the group
        // is there, and dropped when it is not: a group that fails costs Graph one request
        // more, never a second series of retries.
        let first_page_url = self.members_url(id);
        let mut first_page = pin!(self.ask_page_once(&first_page_url, stats));
        let mut first_answer = None;
        let group_read = {
            let reading = pin!(self.read_group(id, &mut budget, stats));
            match future::select(reading, first_page.as_mut()).await {
                Either::Left((group_read, _)) => group_read,
                Either::Right((answer, reading)) => {
                    first_answer = Some(answer);
                    reading.await
                }
            }
        };
        let raw_name = match group_read {
            Ok(name) => name,
            Err(read) => return (read, Vec::new()),
        };
        let first_answer = match first_answer {
            Some(answer) => answer,
            None => first_page.await,
        };
        let (display_name, replaced) = wire::clean_group_name(&raw_name);
        let group = GroupLabel {
            id,
            name: &display_name,
        };
        let mut notes = Vec::new();
        if !replaced.is_empty() {
            notes.push(group.note(format!(
                "the group's displayName held control characters ({}); each run of them was replaced by a space",
                wire::describe_code_points(&replaced)
            )));
        }
        match self
            .read_members(
                &group,
                (&first_page_url, first_answer),
                &mut budget,
                stats,
                shared,
            )
            .await
        {
            Ok((members, member_notes)) => {
                notes.extend(member_notes);
                (
                    GroupRead::Outcome(GroupOutcome::Found {
                        display_name,
                        members,
                    }),
                    notes,
                )
            }
            Err(read) => (read, Vec::new()),
        }
    }

    async fn count_one(
        &self,
        id: &EntraObjectId,
        stats: &StatsCounter,
    ) -> Result<GroupCountOutcome, String> {
        let mut budget = RetryBudget::default();
        let display_name = match self.read_group(id, &mut budget, stats).await {
            Ok(name) => wire::clean_group_name(&name).0,
            Err(GroupRead::Outcome(GroupOutcome::Deleted)) => {
                return Ok(GroupCountOutcome::Deleted);
            }
            Err(GroupRead::Outcome(GroupOutcome::Failed { reason })) => {
                return Ok(GroupCountOutcome::Failed { reason });
            }
            Err(GroupRead::Outcome(GroupOutcome::Found { .. })) => {
                return Ok(GroupCountOutcome::Failed {
                    reason: "internal: unexpected group outcome".into(),
                });
            }
            Err(GroupRead::Refused(reason)) => return Err(reason),
        };
        let url = self.url(&format!(
            "/v1.0/groups/{id}/members/microsoft.graph.user/$count"
        ));
        let body = match self.get(&url, true, &mut budget, stats).await {
            Ok(body) => body,
            Err(err) => {
                return match self.refusal_or_failure("counting the group's members failed", &err) {
                    GroupRead::Refused(reason) => Err(reason),
                    GroupRead::Outcome(GroupOutcome::Failed { reason }) => {
                        Ok(GroupCountOutcome::Failed { reason })
                    }
                    GroupRead::Outcome(_) => Ok(GroupCountOutcome::Failed {
                        reason: err.describe(),
                    }),
                };
            }
        };
        match wire::parse_count(&body) {
            Ok(direct_user_members) => Ok(GroupCountOutcome::Found {
                display_name,
                direct_user_members,
            }),
            Err(reason) => Ok(GroupCountOutcome::Failed { reason }),
        }
    }

    /// The next page of a group's members to read, if any, or why its link is not followed:
    /// one already read (a loop), or one off Graph's host (no token is sent there).
    fn next_page(
        &self,
        page_number: usize,
        link: Option<&str>,
        links_followed: &mut HashSet<String>,
    ) -> Result<Option<String>, String> {
        match link {
            Some(next) if !links_followed.insert(next.to_owned()) => Err(format!(
                "page {page_number} links back to a page already read ({:?}); reading \
                 stopped rather than loop, and nothing in the group was changed",
                wire::truncate(next, 200)
            )),
            Some(next) if self.same_origin(next) => Ok(Some(next.to_owned())),
            Some(next) => Err(format!(
                "page {page_number} links to {:?}, outside Graph's {}; reading stopped and \
                 nothing was sent there",
                wire::truncate(next, 200),
                self.connector
                    .settings
                    .graph_base_url
                    .origin()
                    .ascii_serialization()
            )),
            None => Ok(None),
        }
    }

    fn concurrency(&self) -> usize {
        self.connector.settings.concurrency.max(1)
    }
}

/// Runs a step of decoding page `page_number` of a group's members on the blocking pool; what
/// is wrong with the page fails the group (R17).
async fn on_blocking_pool<T: Send + 'static>(
    page_number: usize,
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, GroupRead> {
    let failed = |reason: String| GroupRead::Outcome(GroupOutcome::Failed { reason });
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| {
            failed(format!(
                "decoding page {page_number} of the group's members failed ({e})"
            ))
        })?
        .map_err(|problem| {
            failed(format!(
                "page {page_number} of the group's members{problem}"
            ))
        })
}

/// A page of members as it arrives: its start is read for the next link, then the rest.
enum ArrivingPage {
    Whole(bytes::Bytes),
    Arriving {
        response: reqwest::Response,
        received: Vec<u8>,
        /// The body broke off while its start was read.
        broken: Option<reqwest::Error>,
    },
}

impl ArrivingPage {
    fn new(answer: Answer) -> Self {
        match answer {
            Answer::Whole(body) => Self::Whole(body),
            Answer::Arriving(response) => {
                // Room for the length the answer announces, up to a large page's: a length is
                // Graph's word, not a promise, and is never allocated on trust.
                let announced = response.content_length().unwrap_or(0).min(PAGE_ROOM);
                Self::Arriving {
                    response,
                    received: Vec::with_capacity(usize::try_from(announced).unwrap_or(0)),
                    broken: None,
                }
            }
        }
    }

    /// The next page's address when the page gives it ahead of its entries, reading no more of
    /// the page than that takes ([`wire::leading_next_link`]).
    async fn leading_link(&mut self) -> Option<String> {
        let (response, received, broken) = match self {
            Self::Whole(body) => {
                return match wire::leading_next_link(body) {
                    wire::LeadingLink::Ahead(link) => Some(link),
                    _ => None,
                };
            }
            Self::Arriving {
                response,
                received,
                broken,
            } => (response, received, broken),
        };
        loop {
            match wire::leading_next_link(received) {
                wire::LeadingLink::Ahead(link) => return Some(link),
                wire::LeadingLink::NotAhead => return None,
                wire::LeadingLink::Undecided if received.len() > LEADING_LINK_WITHIN => {
                    return None;
                }
                wire::LeadingLink::Undecided => {}
            }
            match response.chunk().await {
                Ok(Some(chunk)) => received.extend_from_slice(&chunk),
                Ok(None) => return None,
                Err(err) => {
                    *broken = Some(err);
                    return None;
                }
            }
        }
    }

    /// The whole page, or how its body broke off.
    async fn rest(self) -> Result<bytes::Bytes, reqwest::Error> {
        let (mut response, mut received) = match self {
            Self::Whole(body) => return Ok(body),
            Self::Arriving {
                broken: Some(err), ..
            } => return Err(err),
            Self::Arriving {
                response, received, ..
            } => (response, received),
        };
        while let Some(chunk) = response.chunk().await? {
            received.extend_from_slice(&chunk);
        }
        Ok(bytes::Bytes::from(received))
    }
}

/// A page of a group's members, decoded and not yet taken in.
struct DecodedPage {
    number: usize,
    entries: Vec<wire::MemberEntry<SnapshotUser>>,
    /// Whether the page linked to another.
    links_on: bool,
}

/// A group's members as its pages are taken in, in order: each user shared with the other
/// groups, Graph's repeats counted once, and the checks that stop a read (R16's limit, a user
/// listed twice with different data, pages that bring nobody new).
struct MemberIntake<'a> {
    group: &'a GroupLabel<'a>,
    shared: &'a SharedUsers,
    members: Vec<Arc<SnapshotUser>>,
    notes: Vec<Note>,
    /// Where each user was first listed (page, index in `members`), and how many times: Graph
    /// may list one twice.
    listed: HashMap<EntraObjectId, (usize, usize, usize)>,
    pages_without_progress: usize,
}

impl<'a> MemberIntake<'a> {
    fn new(group: &'a GroupLabel<'a>, shared: &'a SharedUsers) -> Self {
        Self {
            group,
            shared,
            members: Vec::new(),
            notes: Vec::new(),
            listed: HashMap::new(),
            pages_without_progress: 0,
        }
    }

    /// Takes in `page`, or says why the group cannot be read.
    fn take(&mut self, page: DecodedPage) -> Result<(), String> {
        let page_number = page.number;
        let members_before = self.members.len();
        // A block of its own: the shared users' lock is let go before anything else.
        {
            let mut sharing = self.shared.sharing();
            for entry in page.entries {
                let (user, cleaned) = match entry {
                    wire::MemberEntry::User { user, cleaned } => (user, cleaned),
                    wire::MemberEntry::NotAUser { id, odata_type } => {
                        self.notes.push(self.group.note(format!(
                            "member {} is a {odata_type}, not a user; it is ignored (R1)",
                            id.as_deref().unwrap_or("without an id")
                        )));
                        continue;
                    }
                };
                match self.listed.get_mut(user.id()) {
                    Some((first_page, index, count)) => {
                        if *self.members[*index] != user {
                            let pages = if *first_page == page_number {
                                format!("on page {page_number}")
                            } else {
                                format!("on pages {first_page} and {page_number}")
                            };
                            return Err(format!(
                                "user {} is listed twice with different data ({pages})",
                                user.id()
                            ));
                        }
                        *count += 1;
                    }
                    None => {
                        for message in cleaned {
                            self.notes.push(user_note(&user, message));
                        }
                        self.listed
                            .insert(user.id().clone(), (page_number, self.members.len(), 1));
                        self.members.push(sharing.share(user));
                    }
                }
            }
        }
        if self.members.len() > MAX_GROUP_MEMBERS {
            return Err(format!(
                "the group has more than {MAX_GROUP_MEMBERS} direct user members (R16; reading stopped at {} \
                 after page {page_number}); nothing in it was changed: split it into smaller groups",
                self.members.len()
            ));
        }
        if self.members.len() == members_before && page.links_on {
            self.pages_without_progress += 1;
            if self.pages_without_progress >= MAX_PAGES_WITHOUT_PROGRESS {
                return Err(format!(
                    "Graph sent {} pages in a row with no new member and a link to yet another \
                     page (up to page {page_number}); reading stopped rather than loop, and \
                     nothing in the group was changed",
                    self.pages_without_progress
                ));
            }
        } else {
            self.pages_without_progress = 0;
        }
        Ok(())
    }

    /// The members, and the notes with a line for each user Graph listed more than once.
    fn finish(mut self) -> (Vec<Arc<SnapshotUser>>, Vec<Note>) {
        let mut repeated: Vec<(&EntraObjectId, usize)> = self
            .listed
            .iter()
            .filter(|(_, (_, _, count))| *count > 1)
            .map(|(id, (_, _, count))| (id, *count))
            .collect();
        repeated.sort();
        for (user, count) in repeated {
            self.notes.push(self.group.note(format!(
                "user {user} is listed {count} times in the group's members; counted once"
            )));
        }
        (self.members, self.notes)
    }
}

/// A group being read, to attach the report's notes to.
struct GroupLabel<'a> {
    id: &'a EntraObjectId,
    name: &'a str,
}

impl GroupLabel<'_> {
    fn note(&self, message: String) -> Note {
        Note {
            subject: Subject::Group {
                entra_id: self.id.clone(),
                // The source does not know roles; `sync` sets the selected role before reporting.
                role: crate::domain::Role::Internal,
                name: self.name.to_owned(),
            },
            severity: Severity::Warning,
            message,
        }
    }
}

/// A warning about a user as Graph sent it.
fn user_note(user: &SnapshotUser, message: String) -> Note {
    let email = [user.mail(), user.user_principal_name()]
        .into_iter()
        .flatten()
        .find(|text| !text.trim().is_empty())
        .unwrap_or_default();
    Note {
        subject: Subject::User(UserLabel {
            entra_id: user.id().clone(),
            email: email.into(),
            name: user.display_name().unwrap_or_default().into(),
        }),
        severity: Severity::Warning,
        message,
    }
}

/// When every group was refused (401/403), the read as a whole failed to authenticate.
/// `text` as one URL path segment: unreserved characters and `@` as they are, the rest
/// percent-encoded (a UPN may hold `'`, `#` or `/`).
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn all_refused<T>(reads: &[Result<T, String>]) -> Option<SourceError> {
    let first = reads.first()?.as_ref().err()?.clone();
    reads
        .iter()
        .all(|r| r.is_err())
        .then_some(SourceError::Authentication(first))
}

#[async_trait]
impl DirectorySource for GraphSource {
    async fn sign_in(&self) -> Result<(), SourceError> {
        self.token().await.map(drop)
    }

    /// `GET /v1.0/applications(appId='…')?$select=passwordCredentials,keyCredentials`: needs
    /// `Application.Read.All`, and the registration must live in this directory (a multi-tenant
    /// app's lives in its publisher's); otherwise the reason, for a configured expiry to be used.
    async fn app_credential_expiry(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Credential {
            end_date_time: Option<chrono::DateTime<chrono::Utc>>,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Registration {
            #[serde(default)]
            password_credentials: Vec<Credential>,
            #[serde(default)]
            key_credentials: Vec<Credential>,
        }
        let stats = StatsCounter::default();
        let mut budget = RetryBudget::default();
        let url = self.url(&format!(
            "/v1.0/applications(appId='{}')?$select=passwordCredentials,keyCredentials",
            self.sign_in.client_id
        ));
        let body = match self.get(&url, false, &mut budget, &stats).await {
            Ok(body) => body,
            Err(err) if err.graph_code() == Some("Authorization_RequestDenied") => {
                return Err(format!(
                    "app {} may not read its own registration (Application.Read.All is not \
                     granted): set source.credential_expires_at instead",
                    self.sign_in.client_id
                ));
            }
            Err(err) => {
                return Err(format!(
                    "reading app {}'s registration failed: {}",
                    self.sign_in.client_id,
                    err.describe()
                ));
            }
        };
        let registration: Registration = serde_json::from_slice(&body)
            .map_err(|e| format!("the app registration is not the JSON Graph sends: {e}"))?;
        Ok(registration
            .password_credentials
            .iter()
            .chain(&registration.key_credentials)
            .filter_map(|c| c.end_date_time)
            .max())
    }

    #[instrument(skip_all, fields(tenant = %self.sign_in.tenant_id, groups = groups.len()), err)]
    async fn fetch_groups(&self, groups: &[EntraObjectId]) -> Result<SourceFetch, SourceError> {
        self.fetch_groups_with_progress(groups, &[], &|| {}).await
    }

    async fn fetch_groups_with_progress(
        &self,
        groups: &[EntraObjectId],
        expected_members: &[usize],
        group_read: &(dyn Fn() + Send + Sync),
    ) -> Result<SourceFetch, SourceError> {
        // Sign in first: a token failure stops the whole read with one clear sentence.
        self.token().await?;
        let stats = StatsCounter::default();
        let shared = SharedUsers::default();
        // Issue 13: largest first (as the mirror last saw them), so the read takes about as
        // long as its longest group rather than that group plus the ones queued before it.
        let mut order: Vec<usize> = (0..groups.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(expected_members.get(i).copied().unwrap_or(0)));
        let reads = order.into_iter().map(|i| {
            let stats = &stats;
            let shared = &shared;
            let id = &groups[i];
            async move {
                let (read, notes) = self.fetch_one(id, stats, shared).await;
                let read = match read {
                    GroupRead::Outcome(outcome) => Ok(outcome),
                    GroupRead::Refused(reason) => Err(reason),
                };
                group_read();
                (i, read, notes)
            }
        });
        let mut answers: Vec<_> = futures::stream::iter(reads.collect::<Vec<_>>())
            .buffer_unordered(self.concurrency())
            .collect()
            .await;
        answers.sort_unstable_by_key(|(i, _, _)| *i);
        let (reads, notes): (Vec<Result<GroupOutcome, String>>, Vec<Vec<Note>>) = answers
            .into_iter()
            .map(|(_, read, notes)| (read, notes))
            .unzip();
        if let Some(err) = all_refused(&reads) {
            return Err(err);
        }
        let fetches = groups
            .iter()
            .zip(reads)
            .map(|(id, read)| GroupFetch {
                entra_id: id.clone(),
                outcome: read.unwrap_or_else(|reason| GroupOutcome::Failed { reason }),
            })
            .collect();
        Ok(SourceFetch {
            snapshot: SourceSnapshot { groups: fetches },
            stats: stats.snapshot(),
            notes: notes.into_iter().flatten().collect(),
        })
    }

    #[instrument(skip_all, fields(tenant = %self.sign_in.tenant_id, groups = groups.len()), err)]
    async fn count_members(
        &self,
        groups: &[EntraObjectId],
    ) -> Result<Vec<GroupCount>, SourceError> {
        self.token().await?;
        let stats = StatsCounter::default();
        let reads = groups
            .iter()
            .map(|id| self.count_one(id, &stats))
            .collect::<Vec<_>>();
        let reads: Vec<Result<GroupCountOutcome, String>> = futures::stream::iter(reads)
            .buffered(self.concurrency())
            .collect()
            .await;
        if let Some(err) = all_refused(&reads) {
            return Err(err);
        }
        Ok(groups
            .iter()
            .zip(reads)
            .map(|(id, read)| GroupCount {
                entra_id: id.clone(),
                outcome: read.unwrap_or_else(|reason| GroupCountOutcome::Failed { reason }),
            })
            .collect())
    }

    #[instrument(skip_all, fields(tenant = %self.sign_in.tenant_id, people = people.len()), err)]
    async fn fetch_people(
        &self,
        people: &[String],
        groups: &[EntraObjectId],
    ) -> Result<Vec<PersonFetch>, SourceError> {
        self.token().await?;
        let stats = StatsCounter::default();
        let mut fetched = Vec::with_capacity(people.len());
        for asked in people {
            fetched.push(PersonFetch {
                asked: asked.clone(),
                outcome: self.fetch_person(asked, groups, &stats).await?,
            });
        }
        Ok(fetched)
    }

    #[instrument(skip_all, fields(tenant = %self.sign_in.tenant_id, user = %user), err)]
    async fn user_presence(&self, user: &EntraObjectId) -> Result<UserPresence, SourceError> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Presence {
            account_enabled: Option<bool>,
        }
        let stats = StatsCounter::default();
        let mut budget = RetryBudget::default();
        let url = self.url(&format!("/v1.0/users/{user}?$select=id,accountEnabled"));
        match self.get(&url, false, &mut budget, &stats).await {
            Ok(body) => {
                let presence: Presence = serde_json::from_slice(&body).map_err(|e| {
                    SourceError::Other(format!(
                        "user {user}: the answer is not the JSON Graph sends: {e}"
                    ))
                })?;
                Ok(match presence.account_enabled {
                    Some(false) => UserPresence::Disabled,
                    _ => UserPresence::Enabled,
                })
            }
            Err(err)
                if matches!(&err, GetError::Status { status, .. } if *status == StatusCode::NOT_FOUND)
                    && err.graph_code() == Some("Request_ResourceNotFound") =>
            {
                Ok(UserPresence::Deleted)
            }
            Err(GetError::Token(e)) => Err(e),
            Err(err) => {
                match self.refusal_or_failure(&format!("looking up user {user} failed"), &err) {
                    GroupRead::Refused(reason) => Err(SourceError::Authentication(reason)),
                    _ => Err(SourceError::Unavailable(format!(
                        "looking up user {user} failed: {}",
                        err.describe()
                    ))),
                }
            }
        }
    }
}
