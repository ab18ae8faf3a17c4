//! `chatload serve`.

use super::Exit;

pub fn execute(_args: super::ServeArgs) -> anyhow::Result<Exit> {
    super::not_built("serve")
}
