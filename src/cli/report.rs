//! `chatload report` and `chatload compare`.

use super::{CompareArgs, Exit, ReportArgs};

pub fn execute_report(_args: ReportArgs) -> anyhow::Result<Exit> {
    super::not_built("report")
}

pub fn execute_compare(_args: CompareArgs) -> anyhow::Result<Exit> {
    super::not_built("compare")
}
