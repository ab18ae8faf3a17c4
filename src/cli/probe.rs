//! `chatload probe`.

use super::Exit;

pub fn execute(_args: super::ProbeArgs) -> anyhow::Result<Exit> {
    super::not_built("probe")
}
