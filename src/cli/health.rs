//! `dirsync healthcheck`: asks the running service's `/healthz`, so a container image needs no
//! `curl` for its HEALTHCHECK.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::settings::Settings;

/// Where the service listening on `listen` answers `/healthz` from this machine: an unspecified
/// address (`0.0.0.0`, `[::]`) is asked on loopback.
pub(super) fn healthz_url(listen: &str) -> anyhow::Result<String> {
    let addr: std::net::SocketAddr = listen
        .parse()
        .with_context(|| format!("server.listen {listen:?} is not an address and port"))?;
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    Ok(format!("http://{host}:{}/healthz", addr.port()))
}

pub(super) async fn check(settings: &Settings, url: Option<&str>) -> anyhow::Result<ExitCode> {
    let url = match url {
        Some(url) => url.to_owned(),
        None => healthz_url(&settings.server.listen)?,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => {
            println!("{url}: {}", response.status());
            Ok(ExitCode::SUCCESS)
        }
        Ok(response) => {
            eprintln!("{url}: {}", response.status());
            Ok(ExitCode::from(1))
        }
        Err(err) => {
            eprintln!("{url}: {err}");
            Ok(ExitCode::from(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::healthz_url;

    #[test]
    fn an_unspecified_listen_address_is_asked_on_loopback() {
        assert_eq!(
            healthz_url("0.0.0.0:8080").unwrap(),
            "http://127.0.0.1:8080/healthz"
        );
        assert_eq!(
            healthz_url("[::]:8080").unwrap(),
            "http://[::1]:8080/healthz"
        );
        assert_eq!(
            healthz_url("10.1.2.3:80").unwrap(),
            "http://10.1.2.3:80/healthz"
        );
        assert!(healthz_url("localhost:8080").is_err());
    }
}
