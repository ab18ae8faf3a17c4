//! Validation of the HTTP side of a plan: `config.http` (with Artillery's
//! `config.defaults.headers`) and the request steps
//! (`get`, `post`, ...) with their bodies, captures and expectations.
//!
//! The flow validator only hooks in here (`method_keys`, `step`, `captured`); which engine a
//! scenario runs on is `engines`'s.

use std::collections::{BTreeMap, BTreeSet};

use super::super::http::*;
use super::super::problem::{Seg, idx, key, suggest};
use super::super::raw::{
    RawConfig, RawHttpCapture, RawHttpExpect, RawHttpRequest, RawScalar, RawStep,
};
use super::super::resolved::{SendSpec, Step, Text};
use super::Ctx;
use super::messages::{MessageParts, message_body};
use super::sends::json_pointer;

/// `config.http`, and `config.defaults.headers` (Artillery's place for the same headers).
pub(super) fn settings(ctx: &mut Ctx, path: &[Seg], config: &RawConfig) -> HttpSettings {
    let mut out = HttpSettings::default();
    let none = BTreeSet::new();
    if let Some(headers) = config.defaults.as_ref().and_then(|d| d.headers.as_ref()) {
        let at = key(&key(path, "defaults"), "headers");
        out.headers = header_list(ctx, &at, headers, &none);
    }
    let Some(raw) = &config.http else {
        return out;
    };
    let at = key(path, "http");
    out.timeout = raw
        .timeout
        .as_ref()
        .and_then(|t| ctx.positive_duration(&key(&at, "timeout"), t));
    match raw.max_sockets {
        Some(0) => ctx.out.error(
            &key(&at, "maxSockets"),
            "`maxSockets` must be above 0",
            None,
        ),
        Some(n) => out.max_sockets = n,
        None => {}
    }
    match raw.pool {
        Some(0) => ctx.out.error(
            &key(&at, "pool"),
            "`pool` must be above 0",
            Some("leave it out for one set of keep-alive connections per vuser".to_owned()),
        ),
        pool => out.pool = pool,
    }
    out.extended_metrics = raw.extended_metrics.unwrap_or(false);
    out.cookies = raw.cookies.unwrap_or(true);
    out.http2 = raw.http2.unwrap_or(false);
    if let Some(defaults) = &raw.defaults {
        let hp = key(&key(&at, "defaults"), "headers");
        // Both spellings may be written: `config.http.defaults` wins per header.
        let mut merged: Vec<(String, Text)> = header_list(ctx, &hp, &defaults.headers, &none);
        for (name, value) in std::mem::take(&mut out.headers) {
            if !merged.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                merged.push((name, value));
            }
        }
        out.headers = merged;
    }
    out
}

