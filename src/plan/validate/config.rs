//! Validation of `config`: target, protocol, messages, payloads, defaults, addresses, monitor,
//! report and ensure. Phases live in `load`, scenarios and handlers in `flow`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::super::problem::{Collector, Seg, key};
use super::super::raw::{
    RawConfig, RawDefaults, RawEmbedded, RawMetrics, RawMonitor, RawReport, RawReportFormat,
    RawServerFraming,
};
use super::super::resolved::*;
use super::Ctx;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_GRACEFUL_STOP: Duration = Duration::from_secs(30);
/// Largest CIDR block `sourceAddresses` expands (a /16).
const MAX_SOURCE_ADDRESSES: u128 = 1 << 16;

pub(super) fn target(ctx: &mut Ctx, path: &[Seg], config: &RawConfig) -> Option<Target> {
    let at = key(path, "target");
    // Checked whatever the target: `-e` or `--target embedded` may select it later, and a
    // mistake in it should not wait until then.
    let server = config
        .embedded
        .as_ref()
        .map(|e| embedded(ctx, &key(path, "embedded"), e));
    let rendered = super::environment::render_target(ctx, &at, config.target.trim())?;
    // Scenarios check their steps against the target as it applies, not the template.
    ctx.plan_target.clone_from(&rendered);
    let target = rendered.as_str();
    if target == "embedded" {
        return Some(Target::Embedded(server.unwrap_or_default()));
    }
    super::transport::address(ctx, &at, target)
}

/// `config.embedded`: the reference server's knobs.
fn embedded(ctx: &mut Ctx, p: &[Seg], e: &RawEmbedded) -> EmbeddedServer {
    let mut server = EmbeddedServer {
        binary: matches!(e.framing, Some(RawServerFraming::Binary)),
        xor_key: e.xor.as_ref().map(|k| k.as_bytes().to_vec()),
        ..EmbeddedServer::default()
    };
    if server.xor_key.as_ref().is_some_and(Vec::is_empty) {
        ctx.out.error(&key(p, "xor"), "the XOR key is empty", None);
    } else if server.xor_key.is_some() && !server.binary {
        ctx.out.error(
            &key(p, "xor"),
            "`xor` applies to the binary flavour only",
            Some("add `framing: binary` under `config.embedded`".to_owned()),
        );
    }
    server.delay = ctx.opt_duration(p, "delay", e.delay.as_ref(), Duration::ZERO);
    server.jitter = ctx.opt_duration(p, "jitter", e.jitter.as_ref(), Duration::ZERO);
    if let Some(c) = &e.capacity {
        let text = c.0.trim();
        let number = text.strip_suffix("/s").unwrap_or(text).trim();
        match number.parse::<f64>() {
            Ok(v) if v > 0.0 && v.is_finite() => server.capacity_per_sec = Some(v),
            _ => ctx.out.error(
                &key(p, "capacity"),
                format!("`{text}` is not a capacity"),
                Some("write commands per second, e.g. 2000 or \"2000/s\"".to_owned()),
            ),
        }
    }
    match (&e.stall, &e.every) {
        (Some(s), Some(v)) => {
            let duration = ctx.duration(&key(p, "stall"), s);
            let every = ctx.duration(&key(p, "every"), v);
            match (duration, every) {
                (Some(duration), Some(every)) if every.is_zero() || duration >= every => {
                    ctx.out.error(
                        &key(p, "stall"),
                        format!(
                            "a stall of {duration:?} every {every:?} never ends: the \
                                 stall must be shorter than the period"
                        ),
                        Some("e.g. `stall: 1s` with `every: 5s`".to_owned()),
                    )
                }
                (Some(duration), Some(every)) => {
                    server.stall = Some(Stall { duration, every });
                }
                _ => {}
            }
        }
        (None, None) => {}
        (Some(_), None) => ctx.out.key_error(
            &key(p, "stall"),
            "`stall` needs `every` (how often to stall)",
            None,
        ),
        (None, Some(_)) => ctx.out.key_error(
            &key(p, "every"),
            "`every` needs `stall` (how long to stall)",
            None,
        ),
    }
    server.max_clients = e.max_clients;
    server.tls = e.tls;
    server.websocket = e.websocket;
    server.http = e.http;
    if e.http && (e.websocket || e.framing.is_some() || e.xor.is_some()) {
        ctx.out.error(
            &key(p, "http"),
            "the HTTP demo API speaks HTTP only",
            Some("drop `websocket`, `framing` and `xor` under `config.embedded`".to_owned()),
        );
    }
    server
}

