//! Integration tests: plan loading and validation, `chatload check`, `chatload schema plan`.

use std::path::{Path, PathBuf};
use std::process::Command;

use chatload::plan::{self, Format, Load, PhaseShape, Problem, SendSpec, Step, Target, Text};
use proptest::prelude::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.contains(&e))
        })
        .collect();
    out.sort();
    out
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("{p}\n"))
        .collect::<String>()
}

#[test]
fn every_shipped_plan_is_valid_and_declares_the_schema() {
    let plans = files(&root().join("plans"), &["yml", "yaml", "toml"]);
    assert!(
        plans.len() >= 8,
        "expected the feature plans, found {plans:?}"
    );
    for path in plans {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schemas/plan.schema.json"),
            "{} must start with the schema comment",
            path.display()
        );
        if let Err(p) = plan::load(&path) {
            panic!("{} is invalid:\n{}", path.display(), render(&p.problems));
        }
    }
}

#[test]
fn basic_yaml_and_toml_load_to_the_same_plan() {
    let mut yaml = plan::load(&root().join("plans/basic.yml")).unwrap();
    let mut toml = plan::load(&root().join("plans/basic.toml")).unwrap();
    toml.source = yaml.source.clone();
    // The file texts differ, of course; each keeps its own syntax.
    let yaml_text = yaml.source_text.take().expect("the YAML text");
    let toml_text = toml.source_text.take().expect("the TOML text");
    assert_eq!(
        (yaml_text.format, toml_text.format),
        (plan::Format::Yaml, plan::Format::Toml)
    );
    assert!(toml_text.text.contains("[config]"), "{}", toml_text.text);
    assert_eq!(yaml, toml);
}

#[test]
fn basic_plan_resolves_to_what_the_engine_needs() {
    let plan = plan::load(&root().join("plans/basic.yml")).unwrap();
    assert_eq!(plan.name, "basic");
    assert!(matches!(plan.target, Target::Embedded(_)));
    let Load::Phases(phases) = &plan.load else {
        panic!("basic uses phases")
    };
    let total: f64 = phases
        .iter()
        .map(|p| match &p.shape {
            PhaseShape::Arrivals { duration, .. }
            | PhaseShape::ArrivalCount { duration, .. }
            | PhaseShape::Concurrency { duration, .. }
            | PhaseShape::Pause(duration) => duration.as_secs_f64(),
        })
        .sum();
    assert!(total <= 30.0, "basic must stay short, phases last {total}s");
    assert_eq!(plan.scenarios.len(), 2);
    assert_eq!(
        plan.scenarios.iter().map(|s| s.weight).collect::<Vec<_>>(),
        vec![3, 1]
    );
    // Templates are compiled under their plan path; literal text stays literal.
    let Step::Send {
        message: SendSpec::Text(Text::Template(id)),
        expect: Some(expect),
    } = &plan.scenarios[0].flow[1]
    else {
        panic!("second step of chatter is a templated send with an expect")
    };
    assert_eq!(id.0, "scenarios[0].flow[1].send");
    assert_eq!(expect.metric, "login");
    let mut env = plan.templates.env.clone();
    env.add_function("stamp", || "STAMP".to_owned());
    let rendered = env
        .get_template(&id.0)
        .unwrap()
        .render(minijinja::context! { vu => minijinja::context! { id => 7 } })
        .unwrap();
    assert_eq!(rendered, "LOGIN user7");
    assert_eq!(plan.ensure.conditions.len(), 2);
}

/// Each fixture starts with `# expect: L:C fragment ;; L:C fragment ...`.
fn expectations(text: &str) -> Vec<(usize, usize, String)> {
    let header = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# expect: "))
        .expect("fixture starts with `# expect: `");
    header
        .split(" ;; ")
        .map(|e| {
            let (pos, fragment) = e.split_once(' ').unwrap();
            let (line, col) = pos.split_once(':').unwrap();
            (
                line.parse().unwrap(),
                col.parse().unwrap(),
                fragment.to_owned(),
            )
        })
        .collect()
}

#[test]
fn invalid_fixtures_report_the_expected_problems_at_the_expected_places() {
    let dir = root().join("tests/fixtures/invalid");
    let fixtures = files(&dir, &["yml", "toml"]);
    assert!(fixtures.len() >= 40, "only {} fixtures", fixtures.len());
    assert!(fixtures.iter().any(|p| p.extension().unwrap() == "toml"));
    for path in fixtures {
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = expectations(&text);
        let problems = match plan::load(&path) {
            Ok(_) => panic!("{} was accepted", path.display()),
            Err(p) => p.problems,
        };
        for (line, col, fragment) in &expected {
            assert!(
                problems
                    .iter()
                    .any(|p| p.line == *line && p.column == *col && p.message.contains(fragment)),
                "{}: expected `{fragment}` at {line}:{col}, got:\n{}",
                path.display(),
                render(&problems)
            );
        }
        assert_eq!(
            problems.len(),
            expected.len(),
            "{}: unexpected extra problems:\n{}",
            path.display(),
            render(&problems)
        );
        for p in &problems {
            assert_eq!(p.file, path);
            assert!(
                p.source_line.is_some(),
                "{}: no source line for {p}",
                path.display()
            );
        }
    }
}