/// The HTTP method whose key a flow item has, if any (at most one is checked by the caller).
pub(super) fn method_keys(s: &RawStep) -> [(&'static str, bool); 7] {
    HttpMethod::ALL.map(|m| (m.key(), request_of(s, m).is_some()))
}

fn request_of(s: &RawStep, method: HttpMethod) -> Option<&RawHttpRequest> {
    match method {
        HttpMethod::Get => s.get.as_ref(),
        HttpMethod::Post => s.post.as_ref(),
        HttpMethod::Put => s.put.as_ref(),
        HttpMethod::Patch => s.patch.as_ref(),
        HttpMethod::Delete => s.delete.as_ref(),
        HttpMethod::Head => s.head.as_ref(),
        HttpMethod::Options => s.options.as_ref(),
    }
}

/// The variables a flow item's HTTP captures set.
pub(super) fn captured(s: &RawStep, out: &mut BTreeSet<String>) {
    for method in HttpMethod::ALL {
        if let Some(request) = request_of(s, method) {
            out.extend(
                request
                    .capture
                    .iter()
                    .flat_map(|c| c.0.iter().map(|c| c.as_var.clone())),
            );
        }
    }
}

/// One request step; `method` is the flow item's one step key.
pub(super) fn step(
    ctx: &mut Ctx,
    path: &[Seg],
    s: &RawStep,
    method: &str,
    locals: &BTreeSet<String>,
) -> Option<Step> {
    let method = HttpMethod::ALL.into_iter().find(|m| m.key() == method)?;
    let raw = request_of(s, method)?;
    let at = key(path, method.key());
    let url_text = raw.url.trim();
    let url_ok = url_text.starts_with('/')
        || url_text.starts_with("http://")
        || url_text.starts_with("https://")
        || url_text.starts_with("{{");
    if !url_ok {
        ctx.out.error(
            &key(&at, "url"),
            format!("`{url_text}` is not a URL"),
            Some("write a path such as `/items` or an absolute `http://host/path`".to_owned()),
        );
    }
    let url = ctx
        .templates
        .text(ctx.out, &key(&at, "url"), url_text, locals);
    let name = raw.name.clone().unwrap_or_else(|| url_text.to_owned());
    if name.trim().is_empty() {
        ctx.out.error(&key(&at, "name"), "`name` is empty", None);
    }
    ctx.metrics.http_names.push(name.clone());
    let headers = header_list(ctx, &key(&at, "headers"), &raw.headers, locals);
    let query = text_list(ctx, &key(&at, "qs"), &raw.qs, locals);
    let body = body(ctx, &at, raw, locals);
    let captures = captures(ctx, &at, raw);
    let expects = expects(ctx, &at, raw, locals);
    let timeout = raw
        .timeout
        .as_ref()
        .and_then(|t| ctx.positive_duration(&key(&at, "timeout"), t));
    if raw.gzip.is_some() && raw.compressed.is_some() && raw.gzip != raw.compressed {
        ctx.out.key_error(
            &key(&at, "compressed"),
            "`gzip` and `compressed` are the same switch, set to different values",
            Some("keep one of them".to_owned()),
        );
    }
    Some(Step::Http(Box::new(HttpRequest {
        method,
        url: url?,
        name,
        headers,
        query,
        body: body?,
        captures: captures?,
        expects: expects?,
        follow_redirect: raw.follow_redirect.unwrap_or(true),
        gzip: raw.gzip.or(raw.compressed).unwrap_or(false),
        timeout,
    })))
}

/// Headers: valid names, values compiled as templates. A bad one is reported and left out.
fn header_list(
    ctx: &mut Ctx,
    at: &[Seg],
    headers: &BTreeMap<String, RawScalar>,
    locals: &BTreeSet<String>,
) -> Vec<(String, Text)> {
    let mut out = Vec::new();
    for (name, value) in headers {
        let hp = key(at, name);
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            ctx.out
                .key_error(&hp, format!("`{name}` is not an HTTP header name"), None);
            continue;
        }
        if let Some(text) = ctx.templates.text(ctx.out, &hp, &value.0, locals) {
            out.push((name.clone(), text));
        }
    }
    out
}

fn text_list(
    ctx: &mut Ctx,
    at: &[Seg],
    values: &BTreeMap<String, RawScalar>,
    locals: &BTreeSet<String>,
) -> Vec<(String, Text)> {
    let mut out = Vec::new();
    for (name, value) in values {
        if let Some(text) = ctx
            .templates
            .text(ctx.out, &key(at, name), &value.0, locals)
        {
            out.push((name.clone(), text));
        }
    }
    out
}

