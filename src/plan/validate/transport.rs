//! Validation of how a plan reaches its target: the target URL (`check` knows which schemes
//! exist), `config.tls` and `config.websocket`. The embedded server's knobs are `config`'s.

use std::collections::BTreeSet;
use std::path::Path;

use super::super::endpoint::Endpoint;
use super::super::problem::{Seg, key};
use super::super::raw::{RawTls, RawTlsVersion, RawWebSocket};
use super::super::resolved::{ClientIdentity, Target, TlsRoots, TlsSettings, WebSocketSettings};
use super::Ctx;

/// Checks a target URL as written; `None` (with a problem) when it is not one chatload serves.
pub(super) fn address(ctx: &mut Ctx, at: &[Seg], target: &str) -> Option<Target> {
    match Endpoint::parse(target) {
        Ok(_) => Some(Target::Address(target.to_owned())),
        Err(err) => {
            let help = "e.g. `127.0.0.1:9200`, `tls://chat.example.com:6697`, \
                        `ws://127.0.0.1:8080/chat`, `http://127.0.0.1:8080` or `embedded`";
            ctx.out
                .error(at, format!("not a target: {err}"), Some(help.to_owned()));
            None
        }
    }
}

/// `config.tls`; relative file paths are resolved against the plan's folder.
pub(super) fn tls(
    ctx: &mut Ctx,
    path: &[Seg],
    raw: Option<&RawTls>,
    base_dir: &Path,
) -> Option<Option<TlsSettings>> {
    let Some(raw) = raw else {
        return Some(None);
    };
    let at = key(path, "tls");
    let mut ok = true;
    let mut file = |ctx: &mut Ctx, name: &str, written: &str| {
        let resolved = base_dir.join(written);
        if !resolved.is_file() {
            ok = false;
            ctx.out.error(
                &key(&at, name),
                format!("`{}` is not a readable file", resolved.display()),
                Some("give a PEM file path relative to the plan file".to_owned()),
            );
        }
        resolved
    };
    let roots = match &raw.ca_file {
        Some(ca) => TlsRoots::File(file(ctx, "caFile", ca)),
        None => TlsRoots::System,
    };
    let client_identity = match (&raw.client_cert, &raw.client_key) {
        (Some(cert), Some(key_file)) => Some(ClientIdentity {
            cert: file(ctx, "clientCert", cert),
            key: file(ctx, "clientKey", key_file),
        }),
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            ok = false;
            ctx.out.error(
                &at,
                "mutual TLS needs both `clientCert` and `clientKey`",
                Some("give both PEM files, or neither".to_owned()),
            );
            None
        }
    };
    if raw.insecure_skip_verify && raw.ca_file.is_some() {
        ok = false;
        ctx.out.error(
            &key(&at, "insecureSkipVerify"),
            "`insecureSkipVerify` accepts any certificate, so `caFile` would never be used",
            Some("keep `caFile` to verify against your CA, or drop it".to_owned()),
        );
    }
    if raw
        .server_name
        .as_deref()
        .is_some_and(|n| n.trim().is_empty())
    {
        ok = false;
        ctx.out
            .error(&key(&at, "serverName"), "`serverName` is empty", None);
    }
    ok.then(|| {
        Some(TlsSettings {
            server_name: raw.server_name.clone(),
            roots,
            insecure_skip_verify: raw.insecure_skip_verify,
            client_identity,
            alpn: raw.alpn.clone(),
            tls13_only: matches!(raw.min_version, Some(RawTlsVersion::V13)),
        })
    })
}

/// `config.websocket`; header values are templates rendered per vuser.
pub(super) fn websocket(
    ctx: &mut Ctx,
    path: &[Seg],
    raw: Option<&RawWebSocket>,
) -> Option<WebSocketSettings> {
    let Some(raw) = raw else {
        return Some(WebSocketSettings::default());
    };
    let at = key(path, "websocket");
    let mut ok = true;
    let mut headers = Vec::new();
    for (name, value) in &raw.headers {
        let hp = key(&key(&at, "headers"), name);
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b));
        if !valid_name {
            ok = false;
            ctx.out
                .key_error(&hp, format!("`{name}` is not an HTTP header name"), None);
            continue;
        }
        match ctx.templates.text(ctx.out, &hp, value, &BTreeSet::new()) {
            Some(text) => headers.push((name.clone(), text)),
            None => ok = false,
        }
    }
    let max_message_bytes = match raw.max_message_bytes {
        Some(0) => {
            ok = false;
            ctx.out.error(
                &key(&at, "maxMessageBytes"),
                "`maxMessageBytes` must be above 0",
                None,
            );
            None
        }
        n => n.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
    };
    let ping_interval = raw
        .ping_interval
        .as_ref()
        .and_then(|d| ctx.positive_duration(&key(&at, "pingInterval"), d));
    ok.then_some(WebSocketSettings {
        subprotocols: raw.subprotocols.clone(),
        headers,
        max_message_bytes,
        ping_interval,
    })
}
