use serde_json::json;

use super::{Secrets, is_secret_name};
use crate::plan::Format;

#[test]
fn secret_names_are_matched_by_pattern_in_any_case() {
    for name in [
        "password",
        "db_password",
        "adminPassword",
        "auth_token",
        "private_key",
        "privateKey",
        "api-key",
        "Authorization",
        "client_secret",
        "pwd",
        "passwd",
        "sessionCookie",
    ] {
        assert!(is_secret_name(name), "{name}");
    }
    for name in [
        "user", "room", "key", "keyFile", "monkey", "author", "target", "topics",
    ] {
        assert!(!is_secret_name(name), "{name}");
    }
}

#[test]
fn the_tree_masks_secret_keys_listed_variables_their_values_anywhere_and_inline_words() {
    let tree = json!({
        "config": {
            "variables": {"db_password": "hunter22", "pw": "s3cr3t!", "user": "alice"},
            "secrets": ["pw"],
            "environments": {"prod": {"variables": {"pw": "pr0d-pw", "adminPassword": "root1"}}},
            "tls": {"auth": {"token": "abc-token", "name": "bob"}}
        },
        "scenarios": [{"flow": [
            {"send": "LOGIN alice s3cr3t!"},
            {"send": "LOGIN alice hunter22"},
            {"send": "PASS literal-one"},
            {"send": "{\"password\": \"literal-two\"}"},
            {"send": "LOGIN {{ user }} {{ pw }}"}
        ]}]
    });
    let secrets = Secrets::of(&tree);
    let out = secrets.redact_tree(&tree).to_string();
    for secret in [
        "hunter22",
        "s3cr3t!",
        "pr0d-pw",
        "root1",
        "abc-token",
        "literal-one",
        "literal-two",
    ] {
        assert!(!out.contains(secret), "{secret} left in {out}");
    }
    for kept in ["alice", "bob", "{{ user }} {{ pw }}", "LOGIN alice ***"] {
        assert!(out.contains(kept), "{kept} lost from {out}");
    }
}

#[test]
fn text_redaction_replaces_secret_values_and_keeps_the_rest() {
    let yaml = "config:\n  target: embedded\n  variables:\n    Password: hunter2   # the admin's\n    \
                user: alice\n    auth: {token: 'abc,def', name: bob}\n    api_key: \"x\\\"y\"\n    \
                secret:\n      passwd: [a, b]\n    topics: keep\n    db_password: longsecret\n    \
                pw: listed-one\n  secrets: [pw]\nscenarios:\n  - flow:\n      \
                - send: \"LOGIN {{ user }} {{ password }}\"\n      \
                - send: \"LOGIN alice longsecret\"\n";
    let tree = serde_yaml::from_str(yaml).expect("yaml");
    let out = Secrets::of(&tree).redact_text(yaml, Format::Yaml);
    for secret in [
        "hunter2",
        "abc",
        "def",
        "x\\\"y",
        "[a, b]",
        "longsecret",
        "listed-one",
    ] {
        assert!(!out.contains(secret), "{secret:?} left in:\n{out}");
    }
    assert!(out.contains("    Password: ***   # the admin's\n"), "{out}");
    assert!(out.contains("auth: {token: ***, name: bob}"), "{out}");
    assert!(out.contains("    secret:\n      passwd: ***\n"), "{out}");
    assert!(out.contains("topics: keep"), "{out}");
    assert!(out.contains("{{ password }}"), "{out}");
    assert!(out.contains("LOGIN alice ***"), "{out}");
    assert_eq!(out.lines().count(), yaml.lines().count());

    let toml = "[config]\ntarget = \"embedded\"\n[config.variables]\npassword = \"hunter2\"\n\
                auth = { secret = 'shh', user = \"u\" }\n";
    let tree =
        serde_json::to_value(toml::from_str::<toml::Value>(toml).expect("toml")).expect("json");
    let out = Secrets::of(&tree).redact_text(toml, Format::Toml);
    assert!(!out.contains("hunter2") && !out.contains("shh"), "{out}");
    assert!(
        out.contains("password = ***\n") && out.contains("user = \"u\""),
        "{out}"
    );
}
