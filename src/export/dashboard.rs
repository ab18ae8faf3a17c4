//! `run --dashboard ADDR`: a live page in the browser. `GET /` is a small shell (inline CSS
//! and script, no network); `GET /events` streams server-sent events, one per interval, each
//! carrying the run state and the report rendered so far; `GET /state` is the same as one
//! JSON document (for polling); `POST /control` runs a console command (`scale N`, `stop`,
//! `stats`) only when the dashboard was started with control on.
//!
//! The charts and tables are the HTML report's own (`report::render_html` on the results so
//! far), split into its `<style>` and `<body>`: one implementation serves the file and the
//! page. What the page shows is produced by the caller and published through a `watch`
//! channel; a request only reads the last publication.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::http::{self, Body, Handler};

const SHELL: &str = include_str!("../../templates/dashboard.html");

/// The largest control command accepted.
const CONTROL_BYTES: usize = 1024;

/// Where the run is, for the page's header.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunView {
    pub plan: String,
    pub run_id: String,
    pub phase: Option<String>,
    pub elapsed_s: f64,
    pub planned_s: f64,
    pub generator_overloaded: bool,
    /// An `abortOnFail` condition broke: the run stops.
    pub breach: Option<String>,
    /// The run is over and `report` is the final report.
    pub finished: bool,
    /// `POST /control` is open (`--dashboard-control`).
    pub control: bool,
}

/// One publication: the state and the report so far.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LivePage {
    pub state: RunView,
    /// The report's `<style>` contents.
    pub style: String,
    /// The report's `<body>` contents.
    pub body: String,
}

impl LivePage {
    /// Splits a rendered report.html into the page's parts.
    pub fn from_report(state: RunView, report_html: &str) -> LivePage {
        let between = |open: &str, close: &str| -> String {
            let Some(start) = report_html.find(open) else {
                return String::new();
            };
            let after_tag = report_html[start..]
                .find('>')
                .map_or(start, |i| start + i + 1);
            let end = report_html[after_tag..]
                .find(close)
                .map_or(report_html.len(), |i| after_tag + i);
            report_html[after_tag..end].to_owned()
        };
        LivePage {
            state,
            style: between("<style", "</style>"),
            body: between("<body", "</body>"),
        }
    }

    fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// Runs a console command from the page; returns the reply lines.
pub type ControlFn = Arc<dyn Fn(&str) -> Vec<String> + Send + Sync>;

/// The page's handler.
pub struct Dashboard {
    page: watch::Receiver<Arc<LivePage>>,
    control: Option<ControlFn>,
    shutdown: CancellationToken,
}

impl Dashboard {
    /// `control`: `None` keeps the page read-only. `shutdown` ends open event streams.
    pub fn new(
        page: watch::Receiver<Arc<LivePage>>,
        control: Option<ControlFn>,
        shutdown: CancellationToken,
    ) -> Dashboard {
        Dashboard {
            page,
            control,
            shutdown,
        }
    }

    fn events(&self) -> Response<Body> {
        let mut page = self.page.clone();
        let shutdown = self.shutdown.clone();
        // The current page first, then one event per publication until the run's server stops.
        let first = Some(page.borrow_and_update().json());
        let stream = futures_util::stream::unfold(
            (page, shutdown, first),
            |(mut page, shutdown, first)| async move {
                if let Some(json) = first {
                    return Some((event(&json), (page, shutdown, None)));
                }
                tokio::select! {
                    _ = shutdown.cancelled() => None,
                    changed = page.changed() => {
                        changed.ok()?;
                        let json = page.borrow_and_update().json();
                        Some((event(&json), (page, shutdown, None)))
                    }
                }
            },
        );
        let body = StreamBody::new(stream.map(|bytes| Ok::<_, Infallible>(Frame::data(bytes))));
        let mut response = Response::new(BodyExt::boxed(body));
        let headers = response.headers_mut();
        headers.insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(
            hyper::header::CACHE_CONTROL,
            hyper::header::HeaderValue::from_static("no-store"),
        );
        response
    }

    async fn control(&self, request: Request<Incoming>) -> Response<Body> {
        let Some(control) = &self.control else {
            return http::full(
                StatusCode::FORBIDDEN,
                "text/plain; charset=utf-8",
                "the dashboard is read-only; start the run with --dashboard-control to allow \
                 scale, stop and stats from the page\n",
            );
        };
        let text = match Limited::new(request.into_body(), CONTROL_BYTES)
            .collect()
            .await
        {
            Ok(body) => String::from_utf8_lossy(&body.to_bytes()).trim().to_owned(),
            Err(_) => {
                return http::full(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "text/plain; charset=utf-8",
                    "a command is one short line: scale N, stop or stats\n",
                );
            }
        };
        let command = text.split_whitespace().next().unwrap_or_default();
        if !matches!(command, "scale" | "stop" | "stats") {
            return http::full(
                StatusCode::BAD_REQUEST,
                "text/plain; charset=utf-8",
                format!("unknown command {command:?}: the page takes scale N, stop or stats\n"),
            );
        }
        let reply = control(&text).join("\n") + "\n";
        http::full(StatusCode::OK, "text/plain; charset=utf-8", reply)
    }
}

fn event(json: &str) -> Bytes {
    // A JSON document from serde_json has no raw newline, so one `data:` line carries it.
    Bytes::from(format!("data: {json}\n\n"))
}

impl Handler for Dashboard {
    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        match (request.method(), request.uri().path()) {
            (&Method::GET, "/") => {
                // `</` is escaped so the embedded JSON cannot close its <script> element.
                let initial = self.page.borrow().json().replace("</", "<\\/");
                let page = SHELL.replace("__INITIAL_PAGE__", &initial);
                http::full(StatusCode::OK, "text/html; charset=utf-8", page)
            }
            (&Method::GET, "/events") => self.events(),
            (&Method::GET, "/state") => http::full(
                StatusCode::OK,
                "application/json",
                self.page.borrow().json(),
            ),
            (&Method::POST, "/control") => self.control(request).await,
            _ => http::not_found(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_splits_into_its_style_and_body() {
        let html = "<html><head><style>\nh1{color:red}\n</style></head>\
                    <body class=\"x\"><h1>hi</h1></body></html>";
        let page = LivePage::from_report(RunView::default(), html);
        assert_eq!(page.style.trim(), "h1{color:red}");
        assert_eq!(page.body, "<h1>hi</h1>");
        assert!(!page.json().contains('\n'));
    }
}
