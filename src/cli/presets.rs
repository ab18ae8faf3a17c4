//! `chatload presets`: list the built-in load presets.

use crate::plan::presets::PRESETS;

use super::Exit;

pub fn execute() -> anyhow::Result<Exit> {
    let width = PRESETS.iter().map(|p| p.name.len()).max().unwrap_or(0);
    for p in PRESETS {
        println!("{:width$}  {}", p.name, p.description);
    }
    println!();
    println!("Use in a plan: `phases: [{{preset: step, from: 5, to: 50, by: 5, every: 30s}}]`,");
    println!("or on a run: `chatload run PLAN --preset step --from 5 --to 50 --by 5 --every 30s`.");
    Ok(Exit::Success)
}
