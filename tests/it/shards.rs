//! Integration tests: a run split into shards (`run --shard I/N`) and merged back
//! (`chatload merge`) — three shards in-process against one reference server, and the real
//! binary's `merge` refusing pieces that do not make one run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::common::chatload;
use chatload::engine::load::schedule::ArrivalTimes;
use chatload::engine::seed::schedule_seed;
use chatload::engine::{self, RunOptions, RunOutcome, Shard};
use chatload::metrics::{Histogram, decode_histogram, new_histogram};
use chatload::plan::{self, Load, Plan};
use chatload::report::{self, Piece, RunInfo, RunResult, ShardInfo};
use chatload::server::{self, ServerConfig};
use tokio_util::sync::CancellationToken;

/// Two open-model phases (evenly spread and a Poisson ramp); every vuser joins one room, says
/// one stamped line and stays a while, so it receives the lines of vusers of every shard.
const PLAN: &str = r#"
config:
  target: "127.0.0.1:1"
  phases:
    - {name: meet, duration: 1s, arrivalCount: 6}
    - {name: ramp, duration: 2s, arrivalRate: 4, rampTo: 10, arrivals: poisson}
  handlers:
    - {on: "^MSG ", name: msg}
  ensure:
    thresholds:
      - latency.echo.p99: 10000
    maxErrorRate: 0
scenarios:
  - name: chatter
    flow:
      - log: "vu {{ vu.id }}"
      - connect
      - send: "LOGIN u{{ vu.id }}"
        expect: {match: "^OK", name: login}
      - send: "JOIN lobby"
        expect: {match: "^JOINED"}
      - think: 700ms
      - send: "SAY {{ stamp() }} hello"
      - think: 1200ms
      - send: "ECHO bye {{ vu.id }}"
        expect: {match: "^bye", name: echo}
      - disconnect
"#;

const SEED: u64 = 20_261_202;

fn load_plan(target: &str) -> Plan {
    let mut plan = plan::load_str(PLAN, Path::new("shards.yml"), plan::Format::Yaml)
        .unwrap_or_else(|p| panic!("plan loads: {p:?}"));
    plan.target = plan::Target::Address(target.to_owned());
    plan
}

/// Arrivals of the whole (unsplit) schedule, computed without running anything.
fn scheduled_arrivals(plan: &Plan) -> u64 {
    let Load::Phases(phases) = &plan.load else {
        panic!("phases")
    };
    phases
        .iter()
        .enumerate()
        .map(|(i, p)| {
            ArrivalTimes::new(&p.shape, schedule_seed(SEED, i))
                .into_iter()
                .flatten()
                .count() as u64
        })
        .sum()
}

fn piece(outcome: &RunOutcome, plan: &Plan, shard: Shard) -> Piece {
    let ended = outcome.started_at + outcome.duration;
    let mut info = RunInfo::new(&plan.name, &outcome.target, outcome.started_at, ended);
    info.seed = Some(outcome.seed);
    info.run_id = Some(outcome.run_id.clone());
    info.shard = Some(ShardInfo {
        index: shard.index(),
        count: shard.count(),
    });
    info.plan_hash = Some("test-plan".into());
    info.interval_ms = Some(outcome.interval.as_millis() as u64);
    let result = RunResult::new(info, outcome.metrics.clone(), plan.as_written.clone());
    Piece {
        path: PathBuf::from(format!("shard-{}/result.json", shard.index())),
        result,
    }
}

fn counter(counters: &std::collections::BTreeMap<String, u64>, name: &str) -> u64 {
    counters.get(name).copied().unwrap_or(0)
}

