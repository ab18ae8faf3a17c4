//! `chatload serve`: runs the reference chat server until Ctrl-C.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use super::{Exit, parse_duration};
use crate::export;
use crate::server::{
    SELF_SIGNED_NAMES, ServerConfig, ServerFraming, ServerStats, ServerTls, Stall,
};

/// How often `--metrics-listen` renders the counters (a scrape reads the last rendering).
const METRICS_EVERY: Duration = Duration::from_secs(1);

pub fn execute(args: super::ServeArgs) -> anyhow::Result<Exit> {
    let mut config = server_config(&args)?;
    config.tls = tls_config(&args)?;
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
    let runtime = crate::engine::runtime().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = crate::server::bind_listener(&args.listen, args.reuse_port)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (is it in use? try --listen 127.0.0.1:0{})",
                    args.listen,
                    if args.reuse_port {
                        ""
                    } else {
                        ", or --reuse-port to share it with other servers started so"
                    }
                )
            })?;
        let addr = listener.local_addr()?;
        println!(
            "chatload serve: listening on {} ({})",
            config.client_address(addr),
            describe(&config)
        );
        let stats = Arc::new(ServerStats::default());
        let stop_metrics = CancellationToken::new();
        let metrics = match &args.metrics_listen {
            Some(address) => {
                let listener = export::bind("--metrics-listen", address).await?;
                println!(
                    "chatload serve: metrics on http://{}/metrics",
                    listener.local_addr()?
                );
                let published =
                    export::publish_server(Arc::clone(&stats), METRICS_EVERY, stop_metrics.clone());
                Some(tokio::spawn(export::http::serve(
                    listener,
                    Arc::new(export::MetricsEndpoint::new(published)),
                    stop_metrics.clone(),
                )))
            }
            None => None,
        };
        crate::server::run_with_stats(listener, config, stats, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
        stop_metrics.cancel();
        if let Some(task) = metrics {
            let _ = task.await;
        }
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
        websocket: args.websocket,
        ws_refuse: args.ws_refuse,
        http: args.http,
        ..ServerConfig::default()
    })
}

/// The TLS material the flags ask for, loaded now so the server itself does no file I/O.
/// `--tls-self-signed` also writes the generated certificate where clients can read it.
fn tls_config(args: &super::ServeArgs) -> anyhow::Result<Option<ServerTls>> {
    let tls = match (&args.tls_cert, &args.tls_key, args.tls_self_signed) {
        (Some(cert), Some(key), false) => {
            let chain = crate::certs::load_certs(cert)?;
            let key = crate::certs::load_private_key(key)?;
            ServerTls::new(chain, key)
        }
        (Some(_), None, _) => bail!("--tls-cert needs --tls-key (the certificate's private key)"),
        (None, Some(_), _) => bail!("--tls-key needs --tls-cert (the certificate chain)"),
        (_, _, true) => {
            let (tls, pem) = crate::server::self_signed_tls()?;
            let path = args.tls_cert_out.clone().unwrap_or_else(default_cert_out);
            write_cert(&path, &pem)?;
            println!(
                "chatload serve: self-signed certificate for {} written to {} \
                 (clients trust it as their CA file)",
                SELF_SIGNED_NAMES.join(", "),
                path.display()
            );
            tls
        }
        (None, None, false) => {
            if let Some(ca) = &args.tls_client_ca {
                bail!(
                    "--tls-client-ca {} needs TLS: add --tls-cert and --tls-key, or \
                     --tls-self-signed",
                    ca.display()
                );
            }
            return Ok(None);
        }
    };
    Ok(Some(match &args.tls_client_ca {
        Some(ca) => tls.with_client_ca(crate::certs::load_certs(ca)?),
        None => tls,
    }))
}

fn default_cert_out() -> PathBuf {
    std::env::temp_dir().join(format!("chatload-serve-{}-cert.pem", std::process::id()))
}

