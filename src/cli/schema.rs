//! `chatload schema`: print the JSON Schema of plans or of `result.json`.

use super::{Exit, SchemaArgs, SchemaKind};

pub fn execute(args: SchemaArgs) -> anyhow::Result<Exit> {
    match args.kind {
        SchemaKind::Plan => {
            println!("{}", plan_schema()?);
            Ok(Exit::Success)
        }
        SchemaKind::Result => {
            println!(
                "{}",
                serde_json::to_string_pretty(&crate::report::result_json_schema())?
            );
            Ok(Exit::Success)
        }
    }
}

/// The plan schema as committed in `schemas/plan.schema.json` (pretty JSON, no trailing newline).
pub fn plan_schema() -> anyhow::Result<String> {
    let schema = schemars::schema_for!(crate::plan::RawPlan);
    Ok(serde_json::to_string_pretty(&schema)?)
}