fn sum_of(pieces: &[Piece], metric: &str) -> Histogram<u64> {
    let mut total = new_histogram();
    for p in pieces {
        if let Some(text) = p.result.histograms.get(metric) {
            total.add(decode_histogram(text).unwrap()).unwrap();
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_against_one_server_merge_into_the_single_schedule() {
    let handle = server::spawn(ServerConfig::default())
        .await
        .expect("server");
    let target = handle.addr().to_string();
    let plan = Arc::new(load_plan(&target));
    let ids = Arc::new(Mutex::new(Vec::<u64>::new()));
    let run_shard = |index: u64| {
        let plan = Arc::clone(&plan);
        let ids = Arc::clone(&ids);
        let target = target.clone();
        async move {
            let shard = Shard::new(index, 3).unwrap();
            let options = RunOptions {
                seed: Some(SEED),
                shard,
                run_id: Some("it-three-shards".into()),
                shutdown: CancellationToken::new(),
                on_log: Some(Arc::new(move |line: &str| {
                    if let Some(id) = line
                        .rsplit("vu ")
                        .next()
                        .and_then(|n| n.trim().parse().ok())
                    {
                        ids.lock().unwrap().push(id);
                    }
                })),
                ..RunOptions::default()
            };
            let outcome = engine::run(plan, &target, options).await.expect("runs");
            (shard, outcome)
        }
    };
    let (a, b, c) = tokio::join!(run_shard(0), run_shard(1), run_shard(2));
    handle.shutdown().await;

    let pieces: Vec<Piece> = [&a, &b, &c]
        .iter()
        .map(|(shard, outcome)| piece(outcome, &plan, *shard))
        .collect();
    let merged = report::merge(&pieces, false).expect("the pieces make one run");
    let result = &merged.result;

    // Through the files (compact result.json + histogram sidecar) and back, the pieces merge
    // into the same result: every per-interval percentile as before.
    let dir = tempfile::tempdir().unwrap();
    let loaded: Vec<Piece> = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let path = dir.path().join(format!("shard-{i}.json"));
            let sidecar = report::write_result(&path, &p.result).unwrap();
            assert!(sidecar.is_some_and(|s| s.exists()));
            let back = report::read_result(&path).unwrap();
            assert_eq!(back, p.result);
            Piece { path, result: back }
        })
        .collect();
    let merged_from_files = report::merge(&loaded, false).unwrap();
    assert_eq!(merged_from_files.result, merged.result);

    // The merged arrivals are the single schedule's, exactly; every id once.
    let expected = scheduled_arrivals(&plan);
    assert!(expected > 10, "{expected} arrivals");
    assert_eq!(
        counter(&result.aggregate.counters, "vusers.created"),
        expected
    );
    let mut seen = ids.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(seen, (0..expected).collect::<Vec<_>>());
    // Each shard ran its own third: ids ≡ shard index (mod 3) only.
    for (shard, outcome) in [&a, &b, &c] {
        let created = counter(&outcome.metrics.aggregate.counters, "vusers.created");
        let own = (0..expected)
            .filter(|id| id % 3 == u64::from(shard.index()))
            .count() as u64;
        assert_eq!(created, own, "shard {shard}");
        assert_eq!(outcome.run_id, "it-three-shards");
    }
    assert_eq!(counter(&result.aggregate.counters, "errors.timeout"), 0);

    // Deliveries cross shards: every MSG line carries a stamp, and every stamp was counted,
    // including those sent by another shard's vusers (with a per-shard run token they would
    // be ignored and `delivery` would fall short of `handled.msg`).
    let handled = counter(&result.aggregate.counters, "handled.msg");
    let delivered = sum_of(&pieces, "delivery").len();
    assert!(handled > expected, "{handled} lines for {expected} vusers");
    assert_eq!(delivered, handled);
    for (shard, outcome) in [&a, &b, &c] {
        let own_lines = counter(&outcome.metrics.aggregate.counters, "handled.msg");
        let own_says = counter(&outcome.metrics.aggregate.counters, "vusers.created");
        assert!(own_lines > own_says, "shard {shard} heard only itself");
    }

    // Histograms: the merge is the sum of the pieces, and the merged intervals add up to it.
    for metric in ["latency.echo", "delivery", "connect"] {
        let sum = sum_of(&pieces, metric);
        let merged_h = decode_histogram(&result.histograms[metric]).unwrap();
        assert_eq!(merged_h.len(), sum.len(), "{metric}");
        for q in [0.5, 0.99] {
            assert_eq!(
                merged_h.value_at_quantile(q),
                sum.value_at_quantile(q),
                "{metric} q{q}"
            );
        }
        let summary = &result.aggregate.summaries[metric];
        assert_eq!(summary.count, sum.len());
        assert_eq!(summary.p99, sum.value_at_quantile(0.99) as f64 / 1000.0);
        let mut from_intervals = new_histogram();
        for interval in &result.intermediate {
            if let Some(text) = interval.histograms.get(metric) {
                from_intervals.add(decode_histogram(text).unwrap()).unwrap();
            }
        }
        assert_eq!(from_intervals.len(), sum.len(), "{metric} over intervals");
    }
    let phases: Vec<(&str, u64)> = result
        .phases
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                counter(&p.summary.counters, "vusers.created"),
            )
        })
        .collect();
    assert_eq!(phases[0], ("meet", 6));
    assert_eq!(phases[0].1 + phases[1].1, expected);
    assert_eq!(result.scenarios[0].counters["vusers.created"], expected);
    assert_eq!(result.run.merged_shards, vec![0, 1, 2]);
    assert!(!result.run.partial);

    // `ensure` judged on the merge.
    let outcomes = engine::thresholds::judge(
        &plan.ensure,
        SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(result.run.started_at_ms),
        &merged.intervals,
        &result.aggregate,
    );
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes.iter().all(|o| o.passed), "{outcomes:?}");

    // Partial and mismatched pieces.
    let err = report::merge(&pieces[..2], false).unwrap_err().to_string();
    assert!(err.contains("2/3 missing"), "{err}");
    let partial = report::merge(&pieces[..2], true).unwrap().result;
    assert!(partial.run.partial);
    assert_eq!(partial.run.merged_shards, vec![0, 1]);
    let mut other = pieces.clone();
    other[1].result.run.run_id = Some("another-run".into());
    other[2] = other[0].clone();
    let err = report::merge(&other, false).unwrap_err().to_string();
    assert!(err.contains("run id another-run"), "{err}");
    assert!(err.contains("shard 0/3 is given 2 times"), "{err}");
    assert!(err.contains("2/3 missing"), "{err}");
}

