//! `docs/configuration.md` is the configuration reference: every setting `dirsync config check`
//! knows (including those of the optional `[graph]` and `[auth.oidc]` sections, with each kind
//! of Graph credential) has its row, with its environment variable and its default, secrets are
//! marked, and the page names no setting that does not exist. A new setting cannot go
//! undocumented.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

/// One effective setting as `config check` prints it.
#[derive(Debug)]
struct Effective {
    value: String,
    from_default: bool,
}

/// `dirsync config check` with only this settings file (no inherited `DIRSYNC…` variables).
fn config_check(file_text: &str) -> BTreeMap<String, Effective> {
    let dir = std::env::temp_dir().join(format!("dirsync-config-ref-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("scratch");
    let path = dir.join("dirsync.toml");
    std::fs::write(&path, file_text).expect("settings written");
    let mut command = Command::new(env!("CARGO_BIN_EXE_dirsync"));
    for (name, _) in std::env::vars() {
        if name.starts_with("DIRSYNC") || name == "DATABASE_URL" {
            command.env_remove(name);
        }
    }
    let output = command
        .arg("--config")
        .arg(&path)
        .args(["config", "check"])
        .output()
        .expect("the binary ran");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let (key, rest) = line.split_once(" = ")?;
            let rest = rest.trim();
            let open = rest.rfind(" (")?;
            Some((
                key.trim().to_owned(),
                Effective {
                    value: rest[..open].trim().to_owned(),
                    from_default: rest[open..].contains("(default)"),
                },
            ))
        })
        .collect()
}

/// Every setting, from files that fill each optional section in each of its shapes.
fn every_setting() -> BTreeMap<String, Effective> {
    let oidc = "[auth]\npublic_url = \"https://dirsync.example.com\"\n[auth.oidc]\nclient_id = \"c\"\n\
                client_secret = \"s\"\noperator_tenant_id = \"6babcaad-604b-40ac-a9d7-9fd97c0b779f\"\n";
    let credentials = [
        "kind = \"client_secret\"\nclient_secret = \"s\"\n",
        "kind = \"client_certificate\"\npkcs12_base64 = \"AA==\"\npassword = \"p\"\n",
        "kind = \"workload_identity\"\ntoken_file = \"/var/run/token\"\n",
        "kind = \"managed_identity\"\nclient_id = \"m\"\n",
    ];
    let mut all = config_check("");
    // `database.url` is printed only when set (unset, the SQLite file at `database.path` is used).
    let postgres = config_check("[database]\nurl = \"postgres://u:p@db/x\"\n");
    all.entry("database.url".to_owned()).or_insert(
        postgres
            .into_iter()
            .find(|(k, _)| k == "database.url")
            .expect("database.url printed")
            .1,
    );
    for credential in credentials {
        let text = format!("{oidc}[graph]\nclient_id = \"app\"\n[graph.credential]\n{credential}");
        for (key, effective) in config_check(&text) {
            all.entry(key).or_insert(effective);
        }
    }
    let smtp = "[notify.smtp]\nhost = \"smtp.example.com\"\nport = 587\nfrom = \"dirsync@example.com\"\n\
                tls = \"starttls\"\nusername = \"u\"\npassword = \"p\"\n";
    for (key, effective) in config_check(smtp) {
        all.entry(key).or_insert(effective);
    }
    // The optional sections themselves, printed as `null` when absent: their keys are above.
    all.remove("auth.oidc");
    all.remove("graph");
    all.remove("notify.smtp");
    all
}

/// The reference's table rows: setting → (cells, secret mark).
fn documented() -> BTreeMap<String, (Vec<String>, bool)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let text = std::fs::read_to_string(&path).expect("docs/configuration.md");
    text.lines()
        .filter(|line| line.starts_with("| `"))
        .filter_map(|line| {
            let cells: Vec<String> = line
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect();
            let first = &cells[0];
            let secret = first.contains('🔒');
            let key = first
                .trim_end_matches('🔒')
                .trim()
                .trim_matches('`')
                .to_owned();
            // Rows of settings, not of the "other variables" table.
            key.contains('.').then_some((key, (cells, secret)))
        })
        .collect()
}

fn environment_variable(key: &str) -> String {
    format!("DIRSYNC__{}", key.to_uppercase().replace('.', "__"))
}

#[test]
fn every_setting_has_its_row_with_its_environment_variable_and_default() {
    let settings = every_setting();
    let rows = documented();
    assert!(
        settings.len() >= 40,
        "only {} settings found",
        settings.len()
    );
    let mut problems = Vec::new();
    for (key, effective) in &settings {
        let Some((cells, secret)) = rows.get(key) else {
            problems.push(format!("{key}: no row in docs/configuration.md"));
            continue;
        };
        if cells.len() != 4 {
            problems.push(format!("{key}: the row needs 4 cells, has {}", cells.len()));
            continue;
        }
        let variable = format!("`{}`", environment_variable(key));
        if cells[1] != variable {
            problems.push(format!(
                "{key}: environment variable {} (expected {variable})",
                cells[1]
            ));
        }
        if effective.value == "\"[redacted]\"" && !secret {
            problems.push(format!("{key}: a secret, not marked 🔒"));
        }
        if effective.from_default {
            let expected = match effective.value.as_str() {
                "null" => "unset".to_owned(),
                v if v.contains("certificate(s)") => "none".to_owned(),
                v => format!("`{}`", v.trim_matches('"')),
            };
            if cells[2] != expected {
                problems.push(format!(
                    "{key}: default {} (the code's: {expected})",
                    cells[2]
                ));
            }
        }
    }
    let known: BTreeSet<&String> = settings.keys().collect();
    for key in rows.keys().filter(|k| !known.contains(k)) {
        problems.push(format!("{key}: documented, but no such setting"));
    }
    assert!(
        problems.is_empty(),
        "docs/configuration.md:\n{}",
        problems.join("\n")
    );
}