#[test]
fn problems_carry_plan_paths_and_suggestions() {
    let path = root().join("tests/fixtures/invalid/unknown-key-suggestion.yml");
    let problems = plan::load(&path).unwrap_err().problems;
    assert_eq!(problems[0].path, "config.phases[0].arivalRate");
    assert!(problems[0].message.contains("did you mean `arrivalRate`?"));
    let path = root().join("tests/fixtures/invalid/enum-variant-unknown-key.yml");
    let problems = plan::load(&path).unwrap_err().problems;
    assert_eq!(
        problems[0].path,
        "config.protocol.framing.lengthPrefixed.endianness"
    );
    let path = root().join("tests/fixtures/invalid/bad-regex.yml");
    let problems = plan::load(&path).unwrap_err().problems;
    assert_eq!(problems[0].path, "scenarios[0].flow[2].expect.match");
}

#[test]
fn load_options_apply_environment_variables_and_target() {
    let text = "config:
  target: embedded
  environments:
    staging: {target: \"10.0.0.5:9200\", defaults: {timeout: 2s}}
  phases: [{duration: 1s, arrivalRate: 1}]
  variables: {room: lobby}
scenarios:
  - flow: [connect, {send: \"JOIN {{ room }}\"}]
";
    let path = Path::new("env.yml");
    let options = plan::LoadOptions {
        environment: Some("staging".into()),
        variables: vec![("room".into(), "games".into())],
        target: None,
    };
    let p = plan::load_str_with(text, path, Format::Yaml, &options).unwrap();
    assert_eq!(p.target, Target::Address("10.0.0.5:9200".into()));
    assert_eq!(p.defaults.timeout, std::time::Duration::from_secs(2));
    assert_eq!(p.variables[0].values, vec![serde_json::json!("games")]);
    // `-v` values keep their YAML types.
    let options = plan::LoadOptions {
        variables: vec![
            ("room".into(), "[a, b]".into()),
            ("n".into(), "5".into()),
            ("on".into(), "true".into()),
            ("text".into(), "a: b: c".into()),
        ],
        ..Default::default()
    };
    let p = plan::load_str_with(text, path, Format::Yaml, &options).unwrap();
    let value = |name: &str| {
        p.variables
            .iter()
            .find(|v| v.name == name)
            .map(|v| v.values.clone())
    };
    assert_eq!(
        value("room"),
        Some(vec![serde_json::json!("a"), serde_json::json!("b")])
    );
    assert_eq!(value("n"), Some(vec![serde_json::json!(5)]));
    assert_eq!(value("on"), Some(vec![serde_json::json!(true)]));
    assert_eq!(value("text"), Some(vec![serde_json::json!("a: b: c")]));
    let options = plan::LoadOptions {
        target: Some("127.0.0.1:7000".into()),
        ..Default::default()
    };
    let p = plan::load_str_with(text, path, Format::Yaml, &options).unwrap();
    assert_eq!(p.target, Target::Address("127.0.0.1:7000".into()));
    let options = plan::LoadOptions {
        environment: Some("stagin".into()),
        ..Default::default()
    };
    let err = plan::load_str_with(text, path, Format::Yaml, &options).unwrap_err();
    assert!(err.problems[0].message.contains("did you mean `staging`?"));
    assert_eq!(
        plan::LoadOptions::parse_variable("room=a=b"),
        Ok(("room".to_owned(), "a=b".to_owned()))
    );
    assert!(plan::LoadOptions::parse_variable("=x").is_err());
}

fn generated_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(chatload::plan::RawPlan)).unwrap()
}

#[test]
fn committed_schema_is_up_to_date() {
    let committed = std::fs::read_to_string(root().join("schemas/plan.schema.json")).unwrap();
    let committed: serde_json::Value = serde_json::from_str(&committed).unwrap();
    assert!(
        committed == generated_schema(),
        "schemas/plan.schema.json is stale: run `cargo run -- schema plan > schemas/plan.schema.json`"
    );
}

#[test]
fn a_plan_using_every_key_is_valid() {
    let path = root().join("tests/fixtures/valid/everything.yml");
    let plan = match plan::load(&path) {
        Ok(plan) => plan,
        Err(p) => panic!("{}", render(&p.problems)),
    };
    let Load::Phases(phases) = &plan.load else {
        panic!("phases")
    };
    // 6 written phases, then presets: warmup 1, step 10, exponential 7, spike 3,
    // rampUpDown 2, sustained 1, stress 20.
    assert_eq!(phases.len(), 6 + 1 + 10 + 7 + 3 + 2 + 1 + 20);
    assert_eq!(
        plan.source_addresses.len(),
        2,
        "a /30 has two usable addresses"
    );
    assert_eq!(plan.payloads[0].rows.len(), 5);
    assert_eq!(plan.payloads[1].load_all_as.as_deref(), Some("everyone"));
    assert_eq!(plan.messages.len(), 4);

    let mut plan = plan;
    let params = plan::presets::PresetParams {
        from: Some(2),
        to: Some(6),
        by: Some(2),
        ..Default::default()
    };
    plan::presets::apply(&mut plan, "step", &params).unwrap();
    let Load::Phases(phases) = &plan.load else {
        panic!("a preset gives phases")
    };
    assert_eq!(phases.len(), 3);
}

#[test]
fn shipped_plans_satisfy_the_schema() {
    let validator = jsonschema::validator_for(&generated_schema()).unwrap();
    let mut paths = files(&root().join("plans"), &["yml", "toml"]);
    paths.push(root().join("tests/fixtures/valid/everything.yml"));
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let value = plan::parse_value(&text, &path, Format::from_path(&path)).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    }
}

