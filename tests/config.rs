//! Settings as a careless operator writes them, through the built binary: typos in sections and
//! keys (in the file and in `DIRSYNC__…` variables), numbers that would panic or hang, unknown
//! enum values — each refused at start with one sentence naming it and where it came from — and
//! `dirsync config check` showing the effective values, their origins and no secret.

use std::path::PathBuf;
use std::process::{Command, Output};

/// A settings file with `text`, in a scratch directory of its own.
fn settings_file(text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dirsync-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let path = dir.join("dirsync.toml");
    std::fs::write(&path, text).expect("settings written");
    path
}

/// `dirsync ARGS` with only the given `DIRSYNC__…` variables (none inherited from the test).
fn dirsync(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dirsync"));
    for (name, _) in std::env::vars() {
        if name.starts_with("DIRSYNC") || name == "DATABASE_URL" {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary ran")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_misspelt_section_in_the_file_is_refused_instead_of_silently_using_the_default_database() {
    let file = settings_file("[databse]\nurl = \"postgres://app@db.internal/production\"\n");

    let output = dirsync(&["--config", file.to_str().unwrap(), "migrate"], &[]);

    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "settings file {}: unknown section `databse`; did you mean `database`?",
            file.display()
        )),
        "{err}"
    );
}

#[test]
fn a_misspelt_section_in_an_environment_variable_is_refused_naming_the_variable() {
    let output = dirsync(
        &["config", "check"],
        &[(
            "DIRSYNC__DATABSE__URL",
            "postgres://app@db.internal/production",
        )],
    );

    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "environment variable DIRSYNC__DATABSE__URL: unknown section `databse`; did you mean `database`?"
        ),
        "{err}"
    );
}

#[test]
fn a_misspelt_key_and_an_unknown_log_format_are_refused_together() {
    let file = settings_file("[database]\nmax_conections = 5\n");

    let output = dirsync(
        &["--config", file.to_str().unwrap(), "config", "check"],
        &[("DIRSYNC__LOG__FORMAT", "yaml")],
    );

    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "unknown key `max_conections` in section `database`; did you mean `max_connections`?"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "environment variable DIRSYNC__LOG__FORMAT: log.format = \"yaml\" is not one of: text, json"
        ),
        "{err}"
    );
}

#[test]
fn a_pool_of_no_connections_is_refused_at_start_instead_of_panicking() {
    let output = dirsync(
        &["migrate"],
        &[
            ("DIRSYNC__DATABASE__MAX_CONNECTIONS", "0"),
            (
                "DIRSYNC__DATABASE__URL",
                "postgres://nobody@127.0.0.1:1/none",
            ),
        ],
    );

    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "not a panic (101): {err}");
    assert!(
        err.contains(
            "environment variable DIRSYNC__DATABASE__MAX_CONNECTIONS: database.max_connections = 0 \
             is out of range: it must be from 1 to 1000"
        ),
        "{err}"
    );
}

#[test]
fn a_target_concurrency_of_zero_is_refused_before_any_run_can_start_and_hang() {
    let file = settings_file("[sync]\ntarget_concurrency = 0\n");

    let output = dirsync(
        &[
            "--config",
            file.to_str().unwrap(),
            "sync",
            "--tenant",
            "acme",
        ],
        &[(
            "DIRSYNC__DATABASE__URL",
            "postgres://nobody@127.0.0.1:1/none",
        )],
    );

    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("sync.target_concurrency = 0 is out of range: it must be from 1 to 256"),
        "{err}"
    );
    assert!(
        !err.contains("could not open the database"),
        "refused before connecting: {err}"
    );
}

#[test]
fn config_check_prints_each_effective_value_with_its_origin_and_no_secret() {
    let file = settings_file(
        "[database]\nurl = \"postgres://dirsync:hunter2@db.internal:5432/dirsync\"\n\
         [graph]\nclient_id = \"00000000-0000-4000-8000-000000000001\"\n\
         [graph.credential]\nkind = \"client_secret\"\nclient_secret = \"s3cret-value\"\n",
    );

    let output = dirsync(
        &["--config", file.to_str().unwrap(), "config", "check"],
        &[("DIRSYNC__SYNC__TARGET_CONCURRENCY", "4")],
    );

    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{}", stderr(&output));
    let line = |key: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no line for {key} in:\n{out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        line("sync.target_concurrency"),
        "sync.target_concurrency = 4 (environment variable DIRSYNC__SYNC__TARGET_CONCURRENCY)"
    );
    assert_eq!(
        line("database.url"),
        format!(
            "database.url = \"postgres://dirsync:[redacted]@db.internal:5432/dirsync\" (settings file {})",
            file.display()
        )
    );
    assert_eq!(
        line("graph.credential.client_secret"),
        format!(
            "graph.credential.client_secret = \"[redacted]\" (settings file {})",
            file.display()
        )
    );
    assert_eq!(
        line("sync.flush_every"),
        "sync.flush_every = 1000 (default)"
    );
    assert_eq!(line("graph.concurrency"), "graph.concurrency = 5 (default)");
    assert!(!out.contains("hunter2") && !out.contains("s3cret"), "{out}");
}
