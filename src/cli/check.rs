//! `chatload check`: validate plans without sending any load.
//!
//! Prints every problem of every file (rustc-like text, JSON, or GitHub annotations) and exits
//! 0 when all plans are valid, 2 otherwise. What is checked lives in `plan`. Valid plans may
//! also get warnings (levels one process cannot hold on this machine, `limits`; with
//! `--shards N`, levels one shard cannot hold); warnings never change the exit code.

use std::io::Write;

use crate::engine::Shard;
use crate::plan::{self, Problem};

use super::{CheckArgs, CheckFormat, Exit};

pub fn execute(args: CheckArgs) -> anyhow::Result<Exit> {
    let mut problems: Vec<Problem> = Vec::new();
    let mut valid = 0usize;
    let mut warnings: Vec<(String, String)> = Vec::new();
    let (nofile, ports) = (
        super::limits::nofile_for_run(),
        super::limits::ephemeral_ports(),
    );
    // Shard 0 holds the largest share (`Shard::share`): if it fits, every shard does.
    let shard = Shard::new(0, args.shards.unwrap_or(1))?;
    // The local commands each valid plan would run, for text output.
    let mut commands: Vec<String> = Vec::new();
    for file in &args.files {
        match plan::load(file) {
            Ok(plan) => {
                valid += 1;
                commands.extend(hook_lines(file, &plan));
                let file = file.display().to_string();
                for warning in super::limits::capacity_warnings(&plan, shard, nofile, ports) {
                    warnings.push((file.clone(), warning));
                }
            }
            Err(p) => problems.extend(p.problems),
        }
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.format {
        CheckFormat::Text => {
            for p in &problems {
                write!(out, "{}", render_text(p))?;
            }
            for (file, warning) in &warnings {
                writeln!(out, "{file}: warning: {warning}\n")?;
            }
            for line in &commands {
                writeln!(out, "{line}")?;
            }
            let invalid = args.files.len() - valid;
            if invalid == 0 {
                writeln!(out, "{valid} plan{} ok", plural(valid))?;
            } else {
                writeln!(
                    out,
                    "{} problem{} in {invalid} of {} plan{}",
                    problems.len(),
                    plural(problems.len()),
                    args.files.len(),
                    plural(args.files.len())
                )?;
            }
        }
        CheckFormat::Json => {
            let list: Vec<serde_json::Value> = problems.iter().map(to_json).collect();
            let doc = serde_json::json!({
                "valid": problems.is_empty(),
                "files": args.files.len(),
                "problems": list,
                "warnings": warnings
                    .iter()
                    .map(|(file, message)| serde_json::json!({"file": file, "message": message}))
                    .collect::<Vec<_>>(),
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        }
        CheckFormat::Github => {
            for p in &problems {
                writeln!(out, "{}", render_github(p))?;
            }
            for (file, warning) in &warnings {
                let escape = |s: &str| s.replace('%', "%25").replace('\n', "%0A");
                writeln!(out, "::warning file={}::{}", escape(file), escape(warning))?;
            }
        }
    }
    Ok(if problems.is_empty() {
        Exit::Success
    } else {
        Exit::Error
    })
}

/// `FILE: runs before|after: CMD ARGS (timeout 60s)` per `config.hooks` command.
fn hook_lines(file: &std::path::Path, plan: &plan::Plan) -> Vec<String> {
    let hooks = &plan.setup.hooks;
    let stages = [("before", &hooks.before), ("after", &hooks.after)];
    stages
        .iter()
        .flat_map(|(stage, list)| {
            list.iter().map(move |hook| {
                format!(
                    "{}: runs {stage} the load: {} (timeout {:?})",
                    file.display(),
                    hook.run.join(" "),
                    hook.timeout
                )
            })
        })
        .collect()
}

/// Every problem of a plan that cannot run, rustc-style, on stderr (for `run` and `probe`).
pub(super) fn report_problems(problems: &plan::Problems) {
    for p in &problems.problems {
        eprint!("{}", render_text(p));
    }
    let n = problems.problems.len();
    eprintln!("{n} problem{} in the plan", plural(n));
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `file:line:col: error: message`, the source line with a caret, the plan path and help.
pub fn render_text(p: &Problem) -> String {
    let mut s = format!(
        "{}:{}:{}: error: {}\n",
        p.file.display(),
        p.line,
        p.column,
        p.message
    );
    if let Some(line) = &p.source_line {
        let gutter = p.line.to_string().len();
        s.push_str(&format!("{:gutter$} |\n", ""));
        s.push_str(&format!("{} | {}\n", p.line, line));
        let pad: String = line
            .chars()
            .take(p.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        s.push_str(&format!("{:gutter$} | {pad}^\n", ""));
    }
    if !p.path.is_empty() {
        s.push_str(&format!("  = at: {}\n", p.path));
    }
    if let Some(help) = &p.help {
        s.push_str(&format!("  = help: {help}\n"));
    }
    s.push('\n');
    s
}

/// A GitHub Actions workflow command; newlines and `%` escaped as GitHub requires.
pub fn render_github(p: &Problem) -> String {
    let escape_data = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let escape_prop = |s: &str| escape_data(s).replace(':', "%3A").replace(',', "%2C");
    let mut message = p.message.clone();
    if !p.path.is_empty() {
        message.push_str(&format!(" (at {})", p.path));
    }
    if let Some(help) = &p.help {
        message.push_str(&format!("; {help}"));
    }
    format!(
        "::error file={},line={},col={}::{}",
        escape_prop(&p.file.display().to_string()),
        p.line,
        p.column,
        escape_data(&message)
    )
}

fn to_json(p: &Problem) -> serde_json::Value {
    serde_json::json!({
        "file": p.file.display().to_string(),
        "line": p.line,
        "column": p.column,
        "path": p.path,
        "message": p.message,
        "help": p.help,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem() -> Problem {
        Problem {
            file: "plans/x.yml".into(),
            line: 12,
            column: 7,
            path: "config.phases[0].arivalRate".into(),
            message: "unknown key `arivalRate`, did you mean `arrivalRate`?".into(),
            help: Some("allowed keys here: duration, arrivalRate".into()),
            source_line: Some("    - {arivalRate: 2}".into()),
        }
    }

    #[test]
    fn text_reads_like_rustc() {
        assert_eq!(
            render_text(&problem()),
            "plans/x.yml:12:7: error: unknown key `arivalRate`, did you mean `arrivalRate`?\n\
             \x20  |\n\
             12 |     - {arivalRate: 2}\n\
             \x20  |       ^\n\
             \x20 = at: config.phases[0].arivalRate\n\
             \x20 = help: allowed keys here: duration, arrivalRate\n\n"
        );
    }

    #[test]
    fn github_annotations_escape_properties_and_data() {
        let mut p = problem();
        p.file = "plans/a,b.yml".into();
        p.message = "50% done\nnext".into();
        p.help = None;
        assert_eq!(
            render_github(&p),
            "::error file=plans/a%2Cb.yml,line=12,col=7::50%25 done%0Anext (at config.phases[0].arivalRate)"
        );
    }
}
