//! `chatload schema`.

use super::Exit;

pub fn execute(_args: super::SchemaArgs) -> anyhow::Result<Exit> {
    super::not_built("schema")
}
