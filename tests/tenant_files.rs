//! Tenant files as a careless operator writes them, through `dirsync tenant apply`: each problem
//! said once, naming the file, the line, the tenant and the field, and nothing stored; and a
//! tenant that selects no group, confirmed, whose runs carry a warning instead of a plain success.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use dirsync::domain::TenantKey;
use dirsync::source::memory::{MemoryDirectory, MemorySource};
use dirsync::store::{PgStore, RunOptions, RunStatus, Store, SubjectKind, Trigger};
use dirsync::sync::{FixedConnector, SyncContext, SyncSettings, run_sync};
use dirsync::target::memory::MemoryTarget;
use dirsync::tenant::parse_tenant_file;
use sqlx::PgPool;

const TENANT_ID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const GROUP: &str = "0c8b6a3e-1f62-4d2a-9f7e-3d1e5b2a7c10";

fn tenant_file(bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dirsync-tenants-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let path = dir.join("tenants.toml");
    std::fs::write(&path, bytes).expect("tenant file written");
    path
}

/// `acme` selecting one group, with `extra` lines in its table.
fn acme(extra: &str) -> String {
    format!(
        "[[tenant]]\nkey = \"acme\"\nentra_tenant_id = \"{TENANT_ID}\"\ntime_zone = \"UTC\"\n{extra}\
         [[tenant.groups]]\nid = \"{GROUP}\"\nrole = \"internal\"\n"
    )
}

/// `dirsync tenant apply FILE` against a database that cannot be reached: a file that is
/// refused must be refused before anything connects.
fn apply(file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dirsync"))
        .args(["tenant", "apply", file.to_str().unwrap()])
        .env(
            "DIRSYNC__DATABASE__URL",
            "postgres://nobody@127.0.0.1:1/none",
        )
        .env_remove("DIRSYNC_CONFIG")
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary ran")
}

fn refusal(bytes: &[u8]) -> (PathBuf, String) {
    let file = tenant_file(bytes);
    let output = apply(&file);
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        !err.contains("could not open the database"),
        "refused before connecting: {err}"
    );
    (file, err)
}

#[test]
fn a_missing_required_field_is_named_once_with_the_file_line_and_tenant() {
    let (file, err) = refusal(acme("").replace("time_zone = \"UTC\"\n", "").as_bytes());

    assert_eq!(
        err.trim_end(),
        format!(
            "error: {}: line 1: tenant \"acme\": time_zone is missing (it is required)",
            file.display()
        )
    );
}

#[test]
fn a_non_utf8_tenant_file_is_refused_naming_the_line_the_tenant_and_the_field() {
    let mut bytes = acme("name = \"Caf\u{e9} Legal\"\n").into_bytes();
    let at = bytes.windows(2).position(|w| w == [0xc3, 0xa9]).unwrap();
    bytes.splice(at..at + 2, [0xe9]);

    let (file, err) = refusal(&bytes);

    assert_eq!(
        err.trim_end(),
        format!(
            "error: {}: line 5: tenant \"acme\": name is not valid UTF-8 (byte 0xE9 at column 12); \
             save the file as UTF-8",
            file.display()
        )
    );
}

#[test]
fn a_tenant_file_of_megabytes_is_refused_before_it_is_read_whole() {
    let mut bytes = acme("name = \"").into_bytes();
    bytes.resize(3 * 1024 * 1024, b'x');

    let (_, err) = refusal(&bytes);

    assert!(
        err.contains(&format!(
            "the tenant file is {} bytes, more than the 1048576 bytes a tenant file may hold",
            3 * 1024 * 1024
        )),
        "{err}"
    );
}

#[test]
fn a_long_name_the_nil_tenant_id_and_no_groups_are_each_refused_on_their_line() {
    let text = format!(
        "[[tenant]]\nkey = \"acme\"\nname = \"{}\"\nentra_tenant_id = \"00000000-0000-0000-0000-000000000000\"\n\
         time_zone = \"UTC\"\n",
        "N".repeat(10_000)
    );

    let (file, err) = refusal(text.as_bytes());

    let lines: Vec<&str> = err.lines().collect();
    let file = file.display();
    assert_eq!(
        lines,
        [
            format!(
                "error: {file}: line 3: tenant \"acme\": name is 10000 characters long; at most 256 are allowed"
            ),
            format!(
                "{file}: line 4: tenant \"acme\": entra_tenant_id is the nil GUID \
                 00000000-0000-0000-0000-000000000000, not a directory: use the tenant ID shown in \
                 the Entra admin center"
            ),
            format!(
                "{file}: line 1: tenant \"acme\": groups: no group is selected, so a run would sync \
                 nobody and convert every synced group to a system group; select at least one group, \
                 or set confirm_no_groups = true if that is what you mean"
            ),
        ]
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn a_run_of_a_tenant_confirmed_to_select_no_group_carries_a_warning(pool: PgPool) {
    let text = format!(
        "[[tenant]]\nkey = \"acme\"\nentra_tenant_id = \"{TENANT_ID}\"\ntime_zone = \"UTC\"\n\
         confirm_no_groups = true\n"
    );
    let tenant = parse_tenant_file(&text).expect("a confirmed empty selection")[0].clone();
    let store = Arc::new(PgStore::new(pool));
    store.upsert_tenant(&tenant).await.unwrap();
    let ctx = SyncContext {
        store: store.clone(),
        connector: Arc::new(FixedConnector {
            source: Arc::new(MemorySource::new(MemoryDirectory::default())),
            target: Arc::new(MemoryTarget::new()),
        }),
        settings: SyncSettings::default(),
    };

    let outcome = run_sync(
        &ctx,
        &TenantKey::parse("acme").unwrap(),
        Trigger::manual("test"),
        RunOptions::default(),
    )
    .await
    .unwrap();

    assert_eq!(outcome.status, RunStatus::Succeeded);
    assert_eq!(
        outcome.summary.planned.warnings, 1,
        "never a plain success: the run counts its warning"
    );
    let entries = store.run_entries(outcome.run_id).await.unwrap();
    let warning = entries
        .iter()
        .find(|e| e.subject == SubjectKind::Run && e.action == "warning")
        .unwrap_or_else(|| panic!("no run warning in {entries:#?}"));
    assert_eq!(
        warning.message.as_deref(),
        Some(
            "no group is selected for this tenant (its configuration confirms it), so this run \
             syncs nobody; groups synced before become system groups"
        )
    );
}
