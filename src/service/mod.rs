//! `dirsync serve`: wires the HTTP API, the scheduler and the run launcher together, starts them
//! and stops them gracefully (runs in progress get a grace period, then are recorded as
//! interrupted). Only the top of the tree (the CLI, tests) imports this module; the pieces it
//! wires never do.

mod serve;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

pub use serve::serve;

use crate::auth::Auth;
use crate::auth::settings::AuthSettings;
use crate::domain::SecretEnvPolicy;
use crate::http::{AppState, app, metrics_app, metrics_handle};
use crate::schedule::{Clock, Scheduler, SchedulerSettings};
use crate::store::AccessStore;
use crate::sync::{Runner, SyncContext};

/// Everything a service instance is made of.
pub struct Service {
    pub ctx: SyncContext,
    /// Grants, sessions, API tokens and the audit log.
    pub access: Arc<dyn AccessStore>,
    pub auth: AuthSettings,
    /// Which environment variables tenant settings may name.
    pub secrets: SecretEnvPolicy,
    pub clock: Arc<dyn Clock>,
    pub scheduler: SchedulerSettings,
    /// How long a shutdown waits for runs in progress before interrupting them.
    pub shutdown_grace: Duration,
    /// Where `/metrics` is served; `None` serves it nowhere.
    pub metrics_listener: Option<TcpListener>,
}

/// A started service: where it listens, and handles to observe and stop it.
pub struct ServiceHandle {
    pub addr: SocketAddr,
    pub runner: Runner,
    /// Completed scheduler passes.
    pub ticks: watch::Receiver<u64>,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl ServiceHandle {
    /// Stops accepting requests, stops the scheduler, lets runs finish within the grace period.
    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Starts the API on `listener` and the scheduler, in the background. Fails when the `[auth]`
/// settings are not valid.
pub fn start(service: Service, listener: TcpListener) -> std::io::Result<ServiceHandle> {
    let addr = listener.local_addr()?;
    let session_idle = service.auth.session.idle();
    let auth = Auth::new(
        service.auth,
        service.access.clone(),
        service.ctx.store.clone(),
        service.clock.clone(),
    )
    .map_err(std::io::Error::other)?;
    let runner = Runner::new(service.ctx);
    let scheduler = Scheduler::new(runner.clone(), service.clock, service.scheduler)
        .with_access(service.access, session_idle);
    let ticks = scheduler.ticks();
    let (stop, stopped) = watch::channel(false);
    let state = AppState {
        runner: runner.clone(),
        auth: Arc::new(auth),
        secrets: service.secrets,
    };
    let when_stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    if let Some(metrics_listener) = service.metrics_listener {
        let metrics_addr = metrics_listener.local_addr()?;
        info!(%metrics_addr, "metrics listening");
        let app = metrics_app(metrics_handle());
        let stopped = when_stopped(stopped.clone());
        tokio::spawn(async move {
            let _ = axum::serve(metrics_listener, app)
                .with_graceful_shutdown(stopped)
                .await;
        });
    }
    let scheduler_task = tokio::spawn(scheduler.run(when_stopped(stopped.clone())));
    let grace = service.shutdown_grace;
    let task_runner = runner.clone();
    let task = tokio::spawn(async move {
        info!(%addr, "dirsync listening");
        // TCP_NODELAY: an answer's last segment goes out at once, not after the client's
        // delayed ACK.
        let listener = listener.tap_io(|stream| {
            if let Err(err) = stream.set_nodelay(true) {
                tracing::debug!(%err, "could not set TCP_NODELAY");
            }
        });
        let served = axum::serve(
            listener,
            app(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(when_stopped(stopped))
        .await;
        let _ = scheduler_task.await;
        task_runner.shutdown(grace).await;
        info!("dirsync stopped");
        served
    });
    Ok(ServiceHandle {
        addr,
        runner,
        ticks,
        stop,
        task,
    })
}

/// Serves until `shutdown` resolves (e.g. SIGTERM), then stops gracefully.
pub async fn launch(
    service: Service,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let handle = start(service, listener)?;
    shutdown.await;
    handle.stop().await
}