#[test]
fn the_binary_runs_shards_and_merges_them() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.yml");
    std::fs::write(
        &plan,
        "config:\n  target: embedded\n  phases: [{duration: 1s, arrivalCount: 5}]\n  ensure:\n    \
         maxErrorRate: 0\nscenarios:\n  - flow: [connect, {send: PING 1, expect: {match: ^PONG, \
         name: ping}}, disconnect]\n",
    )
    .unwrap();
    let p = |name: &str| dir.path().join(name).display().to_string();
    let plan_arg = plan.display().to_string();
    for i in 0..2 {
        let out = chatload([
            "run",
            &plan_arg,
            "--shard",
            &format!("{i}/2"),
            "--start-at",
            "+0s",
            "--out",
            &p(&format!("s{i}")),
            "-q",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let r0 = p("s0/result.json");
    let r1 = p("s1/result.json");
    let shard0: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&r0).unwrap()).unwrap();
    assert_eq!(shard0["format"], "chatload.result/v2");
    assert_eq!(
        shard0["run"]["shard"],
        serde_json::json!({"index": 0, "count": 2})
    );
    assert!(shard0["run"]["startSkewMs"].is_i64());
    assert_eq!(shard0["aggregate"]["counters"]["vusers.created"], 3);

    let out = chatload(["merge", &r0, &r1, "--out", &p("merged")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("merged 2 shard(s)"), "{stdout}");
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p("merged/result.json")).unwrap()).unwrap();
    assert_eq!(merged["aggregate"]["counters"]["vusers.created"], 5);
    assert_eq!(merged["thresholds"][0]["passed"], true);
    assert!(Path::new(&p("merged/report.html")).exists());
    assert!(Path::new(&p("merged/stats.csv")).exists());

    let out = chatload(["merge", &r0, &r0, "--out", &p("bad")]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("given 2 times") && stderr.contains("1/2 missing"),
        "{stderr}"
    );

    let out = chatload([
        "run", &plan_arg, "--shard", "0/2", "--preset", "stress", "-q",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be split"));
}

#[tokio::test]
async fn serve_reuse_port_lets_servers_share_one_port() {
    use std::io::{BufRead as _, BufReader, Write as _};
    // Hold a port with SO_REUSEPORT, bound but not listening: only the servers (started the
    // same way) can join it, and no other test's listener can be given that number.
    let holder = tokio::net::TcpSocket::new_v4().unwrap();
    holder.set_reuseport(true).unwrap();
    holder.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = holder.local_addr().unwrap().to_string();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chatload"))
            .args(["serve", "--reuse-port", "--listen", &addr])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("serve starts");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert!(line.contains(&addr), "{line}");
        servers.push(child);
    }
    for i in 0..4 {
        let mut conn = std::net::TcpStream::connect(&addr).expect("connects");
        writeln!(conn, "PING {i}").unwrap();
        let mut reply = String::new();
        BufReader::new(conn).read_line(&mut reply).unwrap();
        assert_eq!(reply.trim(), format!("PONG {i}"));
    }
    for mut server in servers {
        server.kill().unwrap();
        server.wait().unwrap();
    }
}

