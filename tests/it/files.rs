//! Integration tests: the files chatload creates — never written through a planted link,
//! temporary files never at a guessable name.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use chatload::report::{Formats, prepare_outputs, write_reports};

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

    assert_eq!(written.len(), 5);
    for (link, victim) in planted {
        assert_eq!(
            fs::read_to_string(&victim)?,
            "precious",
            "{}",
            victim.display()
        );
        assert!(fs::symlink_metadata(&link)?.file_type().is_symlink());
    }
    for path in written {
        assert!(fs::symlink_metadata(&path)?.file_type().is_file());
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