pub(super) fn variables(config: &RawConfig) -> Vec<Variable> {
    config
        .variables
        .iter()
        .map(|(name, v)| Variable {
            name: name.clone(),
            values: match v {
                Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            },
        })
        .collect()
}

/// Reads every payload file; `list` says whether `payload` was written as a list.
pub(super) fn payloads(
    out: &mut Collector<'_>,
    base_dir: &Path,
    config: &RawConfig,
    list: bool,
) -> Vec<Payload> {
    let Some(entries) = &config.payload else {
        return Vec::new();
    };
    let mut payloads = Vec::new();
    for (i, p) in entries.0.iter().enumerate() {
        let mut at = vec![Seg::Key("config".into()), Seg::Key("payload".into())];
        if list {
            at.push(Seg::Index(i));
        }
        if let Some(payload) = super::payload::read(out, &at, base_dir, p) {
            payloads.push(payload);
        }
    }
    payloads
}

pub(super) fn defaults(ctx: &mut Ctx, path: &[Seg], raw: Option<&RawDefaults>) -> Defaults {
    let p = key(path, "defaults");
    let raw = raw.cloned().unwrap_or(RawDefaults {
        timeout: None,
        think: None,
        reconnect: None,
        graceful_stop: None,
        headers: None,
    });
    let timeout = ctx.opt_duration(&p, "timeout", raw.timeout.as_ref(), DEFAULT_TIMEOUT);
    if timeout.is_zero() {
        ctx.out.error(
            &key(&p, "timeout"),
            "the timeout must be longer than 0",
            None,
        );
    }
    let mut think_jitter = 0.0;
    if let Some(j) = raw.think.as_ref().and_then(|t| t.jitter.as_ref()) {
        let at = key(&key(&p, "think"), "jitter");
        let text = j.0.trim();
        let parsed = match text.strip_suffix('%') {
            Some(pct) => pct.trim().parse::<f64>().map(|v| v / 100.0),
            None => text.parse::<f64>(),
        };
        match parsed {
            Ok(v) if (0.0..=1.0).contains(&v) => think_jitter = v,
            _ => ctx.out.error(
                &at,
                format!("`{text}` is not a jitter"),
                Some("write a fraction from 0 to 1 (0.1) or a percentage (\"10%\")".to_owned()),
            ),
        }
    }
    let reconnect = Reconnect {
        attempts: raw.reconnect.as_ref().and_then(|r| r.attempts).unwrap_or(0),
        backoff: ctx.opt_duration(
            &key(&p, "reconnect"),
            "backoff",
            raw.reconnect.as_ref().and_then(|r| r.backoff.as_ref()),
            Duration::from_secs(1),
        ),
    };
    Defaults {
        timeout,
        think_jitter,
        reconnect,
        graceful_stop: ctx.opt_duration(
            &p,
            "gracefulStop",
            raw.graceful_stop.as_ref(),
            DEFAULT_GRACEFUL_STOP,
        ),
    }
}