fn never_panics(text: &str, format: Format) {
    let _ = plan::load_str(text, Path::new("fuzz.yml"), format);
}

#[test]
fn every_prefix_of_valid_plans_is_handled() {
    for name in [
        "plans/basic.yml",
        "plans/basic.toml",
        "plans/binary-xor.yml",
    ] {
        let path = root().join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let format = Format::from_path(&path);
        for (i, _) in text.char_indices() {
            let prefix = &text[..i];
            if let Err(p) = plan::load_str(prefix, &path, format) {
                assert!(!p.problems.is_empty());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        never_panics(&text, Format::Yaml);
        never_panics(&text, Format::Toml);
    }

    #[test]
    fn mutated_plans_never_panic(cut in 0usize..2000, insert in "[ -~\n]{0,12}") {
        let text = std::fs::read_to_string(root().join("plans/basic.yml")).unwrap();
        let at = text.char_indices().map(|(i, _)| i).rfind(|i| *i <= cut).unwrap_or(0);
        let mutated = format!("{}{}{}", &text[..at], insert, &text[at..]);
        never_panics(&mutated, Format::Yaml);
    }
}

fn chatload(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_chatload"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

#[test]
fn check_binary_exit_codes_and_formats() {
    let ok = chatload(&["check", "plans/basic.yml", "plans/basic.toml"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );

    let bad = chatload(&[
        "check",
        "plans/basic.yml",
        "tests/fixtures/invalid/bad-regex.yml",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let text = String::from_utf8_lossy(&bad.stdout);
    assert!(
        text.contains("tests/fixtures/invalid/bad-regex.yml:11:25: error: the regex"),
        "{text}"
    );
    assert!(
        text.contains("^"),
        "text output shows a caret under the source line: {text}"
    );

    let gh = chatload(&[
        "check",
        "--format",
        "github",
        "tests/fixtures/invalid/fractional-weight.yml",
    ]);
    assert_eq!(gh.status.code(), Some(2));
    let text = String::from_utf8_lossy(&gh.stdout);
    assert!(
        text.starts_with(
            "::error file=tests/fixtures/invalid/fractional-weight.yml,line=8,col=13::`weight` must be"
        ),
        "{text}"
    );

    let json = chatload(&[
        "check",
        "--format",
        "json",
        "tests/fixtures/invalid/zero-weight.yml",
    ]);
    assert_eq!(json.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["problems"][0]["path"], "scenarios[0].weight");
}

#[test]
fn schema_and_presets_commands() {
    let out = chatload(&["schema", "plan"]);
    assert_eq!(out.status.code(), Some(0));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, generated_schema());
    let out = chatload(&["presets"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for name in [
        "warmup",
        "step",
        "exponential",
        "spike",
        "rampUpDown",
        "sustained",
        "stress",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
}

#[test]
fn the_readme_plan_example_is_valid() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme.find("```yaml\n").expect("README shows a YAML plan") + "```yaml\n".len();
    let end = start + readme[start..].find("```").expect("closed code block");
    let path = root().join("plans/readme-example.yml");
    if let Err(problems) = plan::load_str(&readme[start..end], &path, Format::Yaml) {
        panic!("the README's plan example is invalid:\n{problems}");
    }
}

/// `check --shards N` judges what one shard holds: a level one process is refused becomes a
/// share each of two can take, and whatever is still said names the shard.
#[test]
fn check_with_shards_judges_one_shards_share() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("big.yml");
    std::fs::write(
        &plan,
        "config:\n  target: \"127.0.0.1:9\"\n  phases: [{duration: 5s, vusers: 12000000}]\n\
         scenarios:\n  - flow: [connect]\n",
    )
    .unwrap();
    let plan = plan.to_string_lossy().into_owned();
    let warnings = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["check", "--format", "json"];
        args.extend_from_slice(extra);
        args.push(&plan);
        let out = chatload(&args);
        assert_eq!(out.status.code(), Some(0), "warnings do not fail check");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["message"].as_str().unwrap().to_owned())
            .collect()
    };
    let whole = warnings(&[]);
    assert!(whole[0].contains("`run` will refuse"), "{whole:?}");
    let split = warnings(&["--shards", "2"]);
    assert!(split.iter().all(|w| !w.contains("refuse")), "{split:?}");
    assert!(split.iter().all(|w| w.contains("shard 0/2")), "{split:?}");
    let out = chatload(&["check", "--shards", "0", &plan]);
    assert_eq!(out.status.code(), Some(2), "0 shards is a usage error");
}
