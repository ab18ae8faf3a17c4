//! A target as a URL: the scheme picks the transport (`tcp`, `tls`, `ws`, `wss`, and `http`,
//! `https` for the HTTP engine), then host, port and, for WebSocket and HTTP, the path.
//!
//! Pure parsing, no resolution: `transport` resolves and connects.

use std::fmt;

/// How a target is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain TCP (`host:port` or `tcp://host:port`).
    Tcp,
    /// TCP + TLS (`tls://host:port`).
    Tls,
    /// WebSocket over TCP (`ws://host:port/path`).
    Ws,
    /// WebSocket over TLS (`wss://host:port/path`).
    Wss,
    /// HTTP requests (`http://host:port/base`).
    Http,
    /// HTTP requests over TLS (`https://host:port/base`).
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Tcp => "tcp",
            Scheme::Tls => "tls",
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Tls | Scheme::Wss | Scheme::Https)
    }

    pub fn is_http(self) -> bool {
        matches!(self, Scheme::Http | Scheme::Https)
    }

    /// Schemes whose URL may carry a path.
    fn has_path(self) -> bool {
        self.is_websocket() || self.is_http()
    }

    pub fn is_websocket(self) -> bool {
        matches!(self, Scheme::Ws | Scheme::Wss)
    }
}

/// A parsed target URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: Scheme,
    /// Host name or IP address, without IPv6 brackets.
    pub host: String,
    pub port: u16,
    /// The request path of a WebSocket target, or the base path of an HTTP target (`/` when
    /// none was written), with any query.
    pub path: String,
}

/// Why a target is not a URL chatload can use; the message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error(
        "`{target}` has the unknown scheme `{scheme}://`; use tcp, tls, ws, wss, http or https"
    )]
    UnknownScheme { target: String, scheme: String },
    #[error("`{0}` has no port; write `host:port` (e.g. `127.0.0.1:9200`)")]
    NoPort(String),
    #[error("`{target}`: `{port}` is not a port number (1-65535)")]
    BadPort { target: String, port: String },
    #[error("`{0}` has no host; write `host:port` (e.g. `127.0.0.1:9200`)")]
    NoHost(String),
    #[error("`{0}`: a path only makes sense for ws://, wss://, http:// and https:// targets")]
    PathOnSocket(String),
}

impl Endpoint {
    /// Parses `host:port`, `tcp://host:port`, `tls://host:port`, `ws://host[:port]/path`,
    /// `wss://host[:port]/path`, `http://host[:port]/path` or `https://host[:port]/path`
    /// (WebSocket and HTTP ports default to 80 and 443). IPv6 hosts are written in brackets:
    /// `[::1]:9200`.
    pub fn parse(target: &str) -> Result<Endpoint, EndpointError> {
        let target = target.trim();
        let (scheme, rest) = match target.split_once("://") {
            None => (Scheme::Tcp, target),
            Some((written, rest)) => {
                let scheme = match written.to_ascii_lowercase().as_str() {
                    "tcp" => Scheme::Tcp,
                    "tls" => Scheme::Tls,
                    "ws" => Scheme::Ws,
                    "wss" => Scheme::Wss,
                    "http" => Scheme::Http,
                    "https" => Scheme::Https,
                    _ => {
                        return Err(EndpointError::UnknownScheme {
                            target: target.to_owned(),
                            scheme: written.to_owned(),
                        });
                    }
                };
                (scheme, rest)
            }
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, ""),
        };
        if !scheme.has_path() && !matches!(path, "" | "/") {
            return Err(EndpointError::PathOnSocket(target.to_owned()));
        }
        let (host, port) = split_authority(authority);
        if host.is_empty() {
            return Err(EndpointError::NoHost(target.to_owned()));
        }
        let port = match (port, scheme) {
            (Some(port), _) => port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| EndpointError::BadPort {
                    target: target.to_owned(),
                    port: port.to_owned(),
                })?,
            (None, Scheme::Ws | Scheme::Http) => 80,
            (None, Scheme::Wss | Scheme::Https) => 443,
            (None, _) => return Err(EndpointError::NoPort(target.to_owned())),
        };
        let path = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        Ok(Endpoint {
            scheme,
            host: host.to_owned(),
            port,
            path,
        })
    }

    /// `host:port`, with brackets around an IPv6 address: what `lookup_host` takes.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The URL as chatload prints it: always with its scheme (`tcp://127.0.0.1:9200`).
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.authority())?;
        if self.scheme.has_path() {
            f.write_str(&self.path)?;
        }
        Ok(())
    }
}

