//! A recording (and optionally stalling) decorator around any `TargetAdapter`, for tests.
// Each test binary uses part of the shared support.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dirsync::domain::{Email, EntraObjectId, TargetGroupId, TargetUserId, UserStatus};
use dirsync::plan::{FieldChange, GroupKey, TargetUser, UserState};
use dirsync::target::{MembershipOutcome, TargetAdapter, TargetError};
use tokio::sync::Notify;
use tokio::sync::futures::Notified;

/// A `TargetAdapter` decorator that records every write call the engine makes (whether or not
/// it succeeds), so "no change in Entra means zero target writes" holds for every target, also
/// those that keep no change log of their own. It can also stall every write after a quota,
/// to hold a run in the middle of applying for as long as a test needs.
pub struct CountingTarget {
    inner: Arc<dyn TargetAdapter>,
    writes: Mutex<Vec<String>>,
    /// Writes still allowed before the next one stalls; `None` for no limit.
    allowed: Mutex<Option<usize>>,
    /// The one write (counted from 0) that stalls, when only one does.
    stall_only: Mutex<Option<usize>>,
    stalled: Notify,
    released: Notify,
    /// Woken at every write, for [`Self::writes_reached`].
    wrote: Notify,
}

impl CountingTarget {
    pub fn new(inner: Arc<dyn TargetAdapter>) -> Self {
        Self {
            inner,
            writes: Mutex::new(Vec::new()),
            allowed: Mutex::new(None),
            stall_only: Mutex::new(None),
            stalled: Notify::new(),
            released: Notify::new(),
            wrote: Notify::new(),
        }
    }

    /// Stalls only the write numbered `index` (from 0) until [`Self::release`]; the others pass.
    pub fn stalling_only(self, index: usize) -> Self {
        *self.stall_only.lock().unwrap() = Some(index);
        self
    }

    /// Resolves once at least `count` writes were made (stalled ones included).
    pub async fn writes_reached(&self, count: usize) {
        loop {
            let wrote = self.wrote.notified();
            if self.count() >= count {
                return;
            }
            wrote.await;
        }
    }

    /// Lets `writes` more writes through, then stalls every later one until [`Self::release`].
    pub fn stalling_after(self, writes: usize) -> Self {
        *self.allowed.lock().unwrap() = Some(writes);
        self
    }

    /// Lifts the stall: stalled writes go on, and later ones pass.
    pub fn release(&self) {
        *self.allowed.lock().unwrap() = None;
        *self.stall_only.lock().unwrap() = None;
        self.released.notify_waiters();
    }

    /// Resolves once a write has stalled (register before the write happens).
    pub fn stalled(&self) -> Notified<'_> {
        self.stalled.notified()
    }

    pub fn writes(&self) -> Vec<String> {
        self.writes.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.writes.lock().unwrap().len()
    }

    async fn record(&self, call: String) {
        let index = {
            let mut writes = self.writes.lock().unwrap();
            writes.push(call);
            writes.len() - 1
        };
        self.wrote.notify_waiters();
        let stall_only = *self.stall_only.lock().unwrap() == Some(index);
        let stall = stall_only
            || match &mut *self.allowed.lock().unwrap() {
                Some(0) => true,
                Some(left) => {
                    *left -= 1;
                    false
                }
                None => false,
            };
        if stall {
            self.stalled.notify_one();
            loop {
                let released = self.released.notified();
                let lifted = if stall_only {
                    self.stall_only.lock().unwrap().is_none()
                } else {
                    self.allowed.lock().unwrap().is_none()
                };
                if lifted {
                    break;
                }
                released.await;
            }
        }
    }
}

#[async_trait]
impl TargetAdapter for CountingTarget {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn find_users_by_email(&self, emails: &[Email]) -> Result<Vec<TargetUser>, TargetError> {
        self.inner.find_users_by_email(emails).await
    }

    async fn create_user(
        &self,
        entra_id: &EntraObjectId,
        state: &UserState,
    ) -> Result<TargetUserId, TargetError> {
        self.record(format!("create user {}", state.fields.email))
            .await;
        self.inner.create_user(entra_id, state).await
    }

    async fn adopt_user(
        &self,
        id: &TargetUserId,
        entra_id: &EntraObjectId,
        state: &UserState,
    ) -> Result<(), TargetError> {
        self.record(format!("adopt user {id} as {}", state.fields.email))
            .await;
        self.inner.adopt_user(id, entra_id, state).await
    }

    async fn update_user(
        &self,
        id: &TargetUserId,
        changes: &[FieldChange],
        state: &UserState,
    ) -> Result<(), TargetError> {
        self.record(format!("update user {id}: {changes:?}")).await;
        self.inner.update_user(id, changes, state).await
    }

    async fn set_user_status(
        &self,
        id: &TargetUserId,
        status: UserStatus,
    ) -> Result<(), TargetError> {
        self.record(format!("set status of {id} to {status}")).await;
        self.inner.set_user_status(id, status).await
    }

    async fn verify_access(&self) -> Result<(), TargetError> {
        self.inner.verify_access().await
    }

    async fn group_members(
        &self,
        id: &TargetGroupId,
    ) -> Result<Option<Vec<TargetUserId>>, TargetError> {
        self.inner.group_members(id).await
    }

    async fn find_group(
        &self,
        key: &GroupKey,
        name: &str,
    ) -> Result<Option<TargetGroupId>, TargetError> {
        self.inner.find_group(key, name).await
    }

    async fn create_group(&self, key: &GroupKey, name: &str) -> Result<TargetGroupId, TargetError> {
        self.record(format!("create group {name}")).await;
        self.inner.create_group(key, name).await
    }

    async fn rename_group(
        &self,
        id: &TargetGroupId,
        key: &GroupKey,
        name: &str,
    ) -> Result<(), TargetError> {
        self.record(format!("rename group {id} to {name}")).await;
        self.inner.rename_group(id, key, name).await
    }

    async fn convert_to_system_group(
        &self,
        id: &TargetGroupId,
        new_name: &str,
    ) -> Result<(), TargetError> {
        self.record(format!("convert group {id} to {new_name}"))
            .await;
        self.inner.convert_to_system_group(id, new_name).await
    }

    async fn add_members(
        &self,
        group: &TargetGroupId,
        users: &[TargetUserId],
    ) -> MembershipOutcome {
        self.record(format!("add {} members to {group}", users.len()))
            .await;
        self.inner.add_members(group, users).await
    }

    async fn remove_members(
        &self,
        group: &TargetGroupId,
        users: &[TargetUserId],
    ) -> MembershipOutcome {
        self.record(format!("remove {} members from {group}", users.len()))
            .await;
        self.inner.remove_members(group, users).await
    }
}
