//! The admin console in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`, through WebDriver) against the service serving the demo's world — the
//! Entra emulator (sign-in and Graph) and the HighQ emulator, each test on its own database.
//! Flows: sign in through the emulator's form; a tenant admin sees only their tenant; Force sync
//! now → progress reaches 100% → the report shows the directory's changes; Download gives the
//! four-sheet workbook; a held run is rejected (and cannot be approved after), the next one is
//! approved once; the person page explains a departure; an
//! operator onboards a tenant, tests its connection and previews it; a tenant admin pauses and
//! resumes the tenant and sees its quarantine, an operator pauses dirsync; a tenant admin syncs a
//! few people now and sees each one's steps, and an operator sees the what-if of removing a group
//! before confirming; notification settings with a test sent and a credential expiring in 29
//! days; sign-out. Screenshots of
//! each page go to `target/screenshots/`.

#![cfg(feature = "emulators")]

mod support;

use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering};

use calamine::{Reader, Xlsx, open_workbook_from_rs};
use dirsync::demo::console::{OPERATOR, TENANT_ADMIN, VIEWER};
use dirsync::demo::directory::{self, PARTNERS};
use dirsync::demo::{Demo, DemoOptions};
use dirsync::domain::{EntraObjectId, TenantKey};
use dirsync::service::ServiceHandle;
use dirsync::store::RunStatus;
use dirsync::tenant::Tenant;
use support::browser::Browser;

/// The demo's world and the console serving it.
struct World {
    demo: Demo,
    service: ServiceHandle,
    base: String,
    database: String,
}

impl World {
    /// A connection to the demo's own PostgreSQL database, for reading what the pages recorded.
    async fn pool(&self) -> sqlx::PgPool {
        let mut url = url::Url::parse(&server_url()).expect("DATABASE_URL is a URL");
        url.set_path(&self.database);
        sqlx::PgPool::connect(url.as_str())
            .await
            .expect("the demo database")
    }
}

fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

async fn world(name: &str) -> World {
    static N: AtomicUsize = AtomicUsize::new(0);
    let database = format!(
        "dirsync_demo_console_{}_{name}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let demo = Demo::start(&DemoOptions::Postgres {
        server_url: server_url(),
        database: database.clone(),
    })
    .await
    .expect("the demo world starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service = dirsync::demo::console::serve(&demo, listener)
        .await
        .unwrap();
    World {
        base: format!("http://{}", service.addr),
        demo,
        service,
        database,
    }
}

impl World {
    async fn stop(self) {
        self.service.stop().await.unwrap();
        let database = self.database;
        drop(self.demo);
        // The database was made for this test only.
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&server_url())
            .await
            .unwrap();
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
        ))
        .execute(&mut admin)
        .await
        .unwrap();
    }

    /// Takes `people` (by person number) out of every group in Entra: they leave (R10).
    fn remove_from_entra_groups(&self, people: &[usize]) {
        let ids: Vec<String> = people.iter().map(|n| directory::user_id(*n)).collect();
        self.demo.entra.edit(|dir| {
            let tenant = dir.tenant_mut(directory::TENANT_ID).unwrap();
            for group in tenant.groups.iter_mut() {
                group.members.retain(|m| !ids.contains(m));
            }
        });
    }

    async fn save_tenant(&self, change: impl FnOnce(&mut Tenant)) {
        let mut tenant = self.demo.tenant.clone();
        change(&mut tenant);
        self.demo.store.upsert_tenant(&tenant).await.unwrap();
    }
}

