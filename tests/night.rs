//! Issue 10, "boring at night": a real `dirsync sync` child process is SIGKILLed twenty times at
//! seeded random points of a 3,000-user initial sync into the HighQ emulator, each kill followed
//! by a restart. Afterwards one clean run must leave HighQ equal to the directory with no
//! duplicate user or group, every killed run closed as interrupted with its partial report, and
//! no restart refused as "already in progress". The figures are printed.

#![cfg(feature = "emulators")]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use dirsync::emulator::entra::{AppRegistration, Directory, EntraEmulator, Group, TenantDirectory};
use dirsync::emulator::highq::{HighQEmulator, HighQSeed};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sqlx::PgPool;

const TENANT: &str = "7e5a0000-0000-4000-8000-000000000001";
const APP: &str = "a9900000-0000-4000-8000-000000000001";
const SECRET: &str = "night-secret";
const PARTNERS: &str = "00006900-0000-4000-8000-0000000000a1";
const LAWYERS: &str = "00006900-0000-4000-8000-0000000000a2";
const CLIENTS: &str = "00006900-0000-4000-8000-0000000000a3";
const USERS: u32 = 3_000;
const KILLS: usize = 20;
const SEED: u64 = 0x6e16_6874;

fn user_id(n: u32) -> String {
    format!("00005e50-0000-4000-8000-{n:012x}")
}

fn email(n: u32) -> String {
    format!("person{n}@night.example")
}

fn user(n: u32) -> Value {
    json!({
        "id": user_id(n),
        "displayName": format!("Person {n}"),
        "givenName": "Person",
        "surname": format!("{n}"),
        "mail": email(n),
        "userPrincipalName": email(n),
        "businessPhones": [],
        "jobTitle": "Associate",
        "accountEnabled": true,
    })
}

/// 3,000 people: 1–200 partners, 201–2,000 lawyers (internal), 2,001–3,000 clients (basic).
fn directory() -> TenantDirectory {
    let mut tenant = TenantDirectory::new(TENANT);
    tenant.apps.push(AppRegistration::consented(APP, SECRET));
    for n in 1..=USERS {
        tenant.put_user(user(n));
    }
    let members = |range: std::ops::RangeInclusive<u32>| range.map(user_id).collect::<Vec<_>>();
    for (id, name, members) in [
        (PARTNERS, "Partners", members(1..=200)),
        (LAWYERS, "Lawyers", members(201..=2_000)),
        (CLIENTS, "Clients", members(2_001..=USERS)),
    ] {
        tenant.groups.push(Group {
            id: id.to_owned(),
            display_name: name.to_owned(),
            members,
        });
    }
    tenant
}

