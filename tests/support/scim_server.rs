//! Test support: the third-party SCIM tools from PyPI, `scim2-server` (a SCIM 2.0 server) and
//! `scim-sanity` (an offline payload validator), installed into a virtual environment under
//! `target/scim-venv` the first time they are needed, and a `scim2-server` process on a free
//! port that stops when the last test using it is done (or when the test binary dies).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};

const REQUIREMENTS: &str = include_str!("scim-requirements.txt");
pub const TOKEN: &str = "dirsync-test-token";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The virtual environment, installed (once per machine, shared by test binaries) on first use.
pub fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let dir = std::env::var_os("DIRSYNC_SCIM_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| manifest_dir().join("target").join("scim-venv"));
        install(&dir).unwrap_or_else(|err| panic!("installing the SCIM test tools: {err}"));
        dir
    })
}

fn stamp(dir: &Path) -> PathBuf {
    dir.join("dirsync-requirements.txt")
}

fn installed(dir: &Path) -> bool {
    std::fs::read_to_string(stamp(dir)).is_ok_and(|text| text == REQUIREMENTS)
}

/// Creates the environment and installs the pinned requirements, unless a previous run did.
/// Concurrent test binaries take turns through a lock directory.
fn install(dir: &Path) -> Result<(), String> {
    if installed(dir) {
        return Ok(());
    }
    let _lock = InstallLock::take(&dir.with_extension("lock"))?;
    if installed(dir) {
        return Ok(());
    }
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .ok_or("no python3 on PATH (install Python 3.9 or later with its venv module)")?;
    let _ = std::fs::remove_dir_all(dir);
    run(Command::new(python).args(["-m", "venv"]).arg(dir))?;
    let requirements = dir.join("requirements.txt");
    std::fs::write(&requirements, REQUIREMENTS).map_err(|e| e.to_string())?;
    run(Command::new(dir.join("bin").join("python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements))?;
    std::fs::write(stamp(dir), REQUIREMENTS).map_err(|e| e.to_string())
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("{command:?} did not start: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A directory whose creation is atomic: whoever creates it installs; the others wait for it to
/// go. A lock left behind by a killed run is taken over once it is old.
struct InstallLock(PathBuf);

impl InstallLock {
    fn take(path: &Path) -> Result<Self, String> {
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            match std::fs::create_dir(path) {
                Ok(()) => return Ok(Self(path.to_owned())),
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok());
                    if age.is_some_and(|age| age > Duration::from_secs(600)) {
                        let _ = std::fs::remove_dir(path);
                    } else if Instant::now() > deadline {
                        return Err(format!("{} is still locked", path.display()));
                    } else {
                        std::thread::sleep(Duration::from_millis(250));
                    }
                }
                Err(err) => return Err(format!("creating {}: {err}", path.display())),
            }
        }
    }
}

impl Drop for InstallLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Runs `scim-sanity` on `body` (`--patch` for PATCH bodies); the verdict and its output.
pub fn scim_sanity(body: &serde_json::Value, patch: bool) -> (bool, String) {
    let mut command = Command::new(venv().join("bin").join("scim-sanity"));
    if patch {
        command.arg("--patch");
    }
    let mut child = command
        .arg("--stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("scim-sanity starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Terminates the server when its stdin closes: when the harness drops it, and also when the
/// test binary dies without running destructors.
const WATCHDOG: &str = "import subprocess, sys\n\
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n\
try:\n    sys.stdin.read()\nfinally:\n    p.terminate()\n    p.wait(10)\n";

/// A running `scim2-server --port N --bearer-token T --dynamic-tenants`: every test uses its own
/// tenant (`/{tenant}/v2`), so tests share one process without seeing each other's resources.
pub struct ScimServer {
    child: Mutex<Child>,
    stdin: Mutex<Option<ChildStdin>>,
    pub port: u16,
    _config: Option<tempfile_path::TempPath>,
}

impl ScimServer {
    /// The binary's shared server, started if no test holds it now.
    pub fn shared() -> Arc<ScimServer> {
        static SHARED: Mutex<Weak<ScimServer>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(server) = shared.upgrade() {
            return server;
        }
        let server = Arc::new(Self::start(None));
        *shared = Arc::downgrade(&server);
        server
    }

    /// A server of its own announcing `service_provider_config` (to test limits and a server
    /// without PATCH).
    pub fn with_config(service_provider_config: &serde_json::Value) -> ScimServer {
        Self::start(Some(service_provider_config))
    }

    fn start(config: Option<&serde_json::Value>) -> ScimServer {
        let venv = venv();
        let config = config.map(|c| tempfile_path::TempPath::write(&c.to_string()));
        for _ in 0..5 {
            let port = free_port();
            let mut command = Command::new(venv.join("bin").join("python"));
            command
                .args(["-c", WATCHDOG])
                .arg(venv.join("bin").join("scim2-server"))
                .args(["--hostname", "127.0.0.1", "--port", &port.to_string()])
                .args(["--bearer-token", TOKEN, "--dynamic-tenants"]);
            if let Some(config) = &config {
                command.arg("--service-provider-config").arg(config.path());
            }
            let mut child = command
                .stdin(Stdio::piped())
                .spawn()
                .expect("scim2-server starts");
            let stdin = child.stdin.take();
            if wait_until_ready(&mut child, port) {
                return ScimServer {
                    child: Mutex::new(child),
                    stdin: Mutex::new(stdin),
                    port,
                    _config: config,
                };
            }
            drop(stdin);
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("scim2-server did not come up");
    }

    /// The SCIM base URL of a tenant of this server.
    pub fn base_url(&self, tenant: &str) -> String {
        format!("http://127.0.0.1:{}/{tenant}/v2", self.port)
    }
}

impl Drop for ScimServer {
    fn drop(&mut self) {
        // Closing stdin makes the watchdog terminate the server and exit.
        self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Polls `/ServiceProviderConfig` until it answers 200, or the process exits, or 30 s pass.
fn wait_until_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if service_provider_config_answers(port) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn service_provider_config_answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!(
        "GET /ready/v2/ServiceProviderConfig HTTP/1.0\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {TOKEN}\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}

/// A file under the system temp directory, removed on drop.
mod tempfile_path {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};

    pub struct TempPath(PathBuf);

    impl TempPath {
        pub fn write(text: &str) -> Self {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "dirsync-scim-{}-{}.json",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&path, text).expect("temp file written");
            Self(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}
