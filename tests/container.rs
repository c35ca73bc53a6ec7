//! The deployment files kept honest without a container engine: the `Dockerfile`'s build command,
//! environment, `CMD` and `HEALTHCHECK`, `compose.yaml`'s replicas and `deploy/k8s/`'s Deployment
//! (environment, Secret, probes) are read from the files and run outside a container, with the
//! production binary (`--no-default-features`), against the local PostgreSQL; and schemathesis
//! tries the live API against its OpenAPI document with an operator token.
//!
//! Only the parsing test runs in a plain `cargo test`. The others need the production binary:
//! `scripts/test` builds it with the Dockerfile's command and runs them with
//! `DIRSYNC_PRODUCTION_BIN` set (`cargo test --test container -- --ignored`).
//!
//! What is replaced when run here, and why: the listening port (8080 may be taken on a shared
//! machine; the host part is kept) and the database URL (each test gets a fresh database on the
//! local server instead of the `postgres` service or the Secret's placeholder host).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What the image is made of, as the Dockerfile says it.
#[derive(Debug, Default)]
struct Dockerfile {
    /// `FROM` lines, in order: the builder, then the runtime.
    stages: Vec<String>,
    /// The builder's `RUN cargo build …`, as words.
    build: Vec<String>,
    env: Vec<(String, String)>,
    user: String,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    healthcheck: Vec<String>,
}

fn exec_form(text: &str) -> Vec<String> {
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("not an exec-form JSON array ({e}): {text}"))
}

fn parse_dockerfile(text: &str) -> Dockerfile {
    let joined = text.replace("\\\n", " ");
    let mut file = Dockerfile::default();
    for line in joined.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (instruction, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        match instruction {
            "FROM" => file.stages.push(rest.to_owned()),
            "RUN" if rest.starts_with("cargo build") => {
                file.build = rest.split_whitespace().map(str::to_owned).collect();
            }
            "ENV" => file.env.extend(rest.split_whitespace().map(|pair| {
                let (name, value) = pair.split_once('=').expect("ENV NAME=VALUE");
                (name.to_owned(), value.to_owned())
            })),
            "USER" => file.user = rest.to_owned(),
            "ENTRYPOINT" => file.entrypoint = exec_form(rest),
            "CMD" => file.cmd = exec_form(rest),
            "HEALTHCHECK" => {
                let (_, command) = rest.split_once("CMD ").expect("HEALTHCHECK … CMD [...]");
                file.healthcheck = exec_form(command);
            }
            _ => {}
        }
    }
    file
}

fn dockerfile() -> Dockerfile {
    parse_dockerfile(&read("Dockerfile"))
}

#[test]
fn the_dockerfile_builds_the_production_binary_and_runs_it_unprivileged_with_a_healthcheck() {
    let file = dockerfile();
    assert_eq!(
        file.build,
        [
            "cargo",
            "build",
            "--release",
            "--locked",
            "--no-default-features",
            "--bin",
            "dirsync"
        ],
        "the builder must build the production binary (no emulators) from the lock file"
    );
    assert_eq!(file.stages.len(), 2, "a builder and a runtime stage");
    assert!(
        file.stages[1].contains("slim"),
        "a small runtime image: {}",
        file.stages[1]
    );
    let uid: u32 = file
        .user
        .split(':')
        .next()
        .and_then(|u| u.parse().ok())
        .expect("USER is a numeric uid (Kubernetes' runAsNonRoot can only check those)");
    assert_ne!(uid, 0, "the image runs as root");
    assert_eq!(file.entrypoint, ["dirsync"]);
    assert_eq!(file.cmd, ["serve"]);
    assert_eq!(file.healthcheck, ["dirsync", "healthcheck"]);
    // The Kubernetes example runs as the same user.
    let deployment = k8s("deployment.yaml");
    let security = &deployment["spec"]["template"]["spec"]["securityContext"];
    assert_eq!(security["runAsUser"].as_u64(), Some(u64::from(uid)));
    assert_eq!(security["runAsNonRoot"].as_bool(), Some(true));
}