/// Splits `host:port` / `[v6]:port` / `host`; the port is `None` when absent.
fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => (rest, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

/// The address a listen option means (`--metrics-listen`, `--dashboard`, `config.metrics`):
/// a bare port (`9464`, `:9464`) is on 127.0.0.1; `HOST:PORT` is taken as written.
pub fn listen_address(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    let port_only = trimmed.strip_prefix(':').unwrap_or(trimmed);
    if port_only.parse::<u16>().is_ok() {
        return Ok(format!("127.0.0.1:{port_only}"));
    }
    let reason = "not an address to listen on; give a port (9464, binds 127.0.0.1), HOST:PORT \
                  (0.0.0.0:9464 for every interface) or [::1]:PORT";
    match trimmed.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(trimmed.to_owned())
        }
        _ => Err(reason.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(target: &str) -> (Scheme, String, u16, String) {
        let e = Endpoint::parse(target).expect(target);
        (e.scheme, e.host, e.port, e.path)
    }

    #[test]
    fn every_scheme_parses_with_its_defaults() {
        assert_eq!(
            parsed("127.0.0.1:9200"),
            (Scheme::Tcp, "127.0.0.1".into(), 9200, "/".into())
        );
        assert_eq!(
            parsed("tcp://chat:1"),
            (Scheme::Tcp, "chat".into(), 1, "/".into())
        );
        assert_eq!(
            parsed("TLS://chat:6697"),
            (Scheme::Tls, "chat".into(), 6697, "/".into())
        );
        assert_eq!(
            parsed("ws://chat/socket?x=1"),
            (Scheme::Ws, "chat".into(), 80, "/socket?x=1".into())
        );
        assert_eq!(
            parsed("wss://chat:8443"),
            (Scheme::Wss, "chat".into(), 8443, "/".into())
        );
        assert_eq!(
            parsed("ws://chat?room=1"),
            (Scheme::Ws, "chat".into(), 80, "/?room=1".into())
        );
        assert_eq!(
            parsed("[::1]:9200"),
            (Scheme::Tcp, "::1".into(), 9200, "/".into())
        );
        let e = Endpoint::parse("wss://[::1]/c").expect("v6");
        assert_eq!(e.to_string(), "wss://[::1]:443/c");
        assert_eq!(e.authority(), "[::1]:443");
        assert_eq!(
            parsed("http://api/v1"),
            (Scheme::Http, "api".into(), 80, "/v1".into())
        );
        assert_eq!(
            parsed("HTTPS://api:8443"),
            (Scheme::Https, "api".into(), 8443, "/".into())
        );
        assert!(Scheme::Https.is_tls() && Scheme::Http.is_http() && !Scheme::Ws.is_http());
        assert_eq!(
            Endpoint::parse("localhost:1").expect("tcp").to_string(),
            "tcp://localhost:1"
        );
    }

    #[test]
    fn bad_targets_say_what_to_write() {
        let err = |t: &str| Endpoint::parse(t).expect_err(t);
        assert!(matches!(
            err("udp://x:1"),
            EndpointError::UnknownScheme { .. }
        ));
        assert!(matches!(err("chat.local"), EndpointError::NoPort(_)));
        assert!(matches!(err("tls://chat"), EndpointError::NoPort(_)));
        assert!(matches!(err("chat:99999"), EndpointError::BadPort { .. }));
        assert!(matches!(err("chat:0"), EndpointError::BadPort { .. }));
        assert!(matches!(err(":9200"), EndpointError::NoHost(_)));
        assert!(matches!(
            err("tcp://chat:1/path"),
            EndpointError::PathOnSocket(_)
        ));
        assert!(err("ftp://x:1").to_string().contains("http or https"));
    }
}
