//! `config.hooks`: the local commands a plan runs before the load (seed a database) and after
//! it (restore it). Each runs from the plan's directory without a shell, with its output kept
//! (bounded) for the result, and is killed at its timeout.
//!
//! In a split run every shard runs them on its own host (shards share nothing, so a shard
//! cannot wait for another's setup); each command learns which shard it serves from
//! `CHATLOAD_SHARD_INDEX`, `CHATLOAD_SHARD_COUNT` and `CHATLOAD_RUN_ID` ([`HookEnv`]), so
//! work to do once per run can be left to shard 0.
//!
//! Whether to run them (`run --no-hooks`) and how to show them is the CLI's business.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

use crate::plan::Hook;

/// Output kept per command and stream: the last this many bytes.
const OUTPUT_BYTES: usize = 16 * 1024;

/// What a hook is told about the run, as environment variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookEnv {
    /// `CHATLOAD_SHARD_INDEX` and `CHATLOAD_SHARD_COUNT` (0 and 1 in an unsplit run).
    pub shard_index: u32,
    pub shard_count: u32,
    /// `CHATLOAD_RUN_ID`, when the run id is known before the load (`run --run-id`, or
    /// derived in a split run); unset otherwise.
    pub run_id: Option<String>,
}

impl HookEnv {
    fn vars(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            ("CHATLOAD_SHARD_INDEX", self.shard_index.to_string()),
            ("CHATLOAD_SHARD_COUNT", self.shard_count.max(1).to_string()),
        ];
        if let Some(id) = &self.run_id {
            vars.push(("CHATLOAD_RUN_ID", id.clone()));
        }
        vars
    }
}

/// Which end of the run a hook belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookStage {
    Before,
    After,
}

impl HookStage {
    pub fn as_str(self) -> &'static str {
        match self {
            HookStage::Before => "before",
            HookStage::After => "after",
        }
    }
}

/// How one command went.
#[derive(Debug, Clone, PartialEq)]
pub struct HookOutcome {
    pub stage: HookStage,
    pub command: Vec<String>,
    /// `None` when it could not start, was killed at its timeout or by a signal.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// Why it could not start, if it could not.
    pub error: Option<String>,
    /// The last [`OUTPUT_BYTES`] of standard output and of standard error, lossily UTF-8.
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
}

impl HookOutcome {
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// Runs `hooks` in order from `dir`, with `env` set. `Before` stops at the first that fails;
/// `After` runs them all (each is a cleanup of its own).
pub async fn run_hooks(
    hooks: &[Hook],
    dir: &Path,
    stage: HookStage,
    env: &HookEnv,
) -> Vec<HookOutcome> {
    let mut out = Vec::with_capacity(hooks.len());
    for hook in hooks {
        let outcome = run_one(hook, dir, stage, env).await;
        let failed = !outcome.succeeded();
        out.push(outcome);
        if failed && stage == HookStage::Before {
            break;
        }
    }
    out
}

async fn run_one(hook: &Hook, dir: &Path, stage: HookStage, env: &HookEnv) -> HookOutcome {
    let started = Instant::now();
    let mut outcome = HookOutcome {
        stage,
        command: hook.run.clone(),
        exit_code: None,
        timed_out: false,
        error: None,
        stdout: String::new(),
        stderr: String::new(),
        duration: Duration::ZERO,
    };
    let Some((program, args)) = hook.run.split_first() else {
        outcome.error = Some("no program to run".to_owned());
        return outcome;
    };
    let spawned = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(env.vars())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) => {
            outcome.error = Some(format!("cannot run `{program}`: {err}"));
            return outcome;
        }
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let collect = async {
        let (out, err, status) = tokio::join!(tail(stdout), tail(stderr), child.wait());
        (out, err, status)
    };
    match tokio::time::timeout(hook.timeout, collect).await {
        Ok((out, err, status)) => {
            outcome.stdout = out;
            outcome.stderr = err;
            match status {
                Ok(status) => outcome.exit_code = status.code(),
                Err(err) => outcome.error = Some(format!("waiting for `{program}`: {err}")),
            }
        }
        Err(_) => {
            outcome.timed_out = true;
            outcome.error = Some(format!("killed after its timeout of {:?}", hook.timeout));
            // `kill_on_drop` ends it when `child` goes; kill now so nothing outlives the run.
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
    outcome.duration = started.elapsed();
    outcome
}

/// The last [`OUTPUT_BYTES`] a stream gives until it ends.
async fn tail(stream: Option<impl AsyncRead + Unpin>) -> String {
    let Some(mut stream) = stream else {
        return String::new();
    };
    let mut kept: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(chunk.get(..n).unwrap_or_default());
                if kept.len() > OUTPUT_BYTES {
                    kept.drain(..kept.len() - OUTPUT_BYTES);
                }
            }
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(run: &[&str], timeout_ms: u64) -> Hook {
        Hook {
            run: run.iter().map(|s| s.to_string()).collect(),
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    #[tokio::test]
    async fn a_failing_before_hook_stops_the_rest_and_keeps_its_output() {
        let hooks = [
            hook(&["sh", "-c", "echo seeded; echo oops >&2; exit 3"], 10_000),
            hook(&["sh", "-c", "echo never"], 10_000),
        ];
        let env = HookEnv::default();
        let out = run_hooks(&hooks, Path::new("."), HookStage::Before, &env).await;
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].exit_code, Some(3));
        assert_eq!(out[0].stdout, "seeded\n");
        assert_eq!(out[0].stderr, "oops\n");
        let after = run_hooks(&hooks, Path::new("."), HookStage::After, &env).await;
        assert_eq!(after.len(), 2, "after hooks all run");
    }

    #[tokio::test]
    async fn a_hook_learns_its_shard_and_run_id() {
        let env = HookEnv {
            shard_index: 2,
            shard_count: 3,
            run_id: Some("r-1".into()),
        };
        let echo = [hook(
            &[
                "sh",
                "-c",
                "echo $CHATLOAD_SHARD_INDEX/$CHATLOAD_SHARD_COUNT ${CHATLOAD_RUN_ID-none}",
            ],
            10_000,
        )];
        let out = run_hooks(&echo, Path::new("."), HookStage::Before, &env).await;
        assert_eq!(out[0].stdout, "2/3 r-1\n");
        let out = run_hooks(
            &echo,
            Path::new("."),
            HookStage::Before,
            &HookEnv::default(),
        )
        .await;
        assert_eq!(out[0].stdout, "0/1 none\n");
    }

    #[tokio::test]
    async fn a_missing_program_and_a_timeout_are_failures() {
        let out = run_hooks(
            &[hook(&["/nonexistent/chatload-hook"], 10_000)],
            Path::new("."),
            HookStage::After,
            &HookEnv::default(),
        )
        .await;
        assert!(
            out[0]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("cannot run"))
        );
        let out = run_hooks(
            &[hook(&["sleep", "30"], 100)],
            Path::new("."),
            HookStage::After,
            &HookEnv::default(),
        )
        .await;
        assert!(out[0].timed_out && !out[0].succeeded());
    }
}