/// Through a fresh temporary file and a rename, never through a link: the default path in the
/// shared temp directory is guessable (it holds the PID).
fn write_cert(path: &Path, pem: &str) -> anyhow::Result<()> {
    crate::report::write_atomically(path, pem.as_bytes()).with_context(|| {
        format!(
            "cannot write the self-signed certificate to {} (choose another place with \
             --tls-cert-out PATH)",
            path.display()
        )
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
        websocket: embedded.websocket,
        http: embedded.http,
        ..ServerConfig::default()
    }
}

fn describe(config: &ServerConfig) -> String {
    let mut parts = vec![match config.framing {
        _ if config.http => {
            "HTTP demo API over HTTP/1.1 and HTTP/2, routes in docs/server.md".to_string()
        }
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
    if config.websocket {
        parts.push("websocket: one message per command".to_string());
    }
    if let Some(tls) = &config.tls {
        parts.push(match tls.client_ca {
            Some(_) => "mutual TLS".to_string(),
            None => "TLS".to_string(),
        });
    }
    if let Some(status) = config.ws_refuse {
        parts.push(format!("refusing upgrades with {status}"));
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
        assert!(!config.http);
        let http = embedded_config(&crate::plan::EmbeddedServer {
            http: true,
            ..Default::default()
        });
        assert!(http.http && http.validate().is_ok());
        assert_eq!(config.framing, ServerFraming::Binary);
        assert_eq!(config.xor_key.as_deref(), Some(&b"k"[..]));
        assert_eq!(config.delay, Duration::from_millis(5));
        assert_eq!(config.capacity_per_sec, Some(100.0));
        assert_eq!(config.stall.map(|s| s.every), Some(Duration::from_secs(5)));
        assert_eq!(config.max_clients, Some(3));
    }

    fn serve_args(flags: &[&str]) -> super::super::ServeArgs {
        use clap::Parser;
        let argv = ["chatload", "serve"].iter().chain(flags);
        match super::super::Cli::try_parse_from(argv)
            .expect("parses")
            .command
        {
            super::super::Command::Serve(args) => args,
            other => panic!("not serve: {other:?}"),
        }
    }

    fn path(dir: &tempfile::TempDir, name: &str) -> String {
        dir.path().join(name).display().to_string()
    }

    #[test]
    fn tls_flags_load_files_and_need_each_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = crate::certs::TestCa::new("test").expect("ca");
        let server = ca.issue_server(&["localhost"]).expect("server");
        std::fs::write(path(&dir, "cert.pem"), &server.cert_pem).expect("write");
        std::fs::write(path(&dir, "key.pem"), &server.key_pem).expect("write");
        std::fs::write(path(&dir, "ca.pem"), ca.cert_pem()).expect("write");
        let (cert, key, client_ca) = (
            path(&dir, "cert.pem"),
            path(&dir, "key.pem"),
            path(&dir, "ca.pem"),
        );

        let args = serve_args(&["--tls-cert", &cert, "--tls-key", &key]);
        let tls = tls_config(&args).expect("tls").expect("some tls");
        assert_eq!(tls.cert_chain, vec![server.cert_der]);
        assert_eq!(tls.client_ca, None);

        let flags = [
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            &client_ca,
        ];
        let tls = tls_config(&serve_args(&flags)).expect("tls").expect("some");
        assert_eq!(tls.client_ca, Some(vec![ca.cert_der()]));

        let error = tls_config(&serve_args(&["--tls-cert", &cert])).expect_err("no key");
        assert!(error.to_string().contains("--tls-key"), "{error}");
        let error = tls_config(&serve_args(&["--tls-client-ca", &client_ca])).expect_err("no tls");
        assert!(error.to_string().contains("needs TLS"), "{error}");
        // The key file given as the certificate: the error names the file.
        let error = tls_config(&serve_args(&["--tls-cert", &key, "--tls-key", &key]))
            .expect_err("no certificate");
        assert!(error.to_string().contains("key.pem"), "{error}");
        assert!(tls_config(&serve_args(&[])).expect("plain").is_none());
    }

    #[test]
    fn self_signed_writes_the_certificate_clients_trust() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = path(&dir, "served.pem");
        let args = serve_args(&["--tls-self-signed", "--tls-cert-out", &out, "--websocket"]);
        let tls = tls_config(&args).expect("tls").expect("some tls");
        assert_eq!(
            crate::certs::load_certs(&out).expect("written"),
            tls.cert_chain
        );
        let mut config = server_config(&args).expect("config");
        config.tls = Some(tls);
        assert!(config.validate().is_ok());
        let addr = "127.0.0.1:9200".parse().expect("addr");
        assert_eq!(config.client_address(addr), "wss://127.0.0.1:9200/");
        config.tls = None;
        assert_eq!(config.client_address(addr), "ws://127.0.0.1:9200/");
        config.websocket = false;
        assert_eq!(config.client_address(addr), "127.0.0.1:9200");
    }
}
