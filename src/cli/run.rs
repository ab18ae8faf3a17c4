//! `chatload run`.

use super::Exit;

pub fn execute(_args: super::RunArgs) -> anyhow::Result<Exit> {
    super::not_built("run")
}