/// A fixed-count scenario, a `before` flow and hooks, split over three shards: the count is
/// split (the merged fixed-count vusers are the plan's count, the same run-wide ids as a single
/// run: the first arrivals), and every shard runs the `before` flow (its vusers need its
/// captures) and the hooks (told which shard they serve).
const COUNTED: &str = r#"
config:
  target: "127.0.0.1:1"
  phases: [{name: all, duration: 300ms, arrivalCount: 30}]
  hooks:
    before: [{run: ["sh", "-c", "echo $CHATLOAD_SHARD_INDEX/$CHATLOAD_SHARD_COUNT $CHATLOAD_RUN_ID"]}]
before:
  flow:
    - send: "PING setup"
      expect: {match: "^PONG (?P<word>\\S+)$", capture: {token: word}}
scenarios:
  - name: admin
    count: 10
    flow:
      - log: "admin {{ token }} {{ vu.id }}"
  - name: chatter
    flow:
      - log: "chatter {{ token }} {{ vu.id }}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_count_splits_over_shards_and_setup_runs_in_each() {
    let handle = server::spawn(ServerConfig::default())
        .await
        .expect("server");
    let target = handle.addr().to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan::load_str(COUNTED, &dir.path().join("counted.yml"), plan::Format::Yaml)
        .unwrap_or_else(|p| panic!("plan loads: {p:?}"));
    plan.target = plan::Target::Address(target.clone());
    let plan = Arc::new(plan);
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let run_shard = |index: u64| {
        let (plan, lines, target) = (Arc::clone(&plan), Arc::clone(&lines), target.clone());
        async move {
            let options = RunOptions {
                seed: Some(SEED),
                shard: Shard::new(index, 3).unwrap(),
                run_id: Some("it-counted".into()),
                on_log: Some(Arc::new(move |line: &str| {
                    lines.lock().unwrap().push(line.to_owned());
                })),
                ..RunOptions::default()
            };
            engine::run(plan, &target, options).await.expect("runs")
        }
    };
    let (a, b, c) = tokio::join!(run_shard(0), run_shard(1), run_shard(2));
    handle.shutdown().await;

    // Each shard holds its share of the count (4 + 3 + 3), and they are the first 10 arrivals.
    let created = |outcome: &RunOutcome, scenario: &str| {
        outcome
            .metrics
            .scenarios
            .iter()
            .find(|s| s.name == scenario)
            .map_or(0, |s| counter(&s.counters, "vusers.created"))
    };
    let shares: Vec<u64> = [&a, &b, &c].iter().map(|o| created(o, "admin")).collect();
    assert_eq!(shares, vec![4, 3, 3]);
    let pieces: Vec<Piece> = [&a, &b, &c]
        .iter()
        .zip(0..)
        .map(|(outcome, i)| piece(outcome, &plan, Shard::new(i, 3).unwrap()))
        .collect();
    let merged = report::merge(&pieces, false).expect("one run").result;
    let merged_created = |scenario: &str| {
        merged
            .scenarios
            .iter()
            .find(|s| s.name == scenario)
            .map_or(0, |s| counter(&s.counters, "vusers.created"))
    };
    assert_eq!(merged_created("admin"), 10);
    assert_eq!(merged_created("chatter"), 20);
    assert_eq!(
        counter(&merged.aggregate.counters, "vusers.created"),
        30 + 3
    );

    // Every vuser once, by run-wide id; the fixed-count ones are ids 0..10 as in a single run;
    // every vuser of every shard saw its shard's `before` capture.
    let lines = lines.lock().unwrap().clone();
    let mut ids: Vec<(String, u64)> = lines
        .iter()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(words.get(3), Some(&"setup"), "{line}");
            (words[2].to_owned(), words[4].parse().unwrap())
        })
        .collect();
    ids.sort_by_key(|(_, id)| *id);
    let all: Vec<u64> = ids.iter().map(|(_, id)| *id).collect();
    assert_eq!(all, (0..30).collect::<Vec<_>>());
    let admins: Vec<u64> = ids
        .iter()
        .filter(|(s, _)| s == "admin")
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(admins, (0..10).collect::<Vec<_>>());

    // The `before` flow ran once per shard; the hook ran in each, told its shard and run id.
    assert_eq!(merged_created("before"), 3);
    for (i, outcome) in [&a, &b, &c].iter().enumerate() {
        let said: Vec<&str> = outcome.hooks.iter().map(|h| h.stdout.as_str()).collect();
        assert_eq!(said, vec![format!("{i}/3 it-counted\n")]);
    }
}

