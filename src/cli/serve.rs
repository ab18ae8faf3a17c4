//! `chatload serve`: runs the reference chat server until Ctrl-C.

use std::time::Duration;

use anyhow::{Context, bail};

use super::{Exit, parse_duration};
use crate::server::{ServerConfig, ServerFraming, Stall};

pub fn execute(args: super::ServeArgs) -> anyhow::Result<Exit> {
    let config = server_config(&args)?;
    config.validate()?;
    // Every client holds a descriptor: allow as many as the hard limit does.
    if let Some(limit) = super::limits::raise_nofile()
        && limit.soft < 10_000
    {
        eprintln!(
            "chatload serve: warning: at most {} open descriptors (RLIMIT_NOFILE), so about as \
             many clients; raise it with `ulimit -n`",
            limit.soft
        );
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (is it in use? try --listen 127.0.0.1:0)",
                    args.listen
                )
            })?;
        let addr = listener.local_addr()?;
        println!(
            "chatload serve: listening on {addr} ({})",
            describe(&config)
        );
        crate::server::run(listener, config, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
        eprintln!("chatload serve: stopped");
        Ok(Exit::Success)
    })
}

fn server_config(args: &super::ServeArgs) -> anyhow::Result<ServerConfig> {
    let framing = match args.framing.as_str() {
        "text" => ServerFraming::Text,
        "binary" => ServerFraming::Binary,
        other => bail!("--framing must be `text` or `binary`, not `{other}`"),
    };
    let duration = |flag: &str, value: &Option<String>| -> anyhow::Result<Duration> {
        value.as_deref().map_or(Ok(Duration::ZERO), |text| {
            parse_duration(text).with_context(|| format!("--{flag} {text:?}"))
        })
    };
    let capacity_per_sec = args
        .capacity
        .as_deref()
        .map(|text| {
            let number = text.trim().trim_end_matches("/s");
            number
                .parse::<f64>()
                .ok()
                .filter(|rate| rate.is_finite() && *rate > 0.0)
                .with_context(|| {
                    format!("--capacity {text:?}: expected commands per second, e.g. `2000/s`")
                })
        })
        .transpose()?;
    let stall = match (&args.stall, &args.every) {
        (Some(_), Some(_)) => Some(Stall {
            duration: duration("stall", &args.stall)?,
            every: duration("every", &args.every)?,
        }),
        _ => None,
    };
    Ok(ServerConfig {
        framing,
        xor_key: args.xor.as_ref().map(|key| key.as_bytes().to_vec()),
        delay: duration("delay", &args.delay)?,
        jitter: duration("jitter", &args.jitter)?,
        capacity_per_sec,
        stall,
        max_clients: args.max_clients,
        ..ServerConfig::default()
    })
}

/// The server configuration of a plan's `target: embedded` (`config.embedded`), for
/// `chatload run`, which starts it with [`crate::server::spawn`].
pub(super) fn embedded_config(embedded: &crate::plan::EmbeddedServer) -> ServerConfig {
    ServerConfig {
        framing: if embedded.binary {
            ServerFraming::Binary
        } else {
            ServerFraming::Text
        },
        xor_key: embedded.xor_key.clone(),
        delay: embedded.delay,
        jitter: embedded.jitter,
        capacity_per_sec: embedded.capacity_per_sec,
        stall: embedded.stall.map(|stall| Stall {
            duration: stall.duration,
            every: stall.every,
        }),
        max_clients: embedded.max_clients,
        ..ServerConfig::default()
    }
}

fn describe(config: &ServerConfig) -> String {
    let mut parts = vec![match config.framing {
        ServerFraming::Text => "text framing".to_string(),
        ServerFraming::Binary if config.xor_key.is_some() => "binary framing, xor".to_string(),
        ServerFraming::Binary => "binary framing".to_string(),
    }];
    if !config.delay.is_zero() {
        parts.push(format!("delay {:?}", config.delay));
    }
    if !config.jitter.is_zero() {
        parts.push(format!("jitter {:?}", config.jitter));
    }
    if let Some(rate) = config.capacity_per_sec {
        parts.push(format!("capacity {rate}/s"));
    }
    if let Some(stall) = config.stall {
        parts.push(format!(
            "stall {:?} every {:?}",
            stall.duration, stall.every
        ));
    }
    if let Some(max) = config.max_clients {
        parts.push(format!("max {max} clients"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_plan_target_maps_to_server_config() {
        let embedded = crate::plan::EmbeddedServer {
            binary: true,
            xor_key: Some(b"k".to_vec()),
            delay: Duration::from_millis(5),
            capacity_per_sec: Some(100.0),
            stall: Some(crate::plan::Stall {
                duration: Duration::from_secs(1),
                every: Duration::from_secs(5),
            }),
            max_clients: Some(3),
            ..Default::default()
        };
        let config = embedded_config(&embedded);
        assert_eq!(config.framing, ServerFraming::Binary);
        assert_eq!(config.xor_key.as_deref(), Some(&b"k"[..]));
        assert_eq!(config.delay, Duration::from_millis(5));
        assert_eq!(config.capacity_per_sec, Some(100.0));
        assert_eq!(config.stall.map(|s| s.every), Some(Duration::from_secs(5)));
        assert_eq!(config.max_clients, Some(3));
    }
}