/// At most one of `json`, `body`, `form`, `formData`.
fn body(
    ctx: &mut Ctx,
    at: &[Seg],
    raw: &RawHttpRequest,
    locals: &BTreeSet<String>,
) -> Option<HttpBody> {
    let kinds = [
        ("json", raw.json.is_some()),
        ("body", raw.body.is_some()),
        ("form", raw.form.is_some()),
        ("formData", raw.form_data.is_some()),
    ];
    if !kinds.iter().any(|(_, on)| *on) {
        return Some(HttpBody::None);
    }
    let which = ctx.exactly_one(at, "a request body", &kinds)?;
    let parts = |json, body| MessageParts {
        type_id: None,
        body,
        fields: None,
        json,
        hex: None,
    };
    match which {
        "json" => message_body(ctx, at, parts(raw.json.as_ref(), None), locals).map(|m| {
            HttpBody::Message {
                spec: SendSpec::Inline(m),
                json: true,
            }
        }),
        "body" => message_body(ctx, at, parts(None, raw.body.as_deref()), locals).map(|m| {
            HttpBody::Message {
                spec: SendSpec::Inline(m),
                json: false,
            }
        }),
        "form" => Some(HttpBody::Form(text_list(
            ctx,
            &key(at, "form"),
            raw.form.as_ref()?,
            locals,
        ))),
        _ => Some(HttpBody::Multipart(text_list(
            ctx,
            &key(at, "formData"),
            raw.form_data.as_ref()?,
            locals,
        ))),
    }
}

/// `$.a.b[0].c`, `a.b` or `/a/b` as a JSON pointer.
fn pointer(path: &str) -> Option<String> {
    let path = path.trim();
    if path == "$" {
        return Some(String::new());
    }
    // `[0]` indexes are pointer segments too.
    let dotted = path.replace("][", ".").replace('[', ".").replace(']', "");
    json_pointer(&dotted)
}

