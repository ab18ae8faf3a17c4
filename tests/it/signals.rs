//! The real binary stopped the way `timeout`, docker, systemd and a closed terminal stop
//! processes (SIGTERM, SIGHUP): a graceful stop with the results so far written, exit 128 +
//! the signal's number; and a run whose folder cannot be written at the end keeps its
//! results in a fallback folder and does not exit 0.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// An hour of load: only a signal ends it. Each vuser waits a minute for a reply that never
/// comes, which outlasts the 2 s stop, so the vusers are cancelled.
const LONG_PLAN: &str = r#"
config:
  target: embedded
  phases:
    - {duration: 1h, vusers: 2}
  defaults: {gracefulStop: 1m, timeout: 1m}
scenarios:
  - name: ping
    flow:
      - connect
      - send: "PING 1"
        expect: {match: "^PONG", name: ping}
      - send: "PING 2"
        expect: {match: "^NEVER", name: never}
"#;

/// Starts `chatload run` on the long plan and returns once its signal handlers are installed
/// (the "running ... against" line is printed after that). Stderr keeps being drained.
fn start(dir: &Path, out: &Path, tmpdir: &Path) -> (Child, std::thread::JoinHandle<String>) {
    let plan = dir.join("long.yml");
    std::fs::write(&plan, LONG_PLAN).expect("plan written");
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatload"))
        .arg("run")
        .arg(&plan)
        .args(["--format", "json", "--out"])
        .arg(out)
        .env("TMPDIR", tmpdir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).expect("stderr readable") == 0 {
            let _ = child.kill();
            panic!("chatload ended before running: {seen}");
        }
        seen.push_str(&line);
        if line.starts_with("running ") {
            break;
        }
    }
    let rest = std::thread::spawn(move || {
        let mut text = seen;
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    (child, rest)
}

fn signal(child: &Child, name: &str) {
    let sent = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(sent.success());
}

/// Generous: the stop takes at most ~2 s; a loaded machine may take much longer.
fn wait(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chatload did not stop after the signal");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stdout_of(child: &mut Child) -> String {
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut out, &mut text);
    }
    text
}

#[test]
fn sigterm_and_sighup_stop_gracefully_with_results() {
    for (name, code) in [("TERM", 143), ("HUP", 129)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let (mut child, stderr) = start(dir.path(), &out, dir.path());
        signal(&child, name);
        let status = wait(&mut child);
        let stdout = stdout_of(&mut child);
        let stderr = stderr.join().expect("stderr read");
        assert_eq!(status.code(), Some(code), "SIG{name}\n{stdout}\n{stderr}");
        assert!(
            stderr.contains(&format!("SIG{name}: stopping vusers")),
            "{stderr}"
        );
        assert!(stdout.contains(&format!("exit {code}")), "{stdout}");
        let text = std::fs::read_to_string(out.join("result.json")).expect("result.json");
        let result: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(result["run"]["interrupted"], true);
        assert_eq!(result["run"]["exitCode"], code);
        assert_eq!(result["aggregate"]["counters"]["vusers.created"], 2);
        let warnings = result["run"]["warnings"].to_string();
        assert!(
            warnings.contains(&format!("stopped by SIG{name}")),
            "{warnings}"
        );
        // The stop cut the one-minute graceful stop short; it did not run out.
        assert!(
            warnings.contains("were cancelled: the run was stopped"),
            "{warnings}"
        );
        assert!(!warnings.contains("ran out"), "{warnings}");
    }
}

#[test]
fn results_that_cannot_be_written_go_to_the_temp_folder_and_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tmpdir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let (mut child, stderr) = start(dir.path(), &out, tmpdir.path());
    // The run folder was checked at the start; now it is gone and a file holds its name.
    std::fs::remove_dir_all(&out).expect("folder removed");
    std::fs::write(&out, "not a folder").expect("file written");
    signal(&child, "TERM");
    let status = wait(&mut child);
    let stdout = stdout_of(&mut child);
    let stderr = stderr.join().expect("stderr read");

    assert_eq!(status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stdout.contains("exit 2"), "{stdout}");
    assert!(
        !stdout.contains("exit 0") && !stdout.contains("exit 143"),
        "{stdout}"
    );
    assert!(stderr.contains("cannot write the reports into"), "{stderr}");
    let folders: Vec<_> = std::fs::read_dir(tmpdir.path())
        .expect("temp folder")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(folders.len(), 1, "{folders:?}");
    assert!(
        stderr.contains(&folders[0].display().to_string()),
        "{stderr}"
    );
    let text = std::fs::read_to_string(folders[0].join("result.json")).expect("result.json");
    let result: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(result["run"]["exitCode"], 2);
    assert_eq!(result["aggregate"]["counters"]["vusers.created"], 2);
    assert_eq!(std::fs::read_to_string(&out).expect("file"), "not a folder");
}
