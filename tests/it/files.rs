//! Integration tests: the files chatload creates — never written through a planted link,
//! temporary files never at a guessable name.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use chatload::report::{Formats, claim_run_dir, prepare_outputs, write_reports};

use crate::report::fixture::synthetic_result;

/// The temporary names chatload used to derive from its PID, one per output file.
fn guessable_temp_names(dir: &Path) -> Vec<std::path::PathBuf> {
    Formats::ALL
        .paths(dir)
        .iter()
        .map(|path| {
            let name = path.file_name().expect("name").to_string_lossy();
            dir.join(format!(".{name}.{}.tmp", std::process::id()))
        })
        .collect()
}

#[test]
fn links_planted_at_temporary_names_are_not_followed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let victims = tempfile::tempdir()?;
    let out = dir.path().join("run");
    prepare_outputs(&out, Formats::ALL)?;
    let mut planted = Vec::new();
    for (i, link) in guessable_temp_names(&out).into_iter().enumerate() {
        let victim = victims.path().join(format!("victim-{i}"));
        fs::write(&victim, "precious")?;
        symlink(&victim, &link)?;
        planted.push((link, victim));
    }

    let written = write_reports(&synthetic_result(3, 20, 1.0), &out, Formats::ALL)?;

    assert_eq!(written.len(), Formats::ALL.paths(&out).len());
    for (link, victim) in planted {
        assert_eq!(
            fs::read_to_string(&victim)?,
            "precious",
            "{}",
            victim.display()
        );
        assert!(fs::symlink_metadata(&link)?.file_type().is_symlink());
    }
    // Readable like any file the user creates (umask applies), not private to the owner.
    let reference = out.join("reference");
    fs::File::create(&reference)?;
    let expected_mode = fs::metadata(&reference)?.permissions().mode();
    for path in written {
        let meta = fs::symlink_metadata(&path)?;
        assert!(meta.file_type().is_file());
        assert_eq!(
            meta.permissions().mode(),
            expected_mode,
            "{}",
            path.display()
        );
    }
    Ok(())
}

#[test]
fn a_result_file_that_is_a_link_is_refused_before_and_after_the_run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let victim = dir.path().join("victim");
    fs::write(&victim, "precious")?;
    let out = dir.path().join("run");
    fs::create_dir(&out)?;
    symlink(&victim, out.join("result.json"))?;

    let before = prepare_outputs(&out, Formats::ALL).expect_err("a linked output is refused");
    assert!(before.to_string().contains("symbolic link"), "{before}");
    let after = write_reports(&synthetic_result(3, 20, 1.0), &out, Formats::ALL)
        .expect_err("a linked output is refused");
    assert!(after.to_string().contains("symbolic link"), "{after}");
    assert_eq!(fs::read_to_string(&victim)?, "precious");
    Ok(())
}

#[test]
fn runs_started_in_the_same_second_get_folders_of_their_own() -> anyhow::Result<()> {
    let parent = tempfile::tempdir()?;
    let base = "plan-20261202T081500Z";
    let first = claim_run_dir(parent.path(), base)?;
    let second = claim_run_dir(parent.path(), base)?;
    let third = claim_run_dir(parent.path(), base)?;
    assert_eq!(first, parent.path().join(base));
    assert_eq!(second, parent.path().join(format!("{base}-2")));
    assert_eq!(third, parent.path().join(format!("{base}-3")));
    // Each claim is a fresh, empty folder even when an earlier run left files.
    fs::write(first.join("result.json"), "{}")?;
    let fourth = claim_run_dir(parent.path(), base)?;
    assert_eq!(fs::read_dir(&fourth)?.count(), 0);
    Ok(())
}

const SHORT_PLAN: &str = r#"
config:
  target: embedded
  phases:
    - {duration: 1s, vusers: 1}
scenarios:
  - name: ping
    flow:
      - connect
      - send: "PING 1"
        expect: {match: "^PONG"}
"#;

#[test]
fn out_naming_a_folder_with_files_is_refused_unless_overwrite() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let plan = dir.path().join("plan.yml");
    fs::write(&plan, SHORT_PLAN)?;
    let out = dir.path().join("out");
    fs::create_dir(&out)?;
    fs::write(out.join("result.json"), "an earlier run")?;
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_chatload"))
            .args(["run", "--quiet", "--format", "json", "--out"])
            .arg(&out)
            .args(extra)
            .arg(&plan)
            .output()
    };

    let refused = run(&[])?;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("already holds files"), "{stderr}");
    assert!(stderr.contains("--overwrite"), "{stderr}");
    assert_eq!(
        fs::read_to_string(out.join("result.json"))?,
        "an earlier run"
    );

    let replaced = run(&["--overwrite"])?;
    let stderr = String::from_utf8_lossy(&replaced.stderr);
    assert_eq!(replaced.status.code(), Some(0), "{stderr}");
    let result: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("result.json"))?)?;
    assert_eq!(result["format"], chatload::report::FORMAT_V2);
    Ok(())
}
