//! `dirsync serve`: the HTTP API, the scheduler and the run launcher, started together and
//! stopped gracefully (runs in progress get a grace period, then are recorded as interrupted).

mod runner;
mod serve;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

pub use runner::{Finished, Launched, Runner};
pub use serve::serve;

use crate::http::{AppState, app, metrics_handle};
use crate::schedule::{Clock, Scheduler, SchedulerSettings};
use crate::sync::SyncContext;

/// Everything a service instance is made of.
pub struct Service {
    pub ctx: SyncContext,
    pub clock: Arc<dyn Clock>,
    pub scheduler: SchedulerSettings,
    /// How long a shutdown waits for runs in progress before interrupting them.
    pub shutdown_grace: Duration,
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

/// Starts the API on `listener` and the scheduler, in the background.
pub fn start(service: Service, listener: TcpListener) -> std::io::Result<ServiceHandle> {
    let addr = listener.local_addr()?;
    let runner = Runner::new(service.ctx);
    let scheduler = Scheduler::new(runner.clone(), service.clock, service.scheduler);
    let ticks = scheduler.ticks();
    let (stop, stopped) = watch::channel(false);
    let state = AppState {
        runner: runner.clone(),
        metrics: metrics_handle(),
    };
    let when_stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let scheduler_task = tokio::spawn(scheduler.run(when_stopped(stopped.clone())));
    let grace = service.shutdown_grace;
    let task_runner = runner.clone();
    let task = tokio::spawn(async move {
        info!(%addr, "dirsync listening");
        let served = axum::serve(listener, app(state))
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