fn captures(ctx: &mut Ctx, at: &[Seg], raw: &RawHttpRequest) -> Option<Vec<HttpCapture>> {
    let Some(list) = &raw.capture else {
        return Some(Vec::new());
    };
    let base = key(at, "capture");
    let mut out = Vec::new();
    let mut ok = true;
    for (i, c) in list.0.iter().enumerate() {
        let cp = if list.0.len() > 1 {
            idx(&base, i)
        } else {
            base.clone()
        };
        match capture(ctx, &cp, c) {
            Some(c) => out.push(c),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn capture(ctx: &mut Ctx, cp: &[Seg], c: &RawHttpCapture) -> Option<HttpCapture> {
    let which = ctx.exactly_one(
        cp,
        "a capture",
        &[
            ("json", c.json.is_some()),
            ("header", c.header.is_some()),
            ("regexp", c.regexp.is_some()),
        ],
    )?;
    if c.as_var.trim().is_empty() {
        ctx.out.error(&key(cp, "as"), "`as` is empty", None);
        return None;
    }
    if c.group.is_some() && which != "regexp" {
        ctx.out
            .key_error(&key(cp, "group"), "`group` only applies to `regexp`", None);
        return None;
    }
    let from = match which {
        "json" => {
            let written = c.json.as_deref().unwrap_or_default();
            match pointer(written) {
                Some(p) => HttpCaptureFrom::Json(p),
                None => {
                    ctx.out.error(
                        &key(cp, "json"),
                        format!("`{written}` is not a JSON path (`$.a.b`) or pointer (`/a/b`)"),
                        None,
                    );
                    return None;
                }
            }
        }
        "header" => {
            let name = c.header.as_deref().unwrap_or_default();
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                ctx.out.error(
                    &key(cp, "header"),
                    format!("`{name}` is not an HTTP header name"),
                    None,
                );
                return None;
            }
            HttpCaptureFrom::Header(name.to_ascii_lowercase())
        }
        _ => {
            let written = c.regexp.as_deref().unwrap_or_default();
            let regex = compile(ctx, &key(cp, "regexp"), written)?;
            let group = match c.group.as_ref().map(|g| g.0.trim()) {
                None if regex.captures_len() > 1 => RegexGroup::Index(1),
                None => RegexGroup::Index(0),
                Some(g) => match g.parse::<usize>() {
                    Ok(n) if n < regex.captures_len() => RegexGroup::Index(n),
                    Ok(n) => {
                        ctx.out.error(
                            &key(cp, "group"),
                            format!("the regex has no group {n}"),
                            None,
                        );
                        return None;
                    }
                    Err(_) if regex.capture_names().flatten().any(|n| n == g) => {
                        RegexGroup::Name(g.to_owned())
                    }
                    Err(_) => {
                        let mut message = format!("the regex has no group named `{g}`");
                        if let Some(s) = suggest(g, regex.capture_names().flatten()) {
                            message.push_str(&format!(", did you mean `{s}`?"));
                        }
                        ctx.out.error(&key(cp, "group"), message, None);
                        return None;
                    }
                },
            };
            HttpCaptureFrom::Regex {
                regex: HttpRegex(regex),
                group,
            }
        }
    };
    Some(HttpCapture {
        variable: c.as_var.trim().to_owned(),
        from,
        strict: c.strict.unwrap_or(true),
    })
}

fn compile(ctx: &mut Ctx, at: &[Seg], written: &str) -> Option<regex::Regex> {
    match regex::Regex::new(written) {
        Ok(r) => Some(r),
        Err(err) => {
            ctx.out
                .error(at, format!("`{written}` is not a valid regex: {err}"), None);
            None
        }
    }
}

fn expects(
    ctx: &mut Ctx,
    at: &[Seg],
    raw: &RawHttpRequest,
    locals: &BTreeSet<String>,
) -> Option<Vec<HttpExpect>> {
    let Some(list) = &raw.expect else {
        return Some(Vec::new());
    };
    let base = key(at, "expect");
    let mut out = Vec::new();
    let mut ok = true;
    for (i, e) in list.0.iter().enumerate() {
        let ep = if list.0.len() > 1 {
            idx(&base, i)
        } else {
            base.clone()
        };
        ok &= expect(ctx, &ep, e, locals, &mut out);
    }
    ok.then_some(out)
}

/// Every key of one expect map is a check; false when one was wrong.
fn expect(
    ctx: &mut Ctx,
    ep: &[Seg],
    e: &RawHttpExpect,
    locals: &BTreeSet<String>,
    out: &mut Vec<HttpExpect>,
) -> bool {
    let mut ok = true;
    let before = out.len();
    if let Some(codes) = &e.status_code {
        if let Some(bad) = codes.0.iter().find(|c| !(100..=999).contains(*c)) {
            ctx.out.error(
                &key(ep, "statusCode"),
                format!("{bad} is not an HTTP status"),
                None,
            );
            ok = false;
        } else {
            out.push(HttpExpect::StatusCode(codes.0.clone()));
        }
    }
    if let Some(ct) = &e.content_type {
        out.push(HttpExpect::ContentType(ct.trim().to_ascii_lowercase()));
    }
    if let Some(h) = &e.has_header {
        out.push(HttpExpect::HasHeader(h.trim().to_ascii_lowercase()));
    }
    if let Some(p) = &e.has_property {
        match pointer(p) {
            Some(p) => out.push(HttpExpect::HasProperty(p)),
            None => {
                ctx.out.error(
                    &key(ep, "hasProperty"),
                    format!("`{p}` is not a property path (`a.b` or `$.a.b`)"),
                    None,
                );
                ok = false;
            }
        }
    }
    if let Some(values) = &e.equals {
        if values.len() < 2 {
            ctx.out.error(
                &key(ep, "equals"),
                "`equals` compares two or more values",
                Some("e.g. `equals: [\"{{ id }}\", \"42\"]`".to_owned()),
            );
            ok = false;
        } else {
            let mut texts = Vec::new();
            for (i, v) in values.iter().enumerate() {
                match ctx
                    .templates
                    .text(ctx.out, &idx(&key(ep, "equals"), i), &v.0, locals)
                {
                    Some(t) => texts.push(t),
                    None => ok = false,
                }
            }
            out.push(HttpExpect::Equals(texts));
        }
    }
    if let Some(re) = &e.matches_regexp {
        match compile(ctx, &key(ep, "matchesRegexp"), re) {
            Some(r) => out.push(HttpExpect::MatchesRegexp(HttpRegex(r))),
            None => ok = false,
        }
    }
    if ok && out.len() == before {
        ctx.out.error(
            ep,
            "an expect needs a check: statusCode, contentType, hasHeader, hasProperty, \
             equals or matchesRegexp",
            None,
        );
        ok = false;
    }
    ok
}