fn production_binary() -> PathBuf {
    let path = std::env::var_os("DIRSYNC_PRODUCTION_BIN").map(PathBuf::from).expect(
        "DIRSYNC_PRODUCTION_BIN: the binary built with the Dockerfile's command (scripts/test builds it)",
    );
    assert!(path.is_file(), "{} is not a file", path.display());
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `host:port` with the port replaced.
fn with_port(listen: &str, port: u16) -> String {
    let (host, _) = listen.rsplit_once(':').expect("host:port");
    format!("{host}:{port}")
}

/// A fresh database on the local server, dropped when the guard is.
struct Database {
    name: String,
    url: String,
}

fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

impl Database {
    async fn create() -> Self {
        let name = format!("dirsync_container_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&server_url())
            .await
            .expect("the local PostgreSQL");
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("database created");
        let mut url = url::Url::parse(&server_url()).expect("DATABASE_URL is a URL");
        url.set_path(&name);
        Self {
            name,
            url: url.to_string(),
        }
    }

    async fn drop_now(self) {
        let mut admin = PgConnection::connect(&server_url()).await.expect("admin");
        let _ = sqlx::raw_sql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await;
    }
}

/// The production binary with exactly `env` (nothing `DIRSYNC…` inherited from the test).
fn dirsync(env: &BTreeMap<String, String>) -> Command {
    let mut command = Command::new(production_binary());
    for (name, _) in std::env::vars() {
        if name.starts_with("DIRSYNC") || name == "DATABASE_URL" || name.starts_with("AZURE_") {
            command.env_remove(name);
        }
    }
    command.envs(env).current_dir(std::env::temp_dir());
    command
}

/// Runs an image's exec-form command (`["dirsync", …]`) with the production binary.
fn image_command(words: &[String], env: &BTreeMap<String, String>) -> Command {
    assert_eq!(
        words.first().map(String::as_str),
        Some("dirsync"),
        "{words:?}"
    );
    let mut command = dirsync(env);
    command.args(&words[1..]);
    command
}

fn output(command: &mut Command) -> Output {
    command.output().expect("the binary ran")
}

/// A running `dirsync serve`, stopped with SIGTERM (as a container runtime stops it).
struct Served {
    child: Child,
    port: u16,
}

impl Served {
    fn start(mut command: Command, port: u16) -> Self {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve started");
        Self { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Stops it as `docker stop` or Kubernetes would; returns what it logged.
    fn stop(self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let out = self.child.wait_with_output().expect("serve stopped");
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// Runs the healthcheck until it passes (the service migrates, then listens), at most 60 s.
fn wait_healthy(healthcheck: &mut impl FnMut() -> Output, served: &mut Served) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if healthcheck().status.success() {
            return;
        }
        if let Some(status) = served.child.try_wait().expect("the child") {
            let mut log = String::new();
            if let Some(mut stderr) = served.child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut stderr, &mut log);
            }
            panic!("serve exited with {status} before it was healthy:\n{log}");
        }
        assert!(Instant::now() < deadline, "not healthy within 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the service answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// The Dockerfile's environment, listening on a free port, with a fresh database.
fn image_environment(database: &Database) -> (BTreeMap<String, String>, u16) {
    let port = free_port();
    let mut env: BTreeMap<String, String> = dockerfile().env.into_iter().collect();
    let listen = env
        .get("DIRSYNC__SERVER__LISTEN")
        .expect("the image says where to listen");
    assert!(
        listen.starts_with("0.0.0.0:"),
        "a container must listen on every interface, not {listen}"
    );
    env.insert("DIRSYNC__SERVER__LISTEN".into(), with_port(listen, port));
    env.insert("DIRSYNC__DATABASE__URL".into(), database.url.clone());
    (env, port)
}

#[tokio::test]
#[ignore = "runs the production binary: scripts/test builds it and sets DIRSYNC_PRODUCTION_BIN"]
async fn the_image_serves_with_its_environment_migrates_on_start_and_its_healthcheck_tells() {
    let file = dockerfile();
    let database = Database::create().await;
    let (env, port) = image_environment(&database);

    // Nothing listens yet: the HEALTHCHECK fails.
    let down = output(&mut image_command(&file.healthcheck, &env));
    assert!(!down.status.success(), "healthy with nothing running");

    let command: Vec<String> = file.entrypoint.iter().chain(&file.cmd).cloned().collect();
    let mut served = Served::start(image_command(&command, &env), port);
    wait_healthy(
        &mut || output(&mut image_command(&file.healthcheck, &env)),
        &mut served,
    );
    // Ready means the database is reachable and every migration was applied at start.
    let (status, body) = get(&served.url("/readyz"), None).await;
    assert_eq!(status, 200, "{body}");
    // The API is there, and closed to strangers.
    let (status, _) = get(&served.url("/api/v1/tenants"), None).await;
    assert_eq!(status, 401);

    let (exit, log) = served.stop();
    assert!(exit.success(), "SIGTERM is a clean stop: {exit}\n{log}");
    let first = log.lines().next().expect("it logged");
    let line: serde_json::Value = serde_json::from_str(first)
        .unwrap_or_else(|e| panic!("DIRSYNC__LOG__FORMAT=json, but ({e}): {first}"));
    assert!(line["level"].is_string(), "{line}");
    database.drop_now().await;
}

fn yaml(path: &str) -> serde_yaml_ng::Value {
    let mut value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    value.apply_merge().expect("merge keys resolve");
    value
}

fn k8s(file: &str) -> serde_json::Value {
    let value = yaml(&format!("deploy/k8s/{file}"));
    serde_json::to_value(value).expect("plain YAML")
}

fn string_map(value: &serde_json::Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .expect("a mapping")
        .iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => panic!("{k}: quote environment values ({other})"),
            };
            (k.clone(), text)
        })
        .collect()
}

#[tokio::test]
#[ignore = "runs the production binary: scripts/test builds it and sets DIRSYNC_PRODUCTION_BIN"]
async fn compose_runs_two_replicas_on_one_postgres_database() {
    let compose = serde_json::to_value(yaml("compose.yaml")).expect("plain YAML");
    let services = compose["services"].as_object().expect("services");
    let postgres = &services["postgres"];
    let replicas: Vec<(&String, &serde_json::Value)> = services
        .iter()
        .filter(|(_, s)| s.get("build").is_some())
        .collect();
    assert_eq!(replicas.len(), 2, "two dirsync replicas");

    let database = Database::create().await;
    let mut running = Vec::new();
    for (name, service) in &replicas {
        assert_eq!(
            service["depends_on"]["postgres"]["condition"], "service_healthy",
            "{name} waits for PostgreSQL"
        );
        let mut env = string_map(&service["environment"]);
        // The replica's database is the compose PostgreSQL service, with its user and database.
        let url = url::Url::parse(&env["DIRSYNC__DATABASE__URL"]).expect("a database URL");
        let pg_env = string_map(&postgres["environment"]);
        assert_eq!(url.host_str(), Some("postgres"), "{name}");
        assert_eq!(url.username(), pg_env["POSTGRES_USER"], "{name}");
        assert_eq!(url.password(), Some(pg_env["POSTGRES_PASSWORD"].as_str()));
        assert_eq!(url.path(), format!("/{}", pg_env["POSTGRES_DB"]), "{name}");
        env.insert("DIRSYNC__DATABASE__URL".into(), database.url.clone());
        let port = free_port();
        let listen = with_port(&env["DIRSYNC__SERVER__LISTEN"], port);
        env.insert("DIRSYNC__SERVER__LISTEN".into(), listen);
        let mut command = dirsync(&env);
        command.arg("serve");
        running.push((name.to_string(), env, Served::start(command, port)));
    }
    let healthcheck = dockerfile().healthcheck;
    for (_, env, served) in &mut running {
        wait_healthy(
            &mut || output(&mut image_command(&healthcheck, env)),
            served,
        );
        let (status, body) = get(&served.url("/readyz"), None).await;
        assert_eq!(status, 200, "{body}");
    }
    for (name, _, served) in running {
        let (exit, log) = served.stop();
        assert!(exit.success(), "{name}: {exit}\n{log}");
    }
    database.drop_now().await;
}

fn container_port(container: &serde_json::Value, name: &str) -> u16 {
    container["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no port named {name}")) as u16
}

#[tokio::test]
#[ignore = "runs the production binary: scripts/test builds it and sets DIRSYNC_PRODUCTION_BIN"]
async fn the_kubernetes_deployment_environment_is_valid_and_its_probes_answer() {
    let deployment = k8s("deployment.yaml");
    let secret = k8s("secret.yaml");
    let account = k8s("serviceaccount.yaml");
    let pod = &deployment["spec"]["template"];
    assert_eq!(
        pod["metadata"]["labels"]["azure.workload.identity/use"],
        "true"
    );
    assert_eq!(
        pod["spec"]["serviceAccountName"],
        account["metadata"]["name"]
    );
    assert!(
        account["metadata"]["annotations"]["azure.workload.identity/client-id"].is_string(),
        "the service account names the app workload identity signs in as"
    );
    let container = &pod["spec"]["containers"][0];
    let secret_name = &container["envFrom"][0]["secretRef"]["name"];
    assert_eq!(*secret_name, secret["metadata"]["name"]);

    let mut env: BTreeMap<String, String> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|v| {
            (
                v["name"].as_str().expect("name").to_owned(),
                v["value"].as_str().expect("a literal value").to_owned(),
            )
        })
        .collect();
    env.extend(string_map(&secret["stringData"]));
    assert!(
        !env.values().any(|v| v.is_empty()),
        "an empty setting: {env:?}"
    );

    // What the workload identity webhook injects into the pod.
    let scratch = std::env::temp_dir().join(format!("dirsync-k8s-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&scratch).expect("scratch");
    let token_file = scratch.join("azure-identity-token");
    std::fs::write(&token_file, "a-projected-service-account-token").expect("token file");
    env.insert("AZURE_FEDERATED_TOKEN_FILE".into(), path_text(&token_file));
    env.insert(
        "AZURE_CLIENT_ID".into(),
        env["DIRSYNC__GRAPH__CLIENT_ID"].clone(),
    );
    env.insert(
        "AZURE_TENANT_ID".into(),
        env["DIRSYNC__AUTH__OIDC__OPERATOR_TENANT_ID"].clone(),
    );
    env.insert(
        "AZURE_AUTHORITY_HOST".into(),
        "https://login.microsoftonline.com/".into(),
    );

    let database = Database::create().await;
    let http = free_port();
    let metrics = free_port();
    assert_eq!(
        env["DIRSYNC__SERVER__LISTEN"],
        format!("0.0.0.0:{}", container_port(container, "http"))
    );
    assert_eq!(
        env["DIRSYNC__SERVER__METRICS_LISTEN"],
        format!("0.0.0.0:{}", container_port(container, "metrics"))
    );
    env.insert("DIRSYNC__SERVER__LISTEN".into(), format!("0.0.0.0:{http}"));
    env.insert(
        "DIRSYNC__SERVER__METRICS_LISTEN".into(),
        format!("127.0.0.1:{metrics}"),
    );
    env.insert("DIRSYNC__DATABASE__URL".into(), database.url.clone());

    let checked = output(dirsync(&env).args(["config", "check"]));
    assert!(
        checked.status.success(),
        "config check refused the Deployment's settings:\n{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let shown = String::from_utf8_lossy(&checked.stdout);
    assert!(shown.contains("workload_identity"), "{shown}");

    let args: Vec<String> = serde_json::from_value(container["args"].clone()).expect("args");
    let mut command = dirsync(&env);
    command.args(&args);
    let mut served = Served::start(command, http);
    let healthcheck = dockerfile().healthcheck;
    wait_healthy(
        &mut || output(&mut image_command(&healthcheck, &env)),
        &mut served,
    );
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let path = container[probe]["httpGet"]["path"]
            .as_str()
            .unwrap_or_else(|| panic!("{probe} asks a path"));
        assert_eq!(container[probe]["httpGet"]["port"], "http", "{probe}");
        let (status, body) = get(&served.url(path), None).await;
        assert_eq!(status, 200, "{probe} {path}: {body}");
    }
    let (status, _) = get(&format!("http://127.0.0.1:{metrics}/metrics"), None).await;
    assert_eq!(status, 200, "metrics on their own port");
    let (exit, log) = served.stop();
    assert!(exit.success(), "{exit}\n{log}");
    let grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("a termination grace period");
    assert!(
        grace > 30,
        "Kubernetes must wait longer than server.shutdown_grace_secs (30)"
    );
    database.drop_now().await;
    let _ = std::fs::remove_dir_all(scratch);
}

fn path_text(path: &Path) -> String {
    path.to_str().expect("a UTF-8 path").to_owned()
}

/// The directory the schemathesis run's tenant reads: one app, two groups, three people.
#[cfg(feature = "emulators")]
mod directory {
    use dirsync::emulator::entra::{AppRegistration, Directory, Group, TenantDirectory};
    use serde_json::json;

    pub const TENANT: &str = "6babcaad-604b-40ac-a9d7-9fd97c0b779f";
    pub const APP: &str = "a1b2c3d4-0000-4000-8000-0000000057a1";
    pub const SECRET: &str = "schemathesis-secret";
    pub const PARTNERS: &str = "00007000-0000-4000-8000-000000000001";
    pub const CLIENTS: &str = "00007000-0000-4000-8000-000000000002";

    pub fn firm() -> Directory {
        let mut tenant = TenantDirectory::new(TENANT);
        tenant.apps.push(AppRegistration::consented(APP, SECRET));
        let mut ids = Vec::new();
        for n in 1..=3 {
            let id = format!("00007000-0000-4000-8000-0000000001{n:02}");
            tenant.put_user(json!({
                "id": id,
                "displayName": format!("Person {n}"),
                "givenName": "Person",
                "surname": format!("{n}"),
                "mail": format!("person{n}@firm.example"),
                "userPrincipalName": format!("person{n}@firm.example"),
                "accountEnabled": true,
            }));
            ids.push(id);
        }
        tenant.groups.push(Group {
            id: PARTNERS.to_owned(),
            display_name: "Partners".to_owned(),
            members: ids[..2].to_vec(),
        });
        tenant.groups.push(Group {
            id: CLIENTS.to_owned(),
            display_name: "Clients".to_owned(),
            members: ids[2..].to_vec(),
        });
        Directory {
            tenants: vec![tenant],
        }
    }
}

/// Runs a blocking child-process step off the async runtime, so the emulators in this process
/// keep answering the service.
#[cfg(feature = "emulators")]
async fn blocking<T: Send + 'static>(step: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(step)
        .await
        .expect("the step ran")
}

#[cfg(feature = "emulators")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs the production binary: scripts/test builds it and sets DIRSYNC_PRODUCTION_BIN"]
async fn schemathesis_finds_no_server_error_and_no_response_outside_its_schema() {
    use dirsync::emulator::entra::EntraEmulator;
    use dirsync::emulator::highq::{HighQEmulator, HighQSeed};

    let schemathesis = std::env::var_os("DIRSYNC_SCHEMATHESIS").map(PathBuf::from).expect(
        "DIRSYNC_SCHEMATHESIS: schemathesis installed from tests/support/schemathesis-requirements.txt \
         (scripts/test installs it into target/schemathesis-venv)",
    );
    // Entra and HighQ for the tenant, so reading groups, previews and forced runs reach them.
    let entra = EntraEmulator::start(directory::firm())
        .await
        .expect("Entra emulator");
    let highq = HighQEmulator::start(HighQSeed::default())
        .await
        .expect("HighQ emulator");
    let scratch =
        std::env::temp_dir().join(format!("dirsync-schemathesis-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&scratch).expect("scratch");
    let settings = scratch.join("dirsync.toml");
    std::fs::write(
        &settings,
        dirsync::demo::graph_settings_toml(
            entra.base_url(),
            entra.ca_pem(),
            directory::APP,
            directory::SECRET,
        ),
    )
    .expect("settings");
    let tenants = scratch.join("tenants.toml");
    std::fs::write(
        &tenants,
        format!(
            "[[tenant]]\nkey = \"acme\"\nentra_tenant_id = \"{}\"\ntime_zone = \"Europe/London\"\n\
             [[tenant.groups]]\nid = \"{}\"\nrole = \"internal\"\n\
             [[tenant.groups]]\nid = \"{}\"\nrole = \"basic\"\n\
             [tenant.target]\nkind = \"highq\"\nbase_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n",
            directory::TENANT,
            directory::PARTNERS,
            directory::CLIENTS,
            highq.base_url(),
            highq.client_id(),
            highq.client_secret()
        ),
    )
    .expect("tenant file");

    let database = Database::create().await;
    let (mut env, port) = image_environment(&database);
    env.insert("DIRSYNC_CONFIG".into(), path_text(&settings));

    // An operator token, as an operator makes one, and a tenant connected to HighQ.
    let code = highq.with(|s| s.issue_authorization_code());
    let (token, env) = {
        let env = env.clone();
        blocking(move || {
            let created = output(dirsync(&env).args([
                "token",
                "create",
                "--name",
                "schemathesis",
                "--role",
                "operator",
            ]));
            assert!(created.status.success(), "{created:?}");
            let applied = output(dirsync(&env).arg("tenant").arg("apply").arg(&tenants));
            assert!(applied.status.success(), "{applied:?}");
            let connected = output(dirsync(&env).args([
                "tenant",
                "connect-highq",
                "--tenant",
                "acme",
                "--code",
                &code,
            ]));
            assert!(connected.status.success(), "{connected:?}");
            let token = String::from_utf8_lossy(&created.stdout).trim().to_owned();
            (token, env)
        })
        .await
    };
    assert!(token.starts_with("dsy_"), "{token}");

    let mut command = dirsync(&env);
    command.arg("serve");
    let served = {
        let env = env.clone();
        blocking(move || {
            let mut served = Served::start(command, port);
            let healthcheck = dockerfile().healthcheck;
            wait_healthy(
                &mut || output(&mut image_command(&healthcheck, &env)),
                &mut served,
            );
            served
        })
        .await
    };
    let (status, _) = get(&served.url("/api/v1/openapi.json"), None).await;
    assert_eq!(status, 401, "the document is for signed-in callers");
    let (status, document) = get(&served.url("/api/v1/openapi.json"), Some(&token)).await;
    assert_eq!(status, 200, "{document}");
    let schema = scratch.join("openapi.json");
    std::fs::write(&schema, &document).expect("schema written");

    let started = Instant::now();
    let mut run = Command::new(&schemathesis);
    run.args(["--no-color", "run"])
        .arg(&schema)
        .args(["--url", &served.url("")])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
        ])
        // Revoking a token could revoke this run's own.
        .args(["--exclude-operation-id", "revoke_token"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "15", "--workers", "2", "--seed", "1"])
        .current_dir(&scratch);
    let run = blocking(move || run.output().expect("schemathesis ran")).await;
    let report = String::from_utf8_lossy(&run.stdout);
    println!(
        "{report}\nschemathesis took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (_, log) = blocking(move || served.stop()).await;
    assert!(
        run.status.success(),
        "schemathesis found problems:\n{report}\n{}\nservice errors:\n{}",
        String::from_utf8_lossy(&run.stderr),
        log.lines()
            .filter(|l| l.contains("ERROR"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    database.drop_now().await;
    let _ = std::fs::remove_dir_all(scratch);
}