/// `--start-at` holds the phases, not the setup: a shard whose `before` flow takes 2 s still
/// starts its phases at the agreed instant (it used to wait for the instant first and then set
/// up, starting its phases late by its own setup time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phases_start_at_the_agreed_instant_whatever_the_setup_took() {
    let plan = plan::load_str(
        "config:\n  target: \"127.0.0.1:1\"\n  phases: [{duration: 1s, arrivalCount: 1}]\n\
         before:\n  flow: [{think: 2s}]\nscenarios:\n  - flow: [{think: 10ms}]\n",
        Path::new("start-at.yml"),
        plan::Format::Yaml,
    )
    .unwrap_or_else(|problems| panic!("the plan should load: {problems}"));
    let at = SystemTime::now() + std::time::Duration::from_millis(2500);
    let options = RunOptions {
        phases_start_at: Some(at),
        ..RunOptions::default()
    };
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        engine::run(Arc::new(plan), "127.0.0.1:1", options),
    )
    .await
    .expect("the run ends in time")
    .expect("the run starts");
    let late = out.phases_started_at.duration_since(at);
    // Not before the instant; and not after it by anything like the setup's 2 s.
    let late = late.unwrap_or_else(|early| panic!("started {:?} early", early.duration()));
    assert!(
        late < std::time::Duration::from_millis(1500),
        "{late:?} late"
    );
    // The `before` flow's vuser and the phase's one.
    assert_eq!(
        out.metrics.aggregate.counters.get("vusers.completed"),
        Some(&2)
    );
    assert_eq!(out.metrics.phases.len(), 1);
}
