//! `chatload monitor`.

use super::Exit;

pub fn execute(_args: super::MonitorArgs) -> anyhow::Result<Exit> {
    super::not_built("monitor")
}
