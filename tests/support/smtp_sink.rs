//! Test support: a real SMTP server to send notification emails to — PyPI's `aiosmtpd` (pinned in
//! `smtp-requirements.txt`), installed into a virtual environment under `target/smtp-venv` the
//! first time it is needed, the way `scim_server.rs` installs scim2-server. Each sink writes every
//! message it accepts to a file of its own directory (`N.eml`, the envelope's recipients first),
//! before it answers `250`, so a message is on disk by the time the sender hears it was taken.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

const REQUIREMENTS: &str = include_str!("smtp-requirements.txt");

/// Saves each message, then says `250`; prints `ready` once listening; stops when stdin closes.
const SINK: &str = r#"
import os, sys
from aiosmtpd.controller import Controller

class Save:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        temporary = os.path.join(self.directory, ".%d.tmp" % self.count)
        with open(temporary, "wb") as out:
            out.write(b"X-Envelope-To: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n")
            out.write(envelope.content)
        os.rename(temporary, os.path.join(self.directory, "%d.eml" % self.count))
        return "250 Message accepted for delivery"

controller = Controller(Save(sys.argv[1]), hostname="127.0.0.1", port=int(sys.argv[2]))
controller.start()
print("ready", flush=True)
try:
    sys.stdin.read()
finally:
    controller.stop()
"#;

fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("smtp-venv");
        install(&dir).unwrap_or_else(|err| panic!("installing aiosmtpd: {err}"));
        dir
    })
}

fn install(dir: &Path) -> Result<(), String> {
    let stamp = dir.join("dirsync-requirements.txt");
    let installed = || std::fs::read_to_string(&stamp).is_ok_and(|t| t == REQUIREMENTS);
    if installed() {
        return Ok(());
    }
    let lock = dir.with_extension("lock");
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        match std::fs::create_dir(&lock) {
            Ok(()) => break,
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                let stale = std::fs::metadata(&lock)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_some_and(|age| age > Duration::from_secs(600));
                if stale {
                    let _ = std::fs::remove_dir(&lock);
                } else if Instant::now() > deadline {
                    return Err(format!("{} is still locked", lock.display()));
                } else {
                    // Another test binary is installing: wait for its lock to go.
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
            Err(err) => return Err(err.to_string()),
        }
    }
    let result = (|| {
        if installed() {
            return Ok(());
        }
        let _ = std::fs::remove_dir_all(dir);
        run(Command::new("python3").args(["-m", "venv"]).arg(dir))?;
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
        std::fs::write(&stamp, REQUIREMENTS).map_err(|e| e.to_string())
    })();
    let _ = std::fs::remove_dir(&lock);
    result
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("{command:?} did not start: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A running aiosmtpd on 127.0.0.1, saving what it receives in its own directory.
pub struct SmtpSink {
    child: Child,
    stdin: Option<ChildStdin>,
    pub port: u16,
    pub dir: PathBuf,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let dir = std::env::temp_dir().join(format!("dirsync-smtp-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("the sink's directory");
        let python = venv().join("bin").join("python");
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port");
            let mut child = Command::new(&python)
                .args(["-c", SINK])
                .arg(&dir)
                .arg(port.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("aiosmtpd starts");
            let stdin = child.stdin.take();
            let mut line = String::new();
            let stdout = child.stdout.take().expect("stdout");
            let _ = BufReader::new(stdout).read_line(&mut line);
            if line.trim() == "ready" {
                return SmtpSink {
                    child,
                    stdin,
                    port,
                    dir,
                };
            }
            drop(stdin);
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("aiosmtpd did not come up");
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(&self.dir)
            .expect("the sink's directory")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| {
                let n = p.file_stem()?.to_str()?.parse().ok()?;
                (p.extension()? == "eml").then_some((n, p))
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, p)| std::fs::read_to_string(p).expect("a message"))
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
