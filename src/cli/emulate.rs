//! `dirsync emulate entra|highq`: an emulator standalone, until Ctrl-C, printing where it is and
//! what dirsync needs to talk to it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::demo::graph_settings_toml;
use crate::emulator::Latency;
use crate::emulator::entra::{Directory, EntraEmulator, FaultPlan};
use crate::emulator::highq::{HighQSeed, HighQState, serve};

#[derive(Debug, Subcommand)]
pub enum EmulateCommand {
    /// The Entra token endpoint and the Microsoft Graph subset dirsync reads, over HTTPS with a
    /// certificate generated at start.
    Entra {
        /// The directory: tenants, app registrations, users, groups (see
        /// tests/fixtures/entra/demo_directory.json).
        #[arg(long)]
        fixture: PathBuf,
        /// 0 picks a free port.
        #[arg(long, default_value_t = 8443)]
        port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        /// Where to write the CA certificate (PEM) clients must trust.
        #[arg(long)]
        ca_pem: Option<PathBuf>,
        /// Where to write dirsync settings ([graph]) pointing at the emulator.
        #[arg(long)]
        settings_out: Option<PathBuf>,
        /// Faults to inject (JSON: {"seed": 1, "rules": [{"when": …, "fault": …}]}).
        #[arg(long)]
        faults: Option<PathBuf>,
        /// Added to every request, ± 25%, as across a network; 0 for none.
        #[arg(long, default_value_t = 20)]
        latency_ms: u64,
    },
    /// HighQ Collaborate's REST API (plain HTTP), with OAuth2 and rotating refresh tokens.
    Highq {
        #[arg(long, default_value_t = 8080)]
        port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        /// The instance path: the base URL is http://HOST:PORT/INSTANCE.
        #[arg(long, default_value = "highq")]
        instance: String,
        #[arg(long, default_value = "dirsync")]
        client_id: String,
        #[arg(long, default_value = "emulator-secret")]
        client_secret: String,
        /// The first refresh token (random when not given).
        #[arg(long)]
        refresh_token: Option<String>,
        /// Added to every request, ± 25%, as across a network; 0 for none.
        #[arg(long, default_value_t = 20)]
        latency_ms: u64,
    },
}

pub(super) async fn run(command: EmulateCommand) -> anyhow::Result<ExitCode> {
    match command {
        EmulateCommand::Entra {
            fixture,
            port,
            host,
            ca_pem,
            settings_out,
            faults,
            latency_ms,
        } => {
            entra(
                fixture,
                SocketAddr::new(host, port),
                ca_pem,
                settings_out,
                faults,
                Latency::millis(latency_ms),
            )
            .await
        }
        EmulateCommand::Highq {
            port,
            host,
            instance,
            client_id,
            client_secret,
            refresh_token,
            latency_ms,
        } => {
            let seed = HighQSeed {
                instance,
                client_id,
                client_secret,
                refresh_token,
                latency: Latency::millis(latency_ms),
                ..HighQSeed::default()
            };
            highq(SocketAddr::new(host, port), seed).await
        }
    }
}

async fn entra(
    fixture: PathBuf,
    addr: SocketAddr,
    ca_pem: Option<PathBuf>,
    settings_out: Option<PathBuf>,
    faults: Option<PathBuf>,
    latency: Latency,
) -> anyhow::Result<ExitCode> {
    let directory = Directory::load(&fixture)?;
    let faults = match faults {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("could not read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a fault plan", path.display()))?
        }
        None => FaultPlan::none(),
    };
    let app = directory
        .tenants
        .iter()
        .flat_map(|t| &t.apps)
        .find_map(|a| Some((a.client_id.clone(), a.secrets.first()?.value.clone())));
    let summary: Vec<String> = directory
        .tenants
        .iter()
        .map(|t| {
            format!(
                "  tenant {}: {} users, {} groups, {} apps",
                t.tenant_id,
                t.users.len(),
                t.groups.len(),
                t.apps.len()
            )
        })
        .collect();
    let emulator = EntraEmulator::start_with(directory, faults, addr)
        .await
        .with_context(|| format!("could not start the Entra emulator on {addr}"))?;
    emulator.set_latency(latency);
    let dir = std::env::temp_dir();
    let ca_path = ca_pem.unwrap_or_else(|| dir.join("dirsync-entra-emulator-ca.pem"));
    std::fs::write(&ca_path, emulator.ca_pem())
        .with_context(|| format!("could not write {}", ca_path.display()))?;
    println!("Entra emulator listening at {}", emulator.base_url());
    println!("  (both the authority host and the Graph base URL)");
    print_latency_and_counts(latency, emulator.base_url());
    println!("CA certificate (PEM) written to {}", ca_path.display());
    for line in summary {
        println!("{line}");
    }
    if let Some((client_id, secret)) = app {
        let settings_path = settings_out.unwrap_or_else(|| dir.join("dirsync-entra-emulator.toml"));
        let text = graph_settings_toml(emulator.base_url(), emulator.ca_pem(), &client_id, &secret);
        std::fs::write(&settings_path, text)
            .with_context(|| format!("could not write {}", settings_path.display()))?;
        println!(
            "dirsync settings for it written to {} (use: dirsync --config {} check --tenant KEY)",
            settings_path.display(),
            settings_path.display()
        );
    }
    println!("Press Ctrl-C to stop.");
    wait_for_ctrl_c().await;
    drop(emulator);
    Ok(ExitCode::SUCCESS)
}

async fn highq(addr: SocketAddr, seed: HighQSeed) -> anyhow::Result<ExitCode> {
    let instance = seed.instance.trim_matches('/').to_owned();
    let client_id = seed.client_id.clone();
    let client_secret = seed.client_secret.clone();
    let latency = seed.latency;
    let mut state: HighQState = seed.into_state();
    let code = state.issue_authorization_code();
    let refresh_token = state.oauth.refresh_token.clone();
    let shared = std::sync::Arc::new(std::sync::Mutex::new(state));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("could not listen on {addr}"))?;
    let local = listener.local_addr()?;
    let base_url = format!("http://{local}/{instance}");
    println!(
        "HighQ emulator listening at {}",
        base_url.trim_end_matches('/')
    );
    println!("  plain HTTP: there is no certificate and no CA PEM to trust");
    print_latency_and_counts(latency, &format!("http://{local}"));
    println!("  client_id     {client_id}");
    println!("  client_secret {client_secret}");
    println!("  refresh token {refresh_token} (rotates on every use)");
    println!("  authorization code {code} (one use)");
    println!("Tenant target settings:");
    println!("  [tenant.target]");
    println!("  kind = \"highq\"");
    println!("  base_url = \"{}\"", base_url.trim_end_matches('/'));
    println!("  client_id = \"{client_id}\"");
    println!("  client_secret = \"{client_secret}\"");
    println!("Press Ctrl-C to stop.");
    serve(listener, &instance, shared, wait_for_ctrl_c()).await?;
    Ok(ExitCode::SUCCESS)
}

fn print_latency_and_counts(latency: Latency, root: &str) {
    if latency.base.is_zero() {
        println!("  no added latency");
    } else {
        println!(
            "  {} ms ± 25% added to every request (--latency-ms 0 for none)",
            latency.base.as_millis()
        );
    }
    println!("  requests served, by kind: {root}/_emulator/requests");
}

async fn wait_for_ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
