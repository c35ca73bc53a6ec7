//! Where a tenant's HighQ refresh token lives between runs. HighQ rotates refresh tokens: each
//! refresh returns a new one and the old one stops working, so the adapter saves the new token
//! through a [`TokenStore`] *before* it uses the access token that came with it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

/// Any failure of a token store's backend (a file, a database).
pub type TokenStoreError = Box<dyn std::error::Error + Send + Sync>;

/// Durable storage for one tenant's HighQ refresh token. `save` must only return once the token
/// would survive a crash of the process.
#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn load(&self) -> Result<Option<SecretString>, TokenStoreError>;
    async fn save(&self, token: &SecretString) -> Result<(), TokenStoreError>;
    /// Item 8: begins a refresh, one at a time across every process sharing this store (each
    /// refresh rotates the refresh token, so two at once would spend the same token twice). The
    /// refresh ends when the returned value is committed or dropped.
    async fn begin_refresh(&self) -> Result<Box<dyn TokenRefresh>, TokenStoreError>;
    /// Issue 14 item 6: when the stored refresh token expires (HighQ's
    /// `refresh_token_expires_in`), for the expiry warnings. Stores that cannot keep it ignore it.
    async fn record_refresh_expiry(
        &self,
        _expires_at: DateTime<Utc>,
    ) -> Result<(), TokenStoreError> {
        Ok(())
    }
}

/// A refresh in progress, holding the store's lock on the tenant's token.
#[async_trait]
pub trait TokenRefresh: Send {
    /// The refresh token as stored now (another process may have rotated it while this waited).
    fn refresh_token(&self) -> Option<SecretString>;
    /// The access token another process obtained and shared, and when it expires.
    fn shared_access(&self) -> Option<(SecretString, DateTime<Utc>)>;
    /// Saves the rotated refresh token (if HighQ sent one) and shares the new access token until
    /// `expires_at`, durably, then ends the refresh.
    async fn commit(
        self: Box<Self>,
        rotated: Option<&SecretString>,
        access: &SecretString,
        expires_at: DateTime<Utc>,
    ) -> Result<(), TokenStoreError>;
}

/// An access token shared by the processes using a store, and when it expires.
type SharedAccess = Arc<Mutex<Option<(SecretString, DateTime<Utc>)>>>;

/// A refresh serialised within this process only: for the memory and file stores, which are
/// not shared between processes.
struct LocalRefresh<S> {
    store: S,
    refresh_token: Option<SecretString>,
    shared: Option<(SecretString, DateTime<Utc>)>,
    share: SharedAccess,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

#[async_trait]
impl<S: TokenStore + 'static> TokenRefresh for LocalRefresh<S> {
    fn refresh_token(&self) -> Option<SecretString> {
        self.refresh_token.clone()
    }

    fn shared_access(&self) -> Option<(SecretString, DateTime<Utc>)> {
        self.shared.clone()
    }

    async fn commit(
        self: Box<Self>,
        rotated: Option<&SecretString>,
        access: &SecretString,
        expires_at: DateTime<Utc>,
    ) -> Result<(), TokenStoreError> {
        if let Some(rotated) = rotated {
            self.store.save(rotated).await?;
        }
        *self.share.lock().expect("token store lock") = Some((access.clone(), expires_at));
        Ok(())
    }
}

/// A token store in memory, for tests and the demo: clones share the token, so a test can drop
/// an adapter and build a new one from the same store, as a restarted process would.
#[derive(Clone, Default)]
pub struct MemoryTokenStore {
    token: Arc<Mutex<Option<SecretString>>>,
    saves: Arc<Mutex<u32>>,
    refreshing: Arc<tokio::sync::Mutex<()>>,
    access: SharedAccess,
}

impl MemoryTokenStore {
    pub fn new(initial: Option<SecretString>) -> Self {
        Self {
            token: Arc::new(Mutex::new(initial)),
            ..Self::default()
        }
    }

    /// How many times a token was saved (each one a rotation).
    pub fn save_count(&self) -> u32 {
        *self.saves.lock().expect("token store lock")
    }

    /// The token now stored, for tests.
    pub fn current(&self) -> Option<SecretString> {
        self.token.lock().expect("token store lock").clone()
    }
}

impl std::fmt::Debug for MemoryTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTokenStore")
            .field("token", &"[REDACTED]")
            .finish()
    }
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    async fn load(&self) -> Result<Option<SecretString>, TokenStoreError> {
        Ok(self.current())
    }

    async fn save(&self, token: &SecretString) -> Result<(), TokenStoreError> {
        *self.token.lock().expect("token store lock") = Some(token.clone());
        *self.saves.lock().expect("token store lock") += 1;
        Ok(())
    }

    async fn begin_refresh(&self) -> Result<Box<dyn TokenRefresh>, TokenStoreError> {
        let turn = self.refreshing.clone().lock_owned().await;
        Ok(Box::new(LocalRefresh {
            store: self.clone(),
            refresh_token: self.current(),
            shared: self.access.lock().expect("token store lock").clone(),
            share: self.access.clone(),
            _turn: turn,
        }))
    }
}

/// A token store in one file per tenant. Saving writes a temporary file, flushes it to disk and
/// renames it over the old one, so a crash leaves either the old token or the new one.
/// Refreshes are serialised within the process; the access token is not shared (the file store
/// serves one process, the CLI).
#[derive(Debug, Clone)]
pub struct FileTokenStore {
    path: PathBuf,
    refreshing: Arc<tokio::sync::Mutex<()>>,
}

impl FileTokenStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            refreshing: Arc::default(),
        }
    }
}

#[async_trait]
impl TokenStore for FileTokenStore {
    async fn load(&self) -> Result<Option<SecretString>, TokenStoreError> {
        match tokio::fs::read_to_string(&self.path).await {
            Ok(text) if text.trim().is_empty() => Ok(None),
            Ok(text) => Ok(Some(SecretString::from(text.trim().to_owned()))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(format!("reading {}: {err}", self.path.display()).into()),
        }
    }

    async fn save(&self, token: &SecretString) -> Result<(), TokenStoreError> {
        let path = self.path.clone();
        let text = token.expose_secret().to_owned();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let tmp = path.with_extension("tmp");
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(|err| format!("saving the token was interrupted: {err}"))?
        .map_err(|err| format!("writing {}: {err}", self.path.display()).into())
    }

    async fn begin_refresh(&self) -> Result<Box<dyn TokenRefresh>, TokenStoreError> {
        let turn = self.refreshing.clone().lock_owned().await;
        Ok(Box::new(LocalRefresh {
            store: self.clone(),
            refresh_token: self.load().await?,
            shared: None,
            share: Arc::default(),
            _turn: turn,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_store_keeps_the_last_saved_token_across_instances() {
        let dir = std::env::temp_dir().join(format!("dirsync-token-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tenant.token");
        assert!(FileTokenStore::new(&path).load().await.unwrap().is_none());
        FileTokenStore::new(&path)
            .save(&SecretString::from("rt-1"))
            .await
            .unwrap();
        FileTokenStore::new(&path)
            .save(&SecretString::from("rt-2"))
            .await
            .unwrap();
        let loaded = FileTokenStore::new(&path).load().await.unwrap().unwrap();
        assert_eq!(loaded.expose_secret(), "rt-2");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_memory_store_does_not_show_its_token_in_debug_output() {
        let store = MemoryTokenStore::new(Some(SecretString::from("very-secret")));
        assert!(!format!("{store:?}").contains("very-secret"));
    }
}
