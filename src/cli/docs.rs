//! `chatload completions SHELL` and `chatload man`: generated from the clap command tree, so
//! they never drift from the flags.

use std::io::Write;

use anyhow::Context;
use clap::CommandFactory;

use super::{Cli, Exit};

/// Writes the completion script for `shell` to `out`.
pub fn write_completions(shell: clap_complete::Shell, out: &mut dyn Write) {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "chatload", out);
}

/// Writes the man page (roff) of chatload and its subcommands to `out`.
pub fn write_man(out: &mut dyn Write) -> std::io::Result<()> {
    let command = Cli::command();
    clap_mangen::Man::new(command.clone()).render(out)?;
    // One page: each subcommand follows as a section, its synopsis and options as
    // subsections (one `.TH` per page; `man` shows only the first).
    for sub in command.get_subcommands() {
        let sub = sub.clone().bin_name(format!("chatload {}", sub.get_name()));
        let man = clap_mangen::Man::new(sub.clone());
        let mut section = Vec::new();
        man.render_synopsis_section(&mut section)?;
        man.render_options_section(&mut section)?;
        let section = String::from_utf8_lossy(&section).replace("\n.SH ", "\n.SS ");
        let section = section
            .strip_prefix(".SH ")
            .map_or(section.clone(), |rest| format!(".SS {rest}"));
        writeln!(out, ".SH \"CHATLOAD {}\"", sub.get_name().to_uppercase())?;
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            writeln!(out, "{}", roff_text(&about.to_string()))?;
        }
        out.write_all(section.as_bytes())?;
    }
    Ok(())
}

/// Plain text made safe for roff: no line starts with a control character, `\` and `-` are
/// escaped.
fn roff_text(text: &str) -> String {
    text.lines()
        .map(|line| {
            let line = line.replace('\\', "\\e").replace('-', "\\-");
            if line.starts_with(['.', '\'']) {
                format!("\\&{line}")
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub(super) fn completions(shell: clap_complete::Shell) -> anyhow::Result<Exit> {
    write_completions(shell, &mut std::io::stdout().lock());
    Ok(Exit::Success)
}

pub(super) fn man() -> anyhow::Result<Exit> {
    write_man(&mut std::io::stdout().lock()).context("cannot write the man page")?;
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use clap_complete::Shell;

    use super::*;

    /// Every argument of every (sub)command, visible or not, has help text: `--help`, the man
    /// page and the completions all show it.
    #[test]
    fn every_argument_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(format!("{path} {} (the subcommand)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut command = Cli::command();
        command.build();
        let mut missing = Vec::new();
        walk(&command, "chatload", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn completions_generate_for_every_shell() {
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::PowerShell,
            Shell::Elvish,
        ] {
            let mut out = Vec::new();
            write_completions(shell, &mut out);
            let text = String::from_utf8(out).expect("utf-8");
            assert!(!text.is_empty(), "{shell}: empty");
            assert!(text.contains("run"), "{shell}: no `run`");
            assert!(text.contains("vusers"), "{shell}: no `--vusers`");
        }
    }

    #[test]
    fn the_man_page_renders() {
        let mut out = Vec::new();
        write_man(&mut out).expect("render");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{text:.200}"
        );
        assert!(text.contains("chatload"));
        assert!(text.contains("spawn\\-rate"), "run's flags are on the page");
        assert!(
            text.contains("min\\-delta"),
            "compare's flags are on the page"
        );
    }
}
