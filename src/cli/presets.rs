//! `chatload presets`.

use super::Exit;

pub fn execute() -> anyhow::Result<Exit> {
    super::not_built("presets")
}
