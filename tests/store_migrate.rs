//! `dirsync store migrate`: a synced installation on SQLite moves up to PostgreSQL with all its
//! history (tenants, mirror, runs, reports, grants, tokens, sessions, audit log, target refresh
//! tokens), and the next run there plans nothing. The copy refuses a destination that holds
//! records unless told to replace them, and knows every column of both schemas.

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::sync::Arc;

use chrono::{Duration, SubsecRound, Utc};
use dirsync::domain::{AccessRole, DeactivationStatus, EntraObjectId, Role, TenantKey};
use dirsync::plan::{EntraUser, SelectedGroup, TenantPolicy};
use dirsync::source::memory::{MemoryDirectory, MemorySource};
use dirsync::store::access::{
    AuditEvent, AuditFilter, AuditOutcome, EntraIdentity, NewGrant, NewToken, SecretHash,
    SessionRecord,
};
use dirsync::store::{
    Database, PgStore, RunOptions, RunStatus, Trigger, copied_columns, lock_sqlite_file,
};
use dirsync::sync::{FixedConnector, RunOutcome, SyncContext, SyncSettings, run_sync};
use dirsync::target::memory::MemoryTarget;
use dirsync::tenant::{Retention, Tenant};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use support::backend::TestDb;

fn oid(n: u128) -> EntraObjectId {
    uuid::Uuid::from_u128(n).into()
}

fn directory(users: u128) -> MemoryDirectory {
    let mut directory = MemoryDirectory::default();
    let members: Vec<EntraObjectId> = (1..=users).map(oid).collect();
    for id in &members {
        let n = id.as_uuid().as_u128();
        directory.users.insert(
            id.clone(),
            EntraUser {
                id: id.clone(),
                given_name: Some(format!("User{n}")),
                surname: Some("Doe".to_owned()),
                mail: Some(format!("user{n}@contoso.com")),
                account_enabled: Some(true),
                ..EntraUser::default()
            },
        );
    }
    directory
        .groups
        .insert(oid(0x6900), ("Everyone".to_owned(), members));
    directory
}

fn tenant() -> Tenant {
    Tenant {
        key: TenantKey::parse("acme").unwrap(),
        display_name: "Acme".to_owned(),
        entra_tenant_id: oid(0xac3e),
        time_zone: chrono_tz::UTC,
        report_retention: Retention::ThreeMonths,
        policy: TenantPolicy {
            selected_groups: vec![SelectedGroup {
                entra_id: oid(0x6900),
                role: Role::Internal,
            }],
            deactivation_status: DeactivationStatus::Inactive,
            deletion_threshold: 500,
        },
        source: Default::default(),
        target: None,
    }
}

async fn sync(
    store: Arc<dyn Database>,
    directory: MemoryDirectory,
    target: &MemoryTarget,
) -> RunOutcome {
    let ctx = SyncContext {
        store,
        connector: Arc::new(FixedConnector {
            source: Arc::new(MemorySource::new(directory)),
            target: Arc::new(target.clone()),
        }),
        settings: SyncSettings::default(),
    };
    run_sync(
        &ctx,
        &tenant().key,
        Trigger::manual("test"),
        RunOptions::default(),
    )
    .await
    .unwrap()
}

