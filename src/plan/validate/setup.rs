//! Validation of setup and teardown: the `before`/`after` flows (validated like a scenario's)
//! and the commands of `config.hooks`.

use std::collections::BTreeSet;
use std::time::Duration;

use super::super::problem::{Seg, idx, key};
use super::super::raw::{RawHook, RawPlan};
use super::super::resolved::{Hook, Hooks, Setup};
use super::Ctx;
use super::flow::{flow_locals, setup_flow};

/// How long a hook may run when it sets no `timeout`.
const HOOK_TIMEOUT: Duration = Duration::from_secs(60);

/// The names the `before` flow binds: every vuser (and the `after` flow) sees them.
pub(super) fn shared_locals(raw: &RawPlan) -> BTreeSet<String> {
    raw.before
        .as_ref()
        .map(|b| flow_locals(&b.flow))
        .unwrap_or_default()
}

pub(super) fn setup(ctx: &mut Ctx, raw: &RawPlan, shared: &BTreeSet<String>) -> Setup {
    let flow = |ctx: &mut Ctx, name: &str, flow: Option<&super::super::raw::RawSetupFlow>| {
        let path = vec![Seg::Key(name.to_owned())];
        flow.map(|f| setup_flow(ctx, &path, name, &f.flow, shared))
    };
    let before = flow(ctx, "before", raw.before.as_ref());
    let after = flow(ctx, "after", raw.after.as_ref());
    let hooks_path = key(&[Seg::Key("config".to_owned())], "hooks");
    let hooks = match &raw.config.hooks {
        Some(h) => Hooks {
            before: commands(ctx, &key(&hooks_path, "before"), &h.before),
            after: commands(ctx, &key(&hooks_path, "after"), &h.after),
        },
        None => Hooks::default(),
    };
    Setup {
        before,
        after,
        hooks,
    }
}

fn commands(ctx: &mut Ctx, path: &[Seg], raw: &[RawHook]) -> Vec<Hook> {
    let mut out = Vec::new();
    for (i, hook) in raw.iter().enumerate() {
        let hp = idx(path, i);
        if hook
            .run
            .first()
            .is_none_or(|program| program.trim().is_empty())
        {
            ctx.out.error(
                &key(&hp, "run"),
                "`run` needs a program to run",
                Some(
                    "e.g. `run: [\"./seed-db.sh\", \"1000\"]` (no shell: one item per argument)"
                        .to_owned(),
                ),
            );
            continue;
        }
        let timeout = match &hook.timeout {
            Some(t) => match ctx.positive_duration(&key(&hp, "timeout"), t) {
                Some(d) => d,
                None => continue,
            },
            None => HOOK_TIMEOUT,
        };
        out.push(Hook {
            run: hook.run.clone(),
            timeout,
        });
    }
    out
}