pub(super) fn source_addresses(
    ctx: &mut Ctx,
    path: &[Seg],
    config: &RawConfig,
) -> Option<Vec<IpAddr>> {
    let Some(list) = &config.source_addresses else {
        return Some(Vec::new());
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (i, entry) in list.0.iter().enumerate() {
        let mut at = key(path, "sourceAddresses");
        if ctx.source_addresses_is_list {
            at.push(Seg::Index(i));
        }
        match expand_address(entry.trim()) {
            Ok(addrs) => out.extend(addrs),
            Err(e) => {
                ok = false;
                ctx.out.error(&at, e, Some("write an address (`127.0.0.2`) or a CIDR block (`127.0.0.0/24`, at most a /16)".to_owned()));
            }
        }
    }
    ok.then_some(out)
}

fn expand_address(entry: &str) -> Result<Vec<IpAddr>, String> {
    let Some((addr, prefix)) = entry.split_once('/') else {
        return entry
            .parse::<IpAddr>()
            .map(|a| vec![a])
            .map_err(|_| format!("`{entry}` is not an IP address"));
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("`{entry}` is not a CIDR block"))?;
    let bits: u32 = if addr.is_ipv4() { 32 } else { 128 };
    let prefix: u32 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= bits)
        .ok_or_else(|| format!("`{entry}`: the prefix length must be 0..={bits}"))?;
    let host_bits = bits - prefix;
    let count: u128 = 1u128 << host_bits.min(127);
    if count > MAX_SOURCE_ADDRESSES {
        return Err(format!(
            "`{entry}` holds {count} addresses; at most a /16 is expanded"
        ));
    }
    let base: u128 = match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    } & !(count - 1);
    // Skip the network and broadcast addresses of blocks that have them.
    let (first, last) = if count > 2 {
        (1, count - 2)
    } else {
        (0, count - 1)
    };
    Ok((first..=last)
        .map(|offset| {
            let n = base + offset;
            match addr {
                IpAddr::V4(_) => IpAddr::from((n as u32).to_be_bytes()),
                IpAddr::V6(_) => IpAddr::from(n.to_be_bytes()),
            }
        })
        .collect())
}

pub(super) fn monitor(ctx: &mut Ctx, path: &[Seg], raw: Option<&RawMonitor>) -> Option<Monitor> {
    let raw = raw?;
    let p = key(path, "monitor");
    let which = ctx.exactly_one(
        &p,
        "`monitor`",
        &[
            ("process", raw.process.is_some()),
            ("pid", raw.pid.is_some()),
        ],
    )?;
    let process = match which {
        "pid" => ProcessSelector::Pid(raw.pid.unwrap_or_default()),
        _ => ProcessSelector::Name(raw.process.clone().unwrap_or_default()),
    };
    let interval = ctx.opt_duration(
        &p,
        "interval",
        raw.interval.as_ref(),
        Duration::from_secs(1),
    );
    if interval.is_zero() {
        ctx.out.error(
            &key(&p, "interval"),
            "the interval must be longer than 0",
            None,
        );
    }
    Some(Monitor {
        process,
        port: raw.port,
        interval,
    })
}

pub(super) fn metrics(ctx: &mut Ctx, path: &[Seg], raw: Option<&RawMetrics>) -> MetricsConfig {
    let listen = raw.and_then(|r| r.listen.as_ref()).and_then(|text| {
        let text = text.text();
        match crate::plan::listen_address(&text) {
            Ok(address) => Some(address),
            Err(reason) => {
                ctx.out.error(
                    &key(&key(path, "metrics"), "listen"),
                    format!("{text:?}: {reason}"),
                    Some(
                        "e.g. `listen: 9464` (127.0.0.1) or `listen: \"0.0.0.0:9464\"`".to_owned(),
                    ),
                );
                None
            }
        }
    });
    MetricsConfig { listen }
}

pub(super) fn report(ctx: &mut Ctx, path: &[Seg], raw: Option<&RawReport>) -> ReportConfig {
    let p = key(path, "report");
    let formats = raw.and_then(|r| r.formats.clone());
    let has = |f: RawReportFormat| formats.as_ref().is_none_or(|list| list.contains(&f));
    if formats.as_ref().is_some_and(Vec::is_empty) {
        // A run that writes nothing and exits 0 looks like a success that kept no evidence.
        ctx.out.error(
            &key(&p, "formats"),
            "report.formats is empty, so the run would write no result at all",
            Some(
                "list at least one of json, csv, html (or leave the key out for all three); \
                 to skip the files for one run, use `chatload run --no-report`"
                    .to_owned(),
            ),
        );
    }
    let interval = ctx.opt_duration(
        &p,
        "interval",
        raw.and_then(|r| r.interval.as_ref()),
        Duration::from_secs(1),
    );
    if interval.is_zero() {
        ctx.out.error(
            &key(&p, "interval"),
            "the interval must be longer than 0",
            None,
        );
    }
    ReportConfig {
        dir: PathBuf::from(
            raw.and_then(|r| r.dir.clone())
                .unwrap_or_else(|| "reports".to_owned()),
        ),
        json: has(RawReportFormat::Json),
        csv: has(RawReportFormat::Csv),
        html: has(RawReportFormat::Html),
        interval,
    }
}