/// A second tenant in another directory, which the demo tenant's people must never see.
async fn rival_tenant(world: &World) {
    let mut rival = world.demo.tenant.clone();
    rival.key = TenantKey::parse("rival").unwrap();
    rival.display_name = "Rival Partners LLP".to_owned();
    rival.entra_tenant_id = EntraObjectId::parse("be7a0000-0000-4000-8000-0000000000ee").unwrap();
    world.demo.store.upsert_tenant(&rival).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_forces_a_sync_follows_it_to_100_percent_reads_and_downloads_its_report() {
    let world = world("force").await;
    rival_tenant(&world).await;
    let browser = Browser::start().await;
    let base = &world.base;

    // Anonymous: sent to sign in; signed in through the Entra emulator's form.
    browser.sign_in(base, TENANT_ADMIN.username).await;
    let who = browser.text("#signed-in-as").await;
    assert!(who.starts_with(TENANT_ADMIN.name), "{who}");

    // Only their own tenant, and nothing of the other one on any page.
    let tenants = browser.text("main").await;
    assert!(tenants.contains("demo"), "{tenants}");
    assert!(
        !tenants.contains("Rival") && !tenants.contains("rival"),
        "{tenants}"
    );
    for path in [
        "/tenants/rival",
        "/tenants/rival/reports",
        "/tenants/rival/people?q=a",
        "/tenants/rival/force",
        "/tenants/rival/settings",
    ] {
        browser.goto(&format!("{base}{path}")).await;
        let main = browser.wait_for("main[data-error-code]").await;
        let code = main.attr("data-error-code").await.unwrap();
        assert!(
            code.as_deref() == Some("not_found"),
            "{path}: {code:?} {}",
            browser.body().await
        );
        assert!(!browser.body().await.contains("Rival Partners"), "{path}");
    }

    // The tenant page: the selected groups as Entra names them, with member counts.
    browser.goto(&format!("{base}/")).await;
    browser.click("a[href='/tenants/demo']").await;
    let groups = browser
        .wait_for_text("#groups", |t| t.contains("Partners"))
        .await;
    assert!(groups.contains("Partners [Synced Group]"), "{groups}");
    assert!(groups.contains(&PARTNERS.id.to_string()), "{groups}");
    assert!(
        groups.contains("25"),
        "Partners has 25 direct members: {groups}"
    );

    // Force sync now: a confirmation first, then the notification and live progress.
    browser.click("#force-sync").await;
    browser.wait_for("#confirm-force").await;
    assert!(browser.body().await.contains("Force sync now?"));
    browser.click("#confirm-force").await;
    let notice = browser
        .wait_for_text("#notice", |t| t.contains("Sync started"))
        .await;
    assert!(notice.contains("run "), "{notice}");
    let live = browser.wait_for("#progress").await;
    let followed_live = live.attr("data-state").await.unwrap().as_deref() == Some("running");
    browser.screenshot("tenant-running-sync").await;
    browser
        .wait_for("#progress[data-state='done'] [data-run-state='done']")
        .await;
    let progress = browser.text("#progress").await;
    assert!(progress.contains("100%"), "{progress}");
    assert!(progress.contains("Succeeded"), "{progress}");
    let transport = browser
        .find("#progress")
        .await
        .attr("data-transport")
        .await
        .unwrap();
    if followed_live {
        assert_eq!(
            transport.as_deref(),
            Some("sse"),
            "progress came by server-sent events"
        );
    }

    // The report shows the directory's changes.
    browser.click("#progress-report").await;
    let counts = browser
        .wait_for_text("#counts", |t| t.contains("users created"))
        .await;
    assert!(counts.contains("users created"), "{counts}");
    let first = directory::email(5);
    let lines = browser.text("#lines-count").await;
    assert!(lines.contains("of "), "{lines}");
    browser.fill("#report-search", &first).await;
    browser
        .click("#lines-title ~ form button[type=submit]")
        .await;
    let found = browser
        .wait_for_text("#report-lines", |t| t.contains(&first))
        .await;
    assert!(found.contains("created"), "{found}");
    assert!(
        browser.text("#lines-count").await.contains(&first),
        "the count says what was searched"
    );
    browser.screenshot("report").await;

    // Download: the link gives the workbook, with its four sheets, to this signed-in browser.
    let href = browser
        .find("#download")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let session = browser.cookie("dirsync_session").await;
    let response = reqwest::Client::new()
        .get(format!("{base}{href}"))
        .header("cookie", format!("dirsync_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.unwrap();
    let book: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes.to_vec())).unwrap();
    assert_eq!(book.sheet_names(), ["Summary", "Groups", "Users", "Errors"]);

    // The Sync reports page lists it as a Manual run by this admin.
    browser
        .goto(&format!("{base}/tenants/demo/reports?trigger=manual"))
        .await;
    let runs = browser
        .wait_for_text("table.runs", |t| t.contains("Manual"))
        .await;
    assert!(
        runs.contains(&format!("Manual ({})", TENANT_ADMIN.name)) || runs.contains("Manual (Tess"),
        "{runs}"
    );
    browser
        .goto(&format!("{base}/tenants/demo/reports?trigger=automatic"))
        .await;
    browser.wait_for("#no-runs").await;

    // Sign out: back to the sign-in page, and the console is closed to this browser.
    browser.goto(&format!("{base}/")).await;
    browser.click("#sign-out").await;
    browser.wait_for_path("/sign-in").await;
    browser.goto(&format!("{base}/tenants/demo")).await;
    browser.wait_for_path("/sign-in").await;

    browser.stop().await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_run_is_rejected_the_next_is_approved_once_and_the_person_page_explains_a_departure()
{
    let world = world("held").await;
    // A first run, and then five people leave every group: more than the threshold of three.
    let first = world.demo.sync("setup").await.unwrap();
    assert_eq!(first.status, RunStatus::Succeeded);
    world.save_tenant(|t| t.policy.deletion_threshold = 3).await;
    let leavers = [180, 181, 182, 183, 184];
    world.remove_from_entra_groups(&leavers);
    let leaver = directory::email(180);

    let browser = Browser::start().await;
    let base = &world.base;
    browser.sign_in(base, TENANT_ADMIN.username).await;
    browser.goto(&format!("{base}/tenants/demo/force")).await;
    browser.click("#confirm-force").await;
    browser
        .wait_for("#progress[data-state='done'] [data-run-state='done']")
        .await;
    browser.goto(&format!("{base}/tenants/demo")).await;
    let banner = browser
        .wait_for_text("#held-banner", |t| t.contains("held for approval"))
        .await;
    assert!(banner.contains("5 users deactivated"), "{banner}");
    assert!(browser.exists("#approve").await && browser.exists("#reject").await);
    browser.screenshot("held-run").await;
    let rejected_run = world
        .demo
        .store
        .runs(&world.demo.tenant.key, 1)
        .await
        .unwrap()[0]
        .id;

    // Reject, with a confirmation page that says what it does and takes a reason.
    browser.click("#reject").await;
    let confirm = browser
        .wait_for_text("main", |t| t.contains("can no longer be approved"))
        .await;
    assert!(
        confirm.contains(&format!("Reject held run {rejected_run}?")),
        "{confirm}"
    );
    browser
        .fill("#reject-reason", "A reorganisation, not departures")
        .await;
    browser.click("#confirm-reject").await;
    browser
        .wait_for_text("#notice", |t| t.contains("Rejected"))
        .await;
    browser.wait_for("#groups").await;
    assert!(!browser.exists("#held-banner").await);
    assert!(!browser.exists("#approve").await);
    browser
        .goto(&format!("{base}/tenants/demo/reports/{rejected_run}"))
        .await;
    let status = browser
        .wait_for_text("#run-status", |t| !t.is_empty())
        .await;
    assert!(status.starts_with("Rejected"), "{status}");
    let rejection = browser.text("#run-rejection").await;
    assert!(
        rejection.contains(&format!("by {}", TENANT_ADMIN.name))
            && rejection.ends_with("A reorganisation, not departures"),
        "{rejection}"
    );
    // Approving it afterwards (a stale page's form, replayed with this session) is refused.
    let csrf = browser
        .find("input[name=csrf_token]")
        .await
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    let session = browser.cookie("dirsync_session").await;
    let refused = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!(
            "{base}/tenants/demo/reports/{rejected_run}/approve"
        ))
        .header("cookie", format!("dirsync_session={session}"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    let page = refused.text().await.unwrap();
    assert!(page.contains("a rejected run cannot be approved"), "{page}");
    assert_eq!(
        world
            .demo
            .store
            .runs(&world.demo.tenant.key, 1)
            .await
            .unwrap()[0]
            .status,
        RunStatus::Rejected,
        "no run carried out the refused approval"
    );

    // The leavers are still gone: the next forced run is held again.
    browser.goto(&format!("{base}/tenants/demo/force")).await;
    browser.click("#confirm-force").await;
    browser
        .wait_for("#progress[data-state='done'] [data-run-state='done']")
        .await;
    browser.goto(&format!("{base}/tenants/demo")).await;
    browser
        .wait_for_text("#held-banner", |t| t.contains("held for approval"))
        .await;

    // Approve: carried out once; the banner and its button are gone after.
    browser.click("#approve").await;
    browser
        .wait_for_text("#notice", |t| t.contains("Approved"))
        .await;
    browser
        .wait_for("#progress[data-state='done'] [data-run-state='done']")
        .await;
    browser.goto(&format!("{base}/tenants/demo")).await;
    browser.wait_for("#groups").await;
    assert!(!browser.exists("#held-banner").await);
    assert!(!browser.exists("#approve").await);
    let runs = world
        .demo
        .store
        .runs(&world.demo.tenant.key, 10)
        .await
        .unwrap();
    let statuses: Vec<RunStatus> = runs.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            RunStatus::Succeeded,
            RunStatus::Held,
            RunStatus::Rejected,
            RunStatus::Succeeded
        ],
        "one rejection, one approval, one run carrying it out"
    );
    assert_eq!(
        runs[0].summary.as_ref().unwrap().applied.users_deactivated,
        5
    );

    // The person page: search by email, pick them, and read why they were deactivated.
    browser.goto(&format!("{base}/tenants/demo/people")).await;
    browser.fill("#person-search", &leaver).await;
    browser.click("#person-search-go").await;
    browser.wait_for("#people a").await;
    browser.click("#people a").await;
    let history = browser
        .wait_for_text("#history", |t| t.contains("deactivated"))
        .await;
    assert!(
        history.contains(&format!("Run {}", runs[0].id)),
        "the approved run: {history}"
    );
    assert!(
        history.contains("(planned, not carried out)"),
        "the held run planned it: {history}"
    );
    assert!(
        history.contains(&format!("Run {}", first.run_id))
            && history.contains("joined Business Services"),
        "the first run brought them in: {history}"
    );
    assert!(
        history.contains("removed from synced groups"),
        "why: {history}"
    );
    browser.screenshot("person").await;

    // A viewer may read all of this but not force or approve.
    browser.click("#sign-out").await;
    browser.wait_for_path("/sign-in").await;
    browser.sign_in(base, VIEWER.username).await;
    browser.goto(&format!("{base}/tenants/demo")).await;
    browser.wait_for("#groups").await;
    assert!(!browser.exists("#force-sync").await);
    browser.goto(&format!("{base}/tenants/demo/force")).await;
    let main = browser.wait_for("main[data-error-code]").await;
    assert_eq!(
        main.attr("data-error-code").await.unwrap().as_deref(),
        Some("forbidden")
    );

    browser.stop().await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_onboards_a_tenant_tests_its_connection_previews_it_and_confirms_a_role_change()
{
    let world = world("onboard").await;
    let browser = Browser::start().await;
    let base = &world.base;
    browser.sign_in(base, OPERATOR.username).await;

    // Onboard "northwind": the settings form, with a time-zone picker.
    browser.fill("#onboard-key", "northwind").await;
    browser
        .click("form[action='/operator/onboard'] button")
        .await;
    browser.wait_for_path("/tenants/northwind/settings").await;
    browser.fill("#s-name", "Northwind Traders").await;
    browser.fill("#s-entra", directory::TENANT_ID).await;
    browser.select("#s-zone", "America/New_York").await;
    browser.select("#s-retention", "6").await;
    browser.fill("#s-threshold", "50").await;
    browser
        .fill(
            "#s-groups",
            &format!(
                "{} internal\n{} basic\n",
                PARTNERS.id,
                directory::CLIENT_PORTAL.id
            ),
        )
        .await;
    browser.select("#s-kind", "highq").await;
    browser.fill("#s-url", world.demo.highq.base_url()).await;
    browser
        .fill("#s-client", &world.demo.highq.client_id())
        .await;
    browser
        .fill("#s-secret", &world.demo.highq.client_secret())
        .await;
    browser.screenshot("onboarding").await;
    browser.click("#save-settings").await;
    browser
        .wait_for_text("#notice", |t| t.contains("saved"))
        .await;
    let page = browser.body().await;
    assert!(page.contains("Northwind Traders"), "{page}");
    assert!(page.contains("America/New_York"), "{page}");
    assert!(page.contains("6 months"), "{page}");
    assert!(
        page.contains("EST (UTC-05:00)") || page.contains("EDT (UTC-04:00)"),
        "times in the tenant's zone with the offset: {page}"
    );

    // Test connection: Entra signs in and counts each group; HighQ has no refresh token yet.
    browser.click("#test-connection").await;
    let entra = browser
        .wait_for_text("#check-groups", |t| t.contains("Partners"))
        .await;
    assert!(entra.contains("found"), "{entra}");
    assert!(browser.text("#entra-result").await.contains("Signed in"));
    let target = browser.text("#target-result").await;
    assert!(target.contains("Failed"), "{target}");

    // The operator connects HighQ from the console: a code that HighQ did not issue is refused
    // with HighQ's reason; then HighQ's consent page, and back with a code, exchanged.
    browser.click("#connect-highq").await;
    browser
        .wait_for_path("/tenants/northwind/connect-highq")
        .await;
    browser
        .fill("#highq-code", "a-code-highq-never-issued")
        .await;
    browser.click("#highq-paste").await;
    let failed = browser
        .wait_for_text("#connect-failed", |t| !t.is_empty())
        .await;
    assert!(failed.contains("authorization code"), "{failed}");
    browser.screenshot("connect-highq").await;
    browser.click("#highq-authorize").await;
    browser.click("#highq-allow").await;
    browser.wait_for_path("/tenants/northwind/check").await;
    let target = browser
        .wait_for_text("#target-result", |t| !t.is_empty())
        .await;
    assert!(target.contains("Connected"), "{target}");
    let connects: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT outcome, detail FROM audit_events WHERE action = 'target_connect' ORDER BY id",
    )
    .fetch_all(&world.pool().await)
    .await
    .unwrap();
    assert_eq!(
        connects.len(),
        2,
        "the refused code, then the exchange: {connects:?}"
    );
    assert_eq!(connects[0].0, "refused");
    assert_eq!(connects[0].1["via"], "pasted");
    assert!(
        connects[0].1["refused"]
            .as_str()
            .unwrap()
            .contains("authorization code"),
        "{connects:?}"
    );
    assert_eq!(connects[1].0, "ok");
    assert_eq!(connects[1].1["via"], "callback");
    assert_eq!(
        connects[1].1["redirect_uri"],
        format!("{base}/tenants/northwind/connect-highq/callback")
    );
    browser.screenshot("test-connection").await;

    // Preview: what a first sync would do, changing nothing.
    browser.click("#go-preview").await;
    let counts = browser
        .wait_for_text("#preview-counts", |t| t.contains("users created"))
        .await;
    let created_line = counts
        .lines()
        .find(|l| l.starts_with("users created"))
        .unwrap()
        .to_owned();
    let expected = {
        let mut people: Vec<usize> = directory::members(&PARTNERS);
        people.extend(directory::members(&directory::CLIENT_PORTAL));
        people.sort();
        people.dedup();
        people.len()
    };
    let adopted_line = counts
        .lines()
        .find(|l| l.starts_with("users adopted"))
        .unwrap_or("0");
    let number = |line: &str| -> usize { line.rsplit(' ').next().unwrap().parse().unwrap() };
    assert_eq!(
        number(&created_line) + number(adopted_line),
        expected,
        "every member of the two groups is created or adopted: {counts}"
    );
    browser.screenshot("preview").await;
    assert!(
        world
            .demo
            .store
            .runs(&TenantKey::parse("northwind").unwrap(), 5)
            .await
            .unwrap()
            .is_empty()
    );

    // R13: changing a group's role asks first, saying what it will do.
    browser
        .goto(&format!("{base}/tenants/northwind/settings"))
        .await;
    browser
        .fill(
            "#s-groups",
            &format!(
                "{} basic\n{} basic\n",
                PARTNERS.id,
                directory::CLIENT_PORTAL.id
            ),
        )
        .await;
    browser.click("#save-settings").await;
    let consequences = browser
        .wait_for_text("#consequences", |t| t.contains("R13"))
        .await;
    assert!(
        consequences.contains("from internal to basic"),
        "{consequences}"
    );
    browser.click("#confirm-settings").await;
    browser
        .wait_for_text("#notice", |t| t.contains("saved"))
        .await;
    let northwind = world
        .demo
        .store
        .tenant(&TenantKey::parse("northwind").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        northwind
            .policy
            .selected_groups
            .iter()
            .all(|g| g.role == dirsync::domain::Role::Basic)
    );

    // The operator's audit log shows both saves.
    browser.goto(&format!("{base}/operator/audit")).await;
    let audit = browser
        .wait_for_text("#audit", |t| t.contains("tenant_update"))
        .await;
    assert!(audit.contains("tenant_create"), "{audit}");

    browser.stop().await;
    world.stop().await;
}

/// Three automatic runs that failed, newest last, as the scheduler would have left them.
async fn three_failed_nights(world: &World) {
    use dirsync::store::{RunFinish, RunOptions, RunStart, RunSummary, Trigger};
    let key = TenantKey::parse("demo").unwrap();
    for _ in 0..3 {
        let RunStart::Started(lease) = world
            .demo
            .store
            .begin_run(&key, &Trigger::automatic(), RunOptions::default())
            .await
            .unwrap()
        else {
            panic!("a run was in progress");
        };
        let finish = RunFinish {
            status: RunStatus::Failed,
            summary: RunSummary::default(),
            message: Some(
                "reconnect HighQ (dirsync tenant connect-highq): the target refused dirsync's \
                 credential (invalid_grant); nothing was changed"
                    .to_owned(),
            ),
        };
        lease.finish(&finish, &[]).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_pauses_and_resumes_the_tenant_sees_its_quarantine_and_an_operator_pauses_dirsync()
 {
    let world = world("pause").await;
    let browser = Browser::start().await;
    let base = &world.base;

    // A tenant admin pauses the tenant, with a reason: a banner says who, since when and why,
    // and Force sync is gone until it is resumed.
    browser.sign_in(base, TENANT_ADMIN.username).await;
    browser.goto(&format!("{base}/tenants/demo")).await;
    browser.wait_for("#pause-form").await;
    browser
        .fill("#pause-reason", "HighQ moves to a new host")
        .await;
    browser.click("#pause").await;
    let banner = browser
        .wait_for_text("#pause-banner", |t| t.contains("HighQ moves"))
        .await;
    assert!(banner.contains(TENANT_ADMIN.name), "{banner}");
    assert!(
        banner.contains("Resuming does not run the skipped midnights"),
        "{banner}"
    );
    assert!(!browser.exists("#force-sync").await);
    browser.screenshot("paused-tenant").await;
    browser.goto(&format!("{base}/")).await;
    let list = browser
        .wait_for_text("tr[data-tenant='demo']", |t| t.contains("Paused"))
        .await;
    assert!(list.contains("HighQ moves to a new host"), "{list}");
    browser.goto(&format!("{base}/tenants/demo")).await;
    browser.click("#resume").await;
    let notice = browser
        .wait_for_text("#notice", |t| t.contains("Resumed"))
        .await;
    assert!(
        notice.contains("Skipped midnights are not run again"),
        "{notice}"
    );
    assert!(!browser.exists("#pause-banner").await);
    assert!(browser.exists("#force-sync").await);

    // Three failed nights: the tenant page says it is quarantined, why, and when it is tried next.
    three_failed_nights(&world).await;
    browser.goto(&format!("{base}/tenants/demo")).await;
    let quarantine = browser
        .wait_for_text("#quarantine-banner", |t| t.contains("quarantined"))
        .await;
    assert!(
        quarantine.contains("failed 3 nights in a row"),
        "{quarantine}"
    );
    assert!(
        quarantine.contains("the target refused dirsync's credential"),
        "{quarantine}"
    );
    assert!(
        quarantine.contains("the next attempt is at"),
        "{quarantine}"
    );
    browser.screenshot("quarantined-tenant").await;
    browser.goto(&format!("{base}/")).await;
    browser
        .wait_for_text("tr[data-tenant='demo']", |t| t.contains("Quarantined"))
        .await;

    // An operator pauses dirsync for maintenance from the tenants list; every tenant page says
    // so, and it is in the audit log.
    browser.click("#sign-out").await;
    browser.wait_for_path("/sign-in").await;
    browser.sign_in(base, OPERATOR.username).await;
    browser.wait_for("#pause-all-form").await;
    browser.fill("#pause-all-reason", "database upgrade").await;
    browser.click("#pause-all").await;
    let banner = browser
        .wait_for_text("#service-pause-banner", |t| t.contains("database upgrade"))
        .await;
    assert!(banner.contains(OPERATOR.name), "{banner}");
    browser.screenshot("paused-service").await;
    browser.goto(&format!("{base}/tenants/demo")).await;
    browser
        .wait_for_text("#service-pause-banner", |t| t.contains("database upgrade"))
        .await;
    assert!(!browser.exists("#force-sync").await);
    browser.goto(&format!("{base}/")).await;
    browser.click("#resume-all").await;
    browser.wait_for("#pause-all-form").await;
    assert!(!browser.exists("#service-pause-banner").await);
    browser.goto(&format!("{base}/operator/audit")).await;
    let audit = browser
        .wait_for_text("#audit", |t| t.contains("service_resume"))
        .await;
    for action in ["tenant_pause", "tenant_resume", "service_pause"] {
        assert!(audit.contains(action), "{action}: {audit}");
    }

    browser.stop().await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_syncs_people_now_and_an_operator_sees_the_what_if_of_removing_a_group() {
    let world = world("people").await;
    let base = &world.base;
    let first = dirsync::sync::run_sync(
        &world.demo.ctx,
        &world.demo.tenant.key,
        dirsync::store::Trigger::manual("test"),
        dirsync::store::RunOptions::default(),
    )
    .await
    .unwrap();
    assert_ne!(first.status, RunStatus::Failed, "{first:?}");
    // Overnight in Entra: person 30 gets a new title; person 31 leaves every group.
    let promoted = directory::user_id(30);
    world.demo.entra.edit(|dir| {
        let tenant = dir.tenant_mut(directory::TENANT_ID).unwrap();
        tenant.users.get_mut(&promoted).unwrap().insert(
            "jobTitle".to_owned(),
            serde_json::Value::String("Senior Associate".to_owned()),
        );
    });
    world.remove_from_entra_groups(&[31]);
    let browser = Browser::start().await;
    browser.sign_in(base, TENANT_ADMIN.username).await;

    browser.goto(&format!("{base}/tenants/demo")).await;
    browser.click("#sync-people").await;
    browser.wait_for("#people").await;
    browser
        .fill(
            "#people",
            &format!(
                "{}\n{}\nnobody@contoso-legal.com",
                directory::email(30),
                directory::user_id(31)
            ),
        )
        .await;
    browser.click("#sync-people-submit").await;
    let steps = browser
        .wait_for_text("#sync-people-result", |t| t.contains("found in Entra"))
        .await;
    for expected in [
        "Senior Associate",
        "in scope",
        "out of scope",
        "deactivated",
        "not found in Entra",
    ] {
        assert!(steps.contains(expected), "{expected}: {steps}");
    }
    assert_eq!(browser.text("#sync-people-status").await, "Succeeded");
    browser.screenshot("sync-people").await;
    // Too many people is refused on the form.
    browser
        .goto(&format!("{base}/tenants/demo/sync-people"))
        .await;
    browser
        .fill("#people", "a@x.com b@x.com c@x.com d@x.com e@x.com f@x.com")
        .await;
    browser.click("#sync-people-submit").await;
    let problem = browser
        .wait_for_text("#sync-people-problem", |t| !t.is_empty())
        .await;
    assert!(problem.contains("neither"), "{problem}");

    // The operator removes Business Services: the confirmation shows the what-if first.
    browser.click("#sign-out").await;
    browser.wait_for_path("/sign-in").await;
    browser.sign_in(base, OPERATOR.username).await;
    browser.goto(&format!("{base}/tenants/demo/settings")).await;
    let kept: String = directory::SELECTED_GROUPS
        .iter()
        .filter(|g| g.name != directory::BUSINESS_SERVICES.name)
        .map(|g| format!("{} {}\n", g.id, g.role))
        .collect();
    browser.fill("#s-groups", &kept).await;
    browser.click("#save-settings").await;
    let headlines = browser
        .wait_for_text("#what-if-headlines", |t| t.contains("Business Services"))
        .await;
    assert!(
        headlines.contains("removing Business Services [Synced Group] deactivates"),
        "{headlines}"
    );
    let deactivated = browser.text("#what-if-deactivated").await;
    assert!(!deactivated.is_empty(), "{headlines}");
    browser.screenshot("what-if").await;

    browser.stop().await;
    world.stop().await;
}

/// A webhook receiver on 127.0.0.1:0 that answers 200 and counts what it gets.
async fn webhook_receiver() -> (String, std::sync::Arc<AtomicUsize>) {
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_are_set_by_page_a_test_is_sent_and_an_expiring_credential_is_flagged() {
    let world = world("notify").await;
    // The app credential expires in 29 days (configured: the demo app may not read itself).
    world
        .save_tenant(|t| {
            t.source.credential_expires_at =
                Some(chrono::Utc::now() + chrono::Duration::days(29) + chrono::Duration::hours(1))
        })
        .await;
    let (hook, received) = webhook_receiver().await;
    let browser = Browser::start().await;
    let base = &world.base;

    // The operator sets the webhook, a recipient and the events, from the tenant page.
    browser.sign_in(base, OPERATOR.username).await;
    browser.goto(&format!("{base}/tenants/demo")).await;
    browser.click("#notifications-link").await;
    browser.wait_for_path("/tenants/demo/notifications").await;
    let warning = browser
        .wait_for_text("#expiry-graph_app", |t| t.contains("expires in 29 days"))
        .await;
    assert!(warning.contains("Expires soon"), "{warning}");
    browser.fill("#webhook-url", &hook).await;
    browser.fill("#webhook-secret", "console-signing-key").await;
    browser
        .fill("#email-to", "tess.admin@contoso-legal.com")
        .await;
    browser.click("#ev-run_held").await;
    browser.click("#ev-credential_expiring").await;
    browser.click("#notify-save").await;
    browser
        .wait_for_text("#notify-notice", |t| t.contains("Saved"))
        .await;

    // Send test: queued on both channels; the service's worker (here: one pass) delivers it.
    browser.click("#notify-test").await;
    browser
        .wait_for_text("#notify-notice", |t| t.contains("test notification"))
        .await;
    let notifier = dirsync::notify::Notifier::new(
        world.demo.store.clone(),
        world.demo.store.clone(),
        dirsync::notify::NotifySettings {
            webhook_allow_private: true,
            ..Default::default()
        },
        Default::default(),
        std::sync::Arc::new(dirsync::schedule::SystemClock),
    );
    assert_eq!(notifier.deliver_due().await.unwrap(), 2);
    assert_eq!(
        received.load(Ordering::SeqCst),
        1,
        "the webhook got the test"
    );
    browser.refresh_page().await;
    let rows = browser
        .wait_for_text("#notifications", |t| t.contains("Sent"))
        .await;
    assert!(rows.contains("test"), "{rows}");
    assert!(
        rows.contains("notify.smtp"),
        "the email is listed as failed, saying no relay is configured: {rows}"
    );
    assert!(!browser.body().await.contains("console-signing-key"));
    browser.screenshot("notifications").await;

    // The tenant admin sees the webhook but cannot change it, and changes the rest.
    browser.click("#sign-out").await;
    browser.wait_for_path("/sign-in").await;
    browser.sign_in(base, TENANT_ADMIN.username).await;
    browser
        .goto(&format!("{base}/tenants/demo/notifications"))
        .await;
    let readonly = browser
        .wait_for_text("#webhook-readonly", |t| !t.is_empty())
        .await;
    assert!(readonly.contains("Only an operator"), "{readonly}");
    assert!(!browser.exists("#webhook-url").await);
    browser.click("#daily-digest").await;
    browser.click("#notify-save").await;
    browser
        .wait_for_text("#notify-notice", |t| t.contains("Saved"))
        .await;
    let stored = world
        .demo
        .store
        .notification_settings(&TenantKey::parse("demo").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(stored.settings.daily_digest);
    assert_eq!(
        stored.settings.webhook.unwrap().url.as_str(),
        hook,
        "the webhook stayed as the operator set it"
    );
    browser.stop().await;
    world.stop().await;
}
