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
