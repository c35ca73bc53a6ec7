//! `dirsync serve` wired from the settings: the store, the connectors, the clock and the signals.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::Service;
use crate::connect::production_context;
use crate::schedule::SystemClock;
use crate::settings::Settings;

/// Serves until SIGTERM or Ctrl-C, then shuts down gracefully.
pub async fn serve(settings: &Settings) -> anyhow::Result<()> {
    let store = crate::store::open(&settings.database).await?;
    // Held until the server stops: a SQLite file serves one replica.
    let _serving = crate::store::claim_for_serving(store.as_ref()).await?;
    tracing::info!("records kept in {}", store.describe());
    let graph = crate::connect::graph_connector(settings)?;
    if graph.is_none() {
        tracing::warn!(
            "no [graph] settings: runs will fail until a Graph app registration is configured"
        );
    }
    let access: Arc<dyn crate::store::AccessStore> = store.clone();
    let notifier = crate::notify::Notifier::new(
        store.clone(),
        access.clone(),
        settings.notify.clone(),
        settings.secrets.clone(),
        Arc::new(SystemClock),
    );
    let ctx = production_context(settings, store, graph);
    let notifier = notifier.with_connector(ctx.connector.clone());
    let listener = tokio::net::TcpListener::bind(&settings.server.listen)
        .await
        .with_context(|| format!("could not listen on {}", settings.server.listen))?;
    let metrics_listener = match &settings.server.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("could not listen for metrics on {addr}"))?,
        ),
        None => None,
    };
    let service = Service {
        ctx,
        access,
        auth: settings.auth.clone(),
        secrets: settings.secrets.clone(),
        clock: Arc::new(SystemClock),
        scheduler: settings.scheduler.into(),
        shutdown_grace: Duration::from_secs(settings.server.shutdown_grace_secs),
        metrics_listener,
    };
    let handle = super::start(service, listener)?;
    // Issue 14: the notification worker hears every finished run and drains the outbox.
    let (stop_notify, notify_stopped) = tokio::sync::watch::channel(false);
    let notify_task = settings.notify.enabled.then(|| {
        let mut stopped = notify_stopped;
        tokio::spawn(notifier.run(handle.runner.subscribe(), async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }))
    });
    shutdown_signal().await;
    let _ = stop_notify.send(true);
    if let Some(task) = notify_task {
        let _ = task.await;
    }
    handle
        .stop()
        .await
        .context("the server stopped with an error")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing the runs in progress");
}
