//! `chatload check`.

use super::Exit;

pub fn execute(_args: super::CheckArgs) -> anyhow::Result<Exit> {
    super::not_built("check")
}