/// The URL of the database behind `pool`, for the child process.
fn database_url(pool: &PgPool) -> String {
    let text = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let mut url = url::Url::parse(&text).expect("DATABASE_URL is a URL");
    let name = pool
        .connect_options()
        .get_database()
        .expect("a name")
        .to_owned();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

fn store_migrate(from: &str, to: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dirsync"))
        .args(["store", "migrate", "--from", from, "--to", to])
        .args(extra)
        .env("RUST_LOG", "warn")
        .env_remove("DIRSYNC_CONFIG")
        .output()
        .expect("the binary ran")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Everything a person can read back from a store, as one comparable value.
async fn everything(store: &dyn Database) -> BTreeMap<String, String> {
    let key = tenant().key;
    let mut all = BTreeMap::new();
    all.insert(
        "tenants".into(),
        format!("{:?}", store.tenants().await.unwrap()),
    );
    all.insert(
        "mirror".into(),
        format!("{:?}", store.load_mirror(&key).await.unwrap()),
    );
    let runs = store.runs(&key, 100).await.unwrap();
    for run in &runs {
        all.insert(
            format!("run {} groups", run.id),
            format!("{:?}", store.run_groups(run.id).await.unwrap()),
        );
        all.insert(
            format!("run {} entries", run.id),
            format!("{:?}", store.run_entries(run.id).await.unwrap()),
        );
    }
    all.insert("runs".into(), format!("{runs:?}"));
    all.insert(
        "grants".into(),
        format!("{:?}", store.grants(None).await.unwrap()),
    );
    all.insert(
        "tokens".into(),
        format!("{:?}", store.tokens().await.unwrap()),
    );
    let audit = store
        .audit_events(&AuditFilter {
            limit: 1000,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    all.insert("audit".into(), format!("{audit:?}"));
    all.insert(
        "schedule".into(),
        format!("{:?}", store.schedule_baseline(&key).await.unwrap()),
    );
    let refresh = store.target_tokens(key, "highq").load().await.unwrap();
    all.insert(
        "refresh token".into(),
        format!("{:?}", refresh.map(|t| t.expose_secret().to_owned())),
    );
    all
}

#[sqlx::test(migrations = "./migrations")]
async fn a_synced_sqlite_installation_moves_to_postgresql_with_its_history_and_the_next_run_plans_nothing(
    pool: PgPool,
) {
    let sqlite = TestDb::sqlite().await;
    let store = sqlite.store.clone();
    store.upsert_tenant(&tenant()).await.unwrap();
    let target = MemoryTarget::new();
    let first = sync(store.clone(), directory(40), &target).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");
    // A leaver, so the history holds a deactivation.
    let second = sync(store.clone(), directory(39), &target).await;
    assert_eq!(second.summary.applied.users_deactivated, 1, "{second:?}");
    let now = Utc::now().trunc_subsecs(6);
    let person = EntraIdentity {
        tenant_id: oid(0xac3e),
        object_id: oid(0xada),
    };
    store
        .grant(&NewGrant {
            identity: person.clone(),
            role: AccessRole::TenantAdmin,
            tenant: Some(tenant().key),
            label: Some("Ada".into()),
            granted_by: "cli:root@host".into(),
        })
        .await
        .unwrap();
    store
        .create_token(&NewToken {
            prefix: "dsy_abcdefgh".into(),
            secret_hash: SecretHash([7; 32]),
            name: "ci".into(),
            role: AccessRole::Viewer,
            tenant: Some(tenant().key),
            created_by: "cli:root@host".into(),
            created_at: now,
            expires_at: now + Duration::days(90),
        })
        .await
        .unwrap();
    store
        .create_session(&SessionRecord {
            id_hash: SecretHash([9; 32]),
            identity: person,
            name: "Ada".into(),
            username: Some("ada@contoso.com".into()),
            app_roles: vec!["DirSync.TenantAdmin".into()],
            csrf_token: "csrf".into(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + Duration::hours(12),
        })
        .await
        .unwrap();
    store
        .record_audit(&AuditEvent {
            at: now,
            tenant: Some(tenant().key),
            actor: "Ada".into(),
            actor_id: Some("entra:x/y".into()),
            action: "run_force".into(),
            outcome: AuditOutcome::Ok,
            detail: serde_json::json!({"run": first.run_id}),
            source_ip: Some("10.0.0.1".into()),
            forwarded_for: None,
            user_agent: Some("curl".into()),
        })
        .await
        .unwrap();
    store
        .claim_midnight(&tenant().key, now - Duration::hours(3))
        .await
        .unwrap();
    store
        .target_tokens(tenant().key, "highq")
        .save(&SecretString::from("refresh-me"))
        .await
        .unwrap();
    let before = everything(store.as_ref()).await;

    let from = format!("sqlite://{}", sqlite.sqlite_file().unwrap().display());
    let to = database_url(&pool);
    // Not while a server still writes to the file.
    let serving = lock_sqlite_file(&sqlite.sqlite_file().unwrap())
        .await
        .unwrap();
    let refused = store_migrate(&from, &to, &[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused).contains("stop dirsync serve before moving its records"),
        "{}",
        text(&refused)
    );
    serving.release().await.unwrap();

    let moved = store_migrate(&from, &to, &[]);
    assert_eq!(moved.status.code(), Some(0), "{}", text(&moved));
    assert!(text(&moved).contains("report_entries"), "{}", text(&moved));

    let postgres: Arc<dyn Database> = Arc::new(PgStore::new(pool.clone()));
    let after = everything(postgres.as_ref()).await;
    for (what, value) in &before {
        assert_eq!(after.get(what), Some(value), "{what} changed in the move");
    }
    assert_eq!(after.len(), before.len());
    // The same session still signs its person in; the same API token still works.
    assert!(
        postgres
            .session(&SecretHash([9; 32]), now, Duration::minutes(30))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        postgres
            .use_token(&SecretHash([7; 32]), now)
            .await
            .unwrap()
            .is_some()
    );

    let writes_before = target.write_count();
    let next = sync(postgres.clone(), directory(39), &target).await;
    assert_eq!(next.status, RunStatus::Succeeded, "{next:?}");
    assert_eq!(next.summary.operations_applied, 0, "{next:?}");
    assert_eq!(
        target.write_count(),
        writes_before,
        "the next run wrote to the target"
    );
    assert!(
        next.run_id > second.run_id,
        "new runs continue after the copied ones"
    );

    // Into a database that holds records: refused, unless told to replace them.
    let again = store_migrate(&from, &to, &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again).contains("the destination already holds records")
            && text(&again).contains("--replace"),
        "{}",
        text(&again)
    );
    assert_eq!(postgres.runs(&tenant().key, 100).await.unwrap().len(), 3);
    let replaced = store_migrate(&from, &to, &["--replace"]);
    assert_eq!(replaced.status.code(), Some(0), "{}", text(&replaced));
    assert_eq!(everything(postgres.as_ref()).await, before);
}

#[sqlx::test(migrations = "./migrations")]
async fn the_copy_knows_every_column_of_both_schemas(pool: PgPool) {
    let sqlite = TestDb::sqlite().await;
    let postgres = TestDb::postgres(pool);
    let copied: BTreeMap<String, Vec<String>> = copied_columns()
        .into_iter()
        .map(|(table, columns)| {
            let mut columns: Vec<String> = columns.into_iter().map(str::to_owned).collect();
            columns.sort();
            (table.to_owned(), columns)
        })
        .collect();
    for (db, tables_sql, columns_sql) in [
        (
            &postgres,
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'",
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'",
        ),
        (
            &sqlite,
            "SELECT name FROM sqlite_schema WHERE type = 'table'
             AND name NOT IN ('_sqlx_migrations', 'sqlite_sequence')",
            "SELECT t.name, c.name FROM sqlite_schema t, pragma_table_info(t.name) c
             WHERE t.type = 'table' AND t.name NOT IN ('_sqlx_migrations', 'sqlite_sequence')",
        ),
    ] {
        let mut schema: BTreeMap<String, Vec<String>> = db
            .rows::<(String,)>(tables_sql)
            .await
            .into_iter()
            .map(|(table,)| (table, Vec::new()))
            .collect();
        for (table, column) in db.rows::<(String, String)>(columns_sql).await {
            schema.entry(table).or_default().push(column);
        }
        for columns in schema.values_mut() {
            columns.sort();
        }
        assert_eq!(
            schema, copied,
            "a migration changed the schema: src/store/copy.rs must copy every column"
        );
    }
}

#[test]
fn the_same_database_is_not_copied_onto_itself_and_a_bad_url_is_named() {
    let same = store_migrate("sqlite:///tmp/x.db", "sqlite:///tmp/x.db", &[]);
    assert_eq!(same.status.code(), Some(1));
    assert!(
        text(&same).contains("name the same database"),
        "{}",
        text(&same)
    );
    let bad = store_migrate("mysql://db/x", "sqlite:///tmp/x.db", &[]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad).contains("--from must start with postgres://"),
        "{}",
        text(&bad)
    );
}