fn database_url(pool: &PgPool) -> String {
    let text = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let mut url = url::Url::parse(&text).expect("DATABASE_URL is a URL");
    let name = pool.connect_options().get_database().unwrap().to_owned();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

fn command(database_url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dirsync"));
    command
        .args(args)
        .env("DIRSYNC__DATABASE__URL", database_url)
        .env("RUST_LOG", "error")
        .env_remove("DIRSYNC_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

async fn run_to_end(mut command: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("the binary started")
}

/// Waits (off the runtime) for the child to end; its exit code, `None` when killed.
async fn wait(mut child: Child) -> Option<i32> {
    tokio::task::spawn_blocking(move || child.wait().expect("the child ended").code())
        .await
        .unwrap()
}

/// How far run `run` has come: operations applied, operations planned, and its status.
async fn progress(pool: &PgPool, run: i64) -> (i64, i64, String) {
    sqlx::query_as(
        "SELECT COALESCE(progress_done, 0)::bigint, COALESCE(progress_total, 0)::bigint, status
         FROM runs WHERE id = $1",
    )
    .bind(run)
    .fetch_one(pool)
    .await
    .expect("the run's progress")
}

/// The stage of the tenant's running run begun after run `after`, if there is one.
async fn running_stage(pool: &PgPool, after: i64) -> Option<(i64, String)> {
    sqlx::query_as(
        "SELECT id, COALESCE(progress_stage, '') FROM runs
         WHERE status = 'running' AND id > $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(after)
    .fetch_optional(pool)
    .await
    .unwrap()
}

async fn latest_run(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM runs")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "./migrations")]
async fn twenty_sigkills_during_an_initial_sync_leave_nothing_the_next_run_cannot_finish(
    pool: PgPool,
) {
    let started = Instant::now();
    let entra = EntraEmulator::start(Directory {
        tenants: vec![directory()],
    })
    .await
    .expect("Entra emulator");
    let highq = HighQEmulator::start(HighQSeed::default())
        .await
        .expect("HighQ emulator");
    let dir = std::env::temp_dir().join(format!("dirsync-night-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let settings = dir.join("dirsync.toml");
    std::fs::write(
        &settings,
        dirsync::demo::graph_settings_toml(entra.base_url(), entra.ca_pem(), APP, SECRET),
    )
    .unwrap();
    let tenants = dir.join("tenants.toml");
    std::fs::write(
        &tenants,
        format!(
            "[[tenant]]\nkey = \"night\"\nentra_tenant_id = \"{TENANT}\"\ntime_zone = \"Europe/London\"\n\
             deletion_threshold = 0\n\
             [[tenant.groups]]\nid = \"{PARTNERS}\"\nrole = \"internal\"\n\
             [[tenant.groups]]\nid = \"{LAWYERS}\"\nrole = \"internal\"\n\
             [[tenant.groups]]\nid = \"{CLIENTS}\"\nrole = \"basic\"\n\
             [tenant.target]\nkind = \"highq\"\nbase_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n",
            highq.base_url(),
            highq.client_id(),
            highq.client_secret()
        ),
    )
    .unwrap();
    let url = database_url(&pool);
    let applied = run_to_end(command(
        &url,
        &["tenant", "apply", tenants.to_str().unwrap()],
    ))
    .await;
    assert!(applied.status.success(), "{applied:?}");
    let code = highq.with(|s| s.issue_authorization_code());
    let connected = run_to_end(command(
        &url,
        &[
            "tenant",
            "connect-highq",
            "--tenant",
            "night",
            "--code",
            &code,
        ],
    ))
    .await;
    assert!(connected.status.success(), "{connected:?}");
    let config = settings.to_str().unwrap().to_owned();
    let sync = || {
        let mut sync = command(&url, &["--config", &config, "sync", "--tenant", "night"]);
        sync.env("DIRSYNC__SYNC__FLUSH_INTERVAL_MS", "200");
        sync
    };

    // Act: twenty kills at seeded random points of the apply phase, each followed by a restart.
    let mut rng = rand::rngs::StdRng::seed_from_u64(SEED);
    let mut killed_runs = Vec::new();
    let mut finished_before_kill = 0;
    let mut refused_as_running = 0;
    let mut waits_for_apply = Vec::new();
    for _ in 0..KILLS {
        let before = latest_run(&pool).await;
        let mut child = sync().spawn().expect("dirsync sync started");
        // Wait for the run to reach its apply phase (the HighQ token is then refreshed and
        // shared), so every kill lands among the target writes; then a seeded delay.
        let waiting = Instant::now();
        let run = loop {
            if let Some(status) = child.try_wait().unwrap() {
                if status.code() == Some(4) {
                    refused_as_running += 1;
                }
                break None;
            }
            match running_stage(&pool, before).await {
                Some((id, stage)) if stage == "applying changes" => break Some(id),
                _ => tokio::task::yield_now().await,
            }
        };
        waits_for_apply.push(waiting.elapsed());
        let Some(run) = run else {
            finished_before_kill += 1;
            continue;
        };
        // The kill point is a seeded fraction of the operations this run has left, not a time, so
        // kills land mid-apply however fast the machine is.
        let fraction = rng.random_range(0.02..0.3);
        let mut target = None;
        let finished = loop {
            if child.try_wait().unwrap().is_some() {
                break true;
            }
            let (done, total, status) = progress(&pool, run).await;
            if status != "running" {
                break true;
            }
            let target = *target.get_or_insert(done + ((total - done) as f64 * fraction) as i64);
            if total > 0 && done >= target {
                break false;
            }
            tokio::task::yield_now().await;
        };
        if finished {
            finished_before_kill += 1;
            continue;
        }
        child.kill().expect("SIGKILL sent");
        // The process may have exited between the check above and the signal: then the run
        // finished before its kill (its exit code says so).
        if wait(child).await.is_some() {
            finished_before_kill += 1;
            continue;
        }
        // The run may also have recorded its end just before the signal (the process was on
        // its way out): then it finished before its kill, too.
        let status: String = sqlx::query_scalar("SELECT status FROM runs WHERE id = $1")
            .bind(run)
            .fetch_one(&pool)
            .await
            .unwrap();
        if status != "running" {
            finished_before_kill += 1;
            continue;
        }
        killed_runs.push(run);
    }

    // One clean run finishes the job.
    let clean = run_to_end(sync()).await;
    let clean_code = clean.status.code();

    // Assert: the target equals the directory, with no duplicates.
    let users = highq.users();
    let emails: Vec<String> = users.iter().map(|u| u.email.to_lowercase()).collect();
    let unique: HashSet<&String> = emails.iter().collect();
    let groups = highq.groups();
    let synced: Vec<_> = groups.iter().filter(|g| g.guid.is_some()).collect();
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for group in &synced {
        *names.entry(group.name.as_str()).or_default() += 1;
    }
    let duplicate_users = emails.len() - unique.len();
    let duplicate_groups: usize = names.values().map(|n| n - 1).sum();
    let expected: HashSet<String> = (1..=USERS).map(email).collect();
    let members_of = |guid: &str| -> BTreeSet<String> {
        let group = synced
            .iter()
            .find(|g| g.guid.as_deref() == Some(guid))
            .unwrap_or_else(|| panic!("group {guid} is in HighQ"));
        group
            .members
            .iter()
            .map(|id| {
                users
                    .iter()
                    .find(|u| u.id == *id)
                    .unwrap()
                    .email
                    .to_lowercase()
            })
            .collect()
    };
    let lost_members: usize = [
        (PARTNERS, 1..=200),
        (LAWYERS, 201..=2_000),
        (CLIENTS, 2_001..=USERS),
    ]
    .into_iter()
    .map(|(guid, range)| {
        let want: BTreeSet<String> = range.map(email).collect();
        want.difference(&members_of(guid)).count()
    })
    .sum();

    let statuses: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT r.id, r.status, (SELECT count(*) FROM report_entries e WHERE e.run_id = r.id)
         FROM runs r ORDER BY r.id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let killed: Vec<&(i64, String, i64)> = statuses
        .iter()
        .filter(|(run, _, _)| killed_runs.contains(run))
        .collect();
    let interrupted = killed.iter().filter(|(_, s, _)| s == "interrupted").count();
    // Beyond the closing "interrupted" line: what the run applied before it died.
    let with_applied_lines = killed.iter().filter(|(_, _, lines)| *lines > 1).count();
    let report_lines: i64 = killed.iter().map(|(_, _, lines)| lines).sum();
    let still_running = statuses.iter().filter(|(_, s, _)| s == "running").count();
    let slowest_wait = waits_for_apply.iter().max().copied().unwrap_or_default();

    println!(
        "night: {KILLS} kill attempts (seed {SEED:#x}), {} runs killed mid-apply, {finished_before_kill} \
         finished before their kill, {refused_as_running} restarts refused as already running \
         (slowest start to apply {slowest_wait:?}); clean run exit {clean_code:?}; HighQ holds {} \
         users ({} expected), {} synced groups; duplicate users {duplicate_users}, duplicate groups \
         {duplicate_groups}, memberships lost {lost_members}; killed runs closed as interrupted \
         {interrupted}/{}, {with_applied_lines} of them with lines of what they applied \
         ({report_lines} lines kept in all); {:?} in all",
        killed_runs.len(),
        users.len(),
        USERS,
        synced.len(),
        killed_runs.len(),
        started.elapsed()
    );
    assert_eq!(
        clean_code,
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert_eq!(refused_as_running, 0, "no restart is blocked by a dead run");
    assert!(
        killed_runs.len() >= KILLS / 2,
        "most kills land mid-apply: {}",
        killed_runs.len()
    );
    assert_eq!(duplicate_users, 0);
    assert_eq!(duplicate_groups, 0);
    assert_eq!(unique.len(), USERS as usize);
    assert!(emails.iter().all(|e| expected.contains(e)));
    assert_eq!(synced.len(), 3);
    assert_eq!(lost_members, 0);
    assert_eq!(interrupted, killed_runs.len());
    assert!(with_applied_lines > 0, "partial reports are kept");
    assert_eq!(still_running, 0);
    std::fs::remove_dir_all(dir).ok();
}
