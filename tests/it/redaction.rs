//! Secrets never reach the plan copies that result.json and report.html keep (`plan` and
//! `planSource`): keys that look secret, variables listed in `config.secrets`, their values
//! from `-e` environments, and literal secrets in sends.

use std::path::Path;

use chatload::plan::{self, Format, LoadOptions};

const PLAN: &str = r#"
config:
  target: embedded
  phases:
    - {duration: 1s, vusers: 1}
  variables:
    db_password: dbpass-111
    adminPassword: admin-222
    auth_token: token-333
    private_key: key-444
    pin: pin-555
    user: alice
  secrets: [pin]
  environments:
    prod:
      variables: {pin: prodpin-666, db_password: proddb-777}
scenarios:
  - flow:
      - connect
      - send: "LOGIN {{ user }} {{ pin }}"
      - send: "PASS literal-888"
      - send: "AUTH alice dbpass-111"
"#;

const SECRETS: &[&str] = &[
    "dbpass-111",
    "admin-222",
    "token-333",
    "key-444",
    "pin-555",
    "prodpin-666",
    "proddb-777",
    "literal-888",
];

#[test]
fn no_secret_reaches_the_plan_copies_a_result_keeps() {
    for environment in [None, Some("prod".to_owned())] {
        let options = LoadOptions {
            environment: environment.clone(),
            ..LoadOptions::default()
        };
        let plan = plan::load_str_with(PLAN, Path::new("secret.yml"), Format::Yaml, &options)
            .unwrap_or_else(|p| panic!("{p:?}"));
        let tree = plan.as_written.to_string();
        let text = &plan.source_text.as_ref().expect("source text").text;
        for secret in SECRETS {
            assert!(
                !tree.contains(secret),
                "{environment:?}: {secret} in {tree}"
            );
            assert!(
                !text.contains(secret),
                "{environment:?}: {secret} in\n{text}"
            );
        }
        assert!(tree.contains("alice") && text.contains("alice"));
        assert!(text.contains("LOGIN {{ user }} {{ pin }}"), "{text}");
    }
}

#[test]
fn a_secrets_entry_that_is_no_variable_is_a_check_error() {
    let text = PLAN.replace("secrets: [pin]", "secrets: [pim]");
    let problems = plan::load_str(&text, Path::new("secret.yml"), Format::Yaml)
        .expect_err("unknown name refused")
        .problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]
            .message
            .contains("`pim` in config.secrets is not a variable")
    );
    assert_eq!(problems[0].help.as_deref(), Some("did you mean `pin`?"));
}

/// Literal secrets typed into sends, recognised by their shape alone (no variable holds them).
const LITERAL_SENDS: &[(&str, &str)] = &[
    ("LOGIN alice password=lit-pw-1", "lit-pw-1"),
    ("USER alice pass=lit-pass-2", "lit-pass-2"),
    ("SUB news token=lit-token-3", "lit-token-3"),
    (
        "GET / HTTP/1.1\\r\\nAuthorization: Bearer lit-bearer-4\\r\\n",
        "lit-bearer-4",
    ),
    ("AUTH alice lit-auth-5", "lit-auth-5"),
    ("CONNECT access_token=lit-access-6&room=1", "lit-access-6"),
    ("X-Api-Key: lit-apikey-7", "lit-apikey-7"),
    ("{\\\"client_secret\\\": \\\"lit-json-8\\\"}", "lit-json-8"),
    ("JOIN ws://alice:lit-url-9@127.0.0.1/chat", "lit-url-9"),
    ("LOGIN bob lit-login-10", "lit-login-10"),
];

#[test]
fn literal_secrets_in_sends_are_masked_by_pattern_in_result_json_and_report_html() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sends: String = LITERAL_SENDS
        .iter()
        .map(|(send, _)| format!("      - send: \"{send}\"\n"))
        .collect();
    let text = format!(
        "config:\n  target: embedded\n  phases:\n    - {{duration: 1s, arrivalCount: 1}}\n\
         scenarios:\n  - flow:\n      - connect\n{sends}"
    );
    let plan_file = dir.path().join("literal.yml");
    std::fs::write(&plan_file, &text).expect("plan written");
    let out = dir.path().join("out");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chatload"))
        .arg("run")
        .arg(&plan_file)
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .output()
        .expect("chatload runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The embedded server does not know these commands: errors, exit 1, reports written.
    assert!(matches!(output.status.code(), Some(0 | 1)), "{stderr}");
    for file in ["result.json", "report.html"] {
        let written = std::fs::read_to_string(out.join(file)).expect("report written");
        for (send, secret) in LITERAL_SENDS {
            assert!(
                !written.contains(secret),
                "{file}: {secret} of `{send}` left"
            );
        }
        // What is no secret stays readable.
        for kept in [
            "LOGIN alice",
            "access_token=***",
            "Bearer ***",
            "room=1",
            "alice:***@",
        ] {
            assert!(written.contains(kept), "{file}: `{kept}` lost");
        }
    }
}
