//! Threshold expressions: `METRIC.STAT OP VALUE[unit]` joined by `and`/`or`, with parentheses,
//! and the metric names a plan can produce.
//!
//! Values are normalized to the units the metrics module compares in: latencies in
//! milliseconds, rates per second, `errors.rate` in percent.

use super::resolved::{CompareOp, Expr};
use crate::vocab::{ErrorKind, Stat, names};

/// A parse error, with the 1-based column inside the expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column} of the expression: {message}")]
pub struct ExprError {
    pub column: usize,
    pub message: String,
}

/// Histograms that exist in every run (plus `latency.<name>`).
const HISTOGRAMS: &[&str] = &names::STANDARD_HISTOGRAMS;
const GAUGES: &[&str] = &names::STANDARD_GAUGES;

/// Counters a threshold may name besides `errors.<kind>`, `handled.<name>`.
fn is_counter(metric: &str) -> bool {
    names::STANDARD_COUNTERS.contains(&metric)
        || names::OPTIONAL_COUNTERS.contains(&metric)
        || metric
            .strip_prefix(names::WS_CLOSE_PREFIX)
            .is_some_and(|code| code.parse::<u16>().is_ok())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Histogram,
    Counter,
    Gauge,
    /// `errors`: `count` and `rate` (percent of operations).
    Errors,
}

/// The metrics one plan can produce.
#[derive(Debug, Clone, Default)]
pub struct KnownMetrics {
    /// `latency.<name>` names (expect names).
    pub latency_names: Vec<String>,
    /// `handled.<name>` names (named handlers).
    pub handler_names: Vec<String>,
    /// Some handler has no name: its frames count as `handled`.
    pub unnamed_handlers: bool,
    /// Endpoint names of HTTP steps (`http.response_time.<name>`); HTTP metrics exist only
    /// when there is at least one.
    pub http_names: Vec<String>,
    /// Custom histograms of `record` steps.
    pub recorded_names: Vec<String>,
}

impl KnownMetrics {
    fn kind(&self, metric: &str) -> Option<Kind> {
        if HISTOGRAMS.contains(&metric) {
            return Some(Kind::Histogram);
        }
        if is_counter(metric) {
            return Some(Kind::Counter);
        }
        if GAUGES.contains(&metric) {
            return Some(Kind::Gauge);
        }
        if metric == "errors" {
            return Some(Kind::Errors);
        }
        if self.recorded_names.iter().any(|n| n == metric) {
            return Some(Kind::Histogram);
        }
        if metric == "handled" && self.unnamed_handlers {
            return Some(Kind::Counter);
        }
        if let Some(kind) = metric.strip_prefix("errors.") {
            return ErrorKind::parse(kind).map(|_| Kind::Counter);
        }
        if let Some(name) = metric.strip_prefix("latency.") {
            return self
                .latency_names
                .iter()
                .any(|n| n == name)
                .then_some(Kind::Histogram);
        }
        if !self.http_names.is_empty() {
            if names::HTTP_HISTOGRAMS.contains(&metric) {
                return Some(Kind::Histogram);
            }
            if names::HTTP_COUNTERS.contains(&metric) {
                return Some(Kind::Counter);
            }
            if let Some(code) = metric.strip_prefix(names::HTTP_CODES_PREFIX) {
                let status = code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit());
                return status.then_some(Kind::Counter);
            }
            if let Some(name) = metric.strip_prefix(names::HTTP_RESPONSE_TIME_PREFIX) {
                return self
                    .http_names
                    .iter()
                    .any(|n| n == name)
                    .then_some(Kind::Histogram);
            }
        }
        if let Some(name) = metric.strip_prefix("handled.") {
            return self
                .handler_names
                .iter()
                .any(|n| n == name)
                .then_some(Kind::Counter);
        }
        None
    }

    /// Every metric name, for suggestions.
    pub fn all(&self) -> Vec<String> {
        let mut out: Vec<String> = HISTOGRAMS
            .iter()
            .chain(&names::STANDARD_COUNTERS)
            .chain(&names::OPTIONAL_COUNTERS)
            .chain(GAUGES)
            .map(|s| s.to_string())
            .collect();
        out.push("errors".to_owned());
        if self.unnamed_handlers {
            out.push("handled".to_owned());
        }
        out.extend(ErrorKind::ALL.into_iter().map(names::error));
        out.extend(self.latency_names.iter().map(|n| format!("latency.{n}")));
        out.extend(self.handler_names.iter().map(|n| format!("handled.{n}")));
        if !self.http_names.is_empty() {
            out.extend(names::HTTP_HISTOGRAMS.iter().map(|s| s.to_string()));
            out.extend(names::HTTP_COUNTERS.iter().map(|s| s.to_string()));
            out.extend(self.http_names.iter().map(|n| names::http_response_time(n)));
        }
        out.extend(self.recorded_names.iter().cloned());
        out
    }

    /// Checks that `metric.stat` with `unit` exists and returns the value in the compared unit.
    pub fn check(
        &self,
        metric: &str,
        stat: Stat,
        value: f64,
        unit: Option<&str>,
    ) -> Result<f64, String> {
        let Some(kind) = self.kind(metric) else {
            let all = self.all();
            let mut msg = format!("the plan produces no metric `{metric}`");
            if let Some(s) = super::problem::suggest(metric, all.iter().map(String::as_str)) {
                msg.push_str(&format!(", did you mean `{s}`?"));
            } else if metric.starts_with("latency.") && self.latency_names.is_empty() {
                msg.push_str(
                    "; `latency.<name>` comes from `expect` steps, and this plan has none",
                );
            } else if metric.starts_with("latency.") {
                msg.push_str(&format!(
                    "; latency metrics here: {}",
                    self.latency_names
                        .iter()
                        .map(|n| format!("latency.{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            return Err(msg);
        };
        let time_stat = !matches!(stat, Stat::Count | Stat::Rate);
        match kind {
            Kind::Histogram if time_stat => match unit {
                None | Some("ms") => Ok(value),
                Some("s") => Ok(value * 1000.0),
                Some(u) => Err(format!("`{u}` does not fit a latency; use ms or s")),
            },
            Kind::Gauge if stat != Stat::Max => Err(format!(
                "`{metric}` is a gauge: only `{metric}.max` can be compared"
            )),
            Kind::Counter | Kind::Errors if time_stat => Err(format!(
                "`{metric}` is a counter: compare `{metric}.count` or `{metric}.rate`"
            )),
            Kind::Errors if stat == Stat::Rate => match unit {
                None | Some("%") => Ok(value),
                Some(u) => Err(format!(
                    "`errors.rate` is a percentage of operations; write e.g. `1%`, not `{u}`"
                )),
            },
            _ => match (stat, unit) {
                (Stat::Rate, None | Some("/s")) => Ok(value),
                (Stat::Count, None) => Ok(value),
                (Stat::Max, None) => Ok(value),
                (_, Some(u)) => Err(format!("unit `{u}` does not fit `{metric}`")),
                _ => Ok(value),
            },
        }
    }
}

/// Parses an expression, checking every metric against `known`.
pub fn parse_expression(text: &str, known: &KnownMetrics) -> Result<Expr, ExprError> {
    let tokens = tokenize(text)?;
    let mut parser = ExprParser {
        tokens,
        at: 0,
        end: text.chars().count() + 1,
        known,
    };
    let expr = parser.or()?;
    if let Some(tok) = parser.tokens.get(parser.at) {
        return Err(ExprError {
            column: tok.column,
            message: format!(
                "unexpected `{}`; join comparisons with `and` or `or`",
                tok.text
            ),
        });
    }
    Ok(expr)
}

#[derive(Debug, Clone)]
struct Token {
    text: String,
    column: usize,
}

fn tokenize(text: &str) -> Result<Vec<Token>, ExprError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let column = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c == '(' || c == ')' {
            i += 1;
        } else if "<>=!".contains(c) {
            i += 1;
            if chars.get(i) == Some(&'=') {
                i += 1;
            }
        } else if c.is_ascii_alphanumeric() || "._-%/".contains(c) {
            while chars
                .get(i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || "._-%/".contains(*c))
            {
                i += 1;
            }
        } else {
            return Err(ExprError {
                column,
                message: format!("unexpected character `{c}`"),
            });
        }
        out.push(Token {
            text: chars.get(start..i).unwrap_or_default().iter().collect(),
            column,
        });
    }
    Ok(out)
}

struct ExprParser<'k> {
    tokens: Vec<Token>,
    at: usize,
    end: usize,
    known: &'k KnownMetrics,
}

impl ExprParser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self, wanted: &str) -> Result<Token, ExprError> {
        let tok = self.tokens.get(self.at).cloned().ok_or(ExprError {
            column: self.end,
            message: format!("the expression ends where {wanted} was expected"),
        })?;
        self.at += 1;
        Ok(tok)
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.and()?;
        while self.peek().is_some_and(|t| t.text == "or") {
            self.at += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.atom()?;
        while self.peek().is_some_and(|t| t.text == "and") {
            self.at += 1;
            let right = self.atom()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn atom(&mut self) -> Result<Expr, ExprError> {
        let tok = self.next("a comparison such as `latency.chat.p95 < 200ms`")?;
        if tok.text == "(" {
            let inner = self.or()?;
            let close = self.next("`)`")?;
            if close.text != ")" {
                return Err(ExprError {
                    column: close.column,
                    message: format!("expected `)`, found `{}`", close.text),
                });
            }
            return Ok(inner);
        }
        let (metric, stat_name) = tok.text.rsplit_once('.').ok_or_else(|| ExprError {
            column: tok.column,
            message: format!(
                "`{}` is not METRIC.STAT (e.g. `latency.chat.p95`, `errors.rate`)",
                tok.text
            ),
        })?;
        let stat = Stat::parse(stat_name).ok_or_else(|| {
            let mut message = format!("unknown statistic `{stat_name}`");
            if let Some(s) = super::problem::suggest(stat_name, Stat::ALL.map(Stat::as_str)) {
                message.push_str(&format!(", did you mean `{s}`?"));
            } else {
                message.push_str(&format!(
                    "; use one of {}",
                    Stat::ALL.map(Stat::as_str).join(", ")
                ));
            }
            ExprError {
                column: tok.column + metric.chars().count() + 1,
                message,
            }
        })?;
        let op_tok = self.next("a comparison operator (<, <=, >, >=, ==, !=)")?;
        let op = match op_tok.text.as_str() {
            "<" => CompareOp::Lt,
            "<=" => CompareOp::Le,
            ">" => CompareOp::Gt,
            ">=" => CompareOp::Ge,
            "==" | "=" => CompareOp::Eq,
            "!=" => CompareOp::Ne,
            other => {
                return Err(ExprError {
                    column: op_tok.column,
                    message: format!(
                        "expected a comparison operator (<, <=, >, >=, ==, !=), found `{other}`"
                    ),
                });
            }
        };
        let value_tok = self.next("a value such as `200ms` or `1%`")?;
        let split = value_tok
            .text
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .unwrap_or(value_tok.text.len());
        let (number, unit) = value_tok.text.split_at(split);
        let value: f64 = number.parse().map_err(|_| ExprError {
            column: value_tok.column,
            message: format!("`{}` is not a number", value_tok.text),
        })?;
        let unit = match unit {
            "" => None,
            "ms" | "s" | "%" | "/s" => Some(unit),
            other => {
                return Err(ExprError {
                    column: value_tok.column + split,
                    message: format!("unknown unit `{other}`; use ms, s, % or /s"),
                });
            }
        };
        let value = self
            .known
            .check(metric, stat, value, unit)
            .map_err(|message| ExprError {
                column: tok.column,
                message,
            })?;
        Ok(Expr::Compare {
            metric: metric.to_owned(),
            stat,
            op,
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> KnownMetrics {
        KnownMetrics {
            latency_names: vec!["chat".into()],
            handler_names: vec![],
            unnamed_handlers: false,
            http_names: vec!["login".into()],
            recorded_names: vec![],
        }
    }

    #[test]
    fn parses_and_normalizes() {
        let e = parse_expression("delivery.p99 < 0.5s and errors.rate < 1%", &known()).unwrap();
        let Expr::And(a, b) = e else { panic!() };
        assert_eq!(
            *a,
            Expr::Compare {
                metric: "delivery".into(),
                stat: Stat::P99,
                op: CompareOp::Lt,
                value: 500.0
            }
        );
        assert!(matches!(*b, Expr::Compare { stat: Stat::Rate, value, .. } if value == 1.0));
    }

    #[test]
    fn precedence_and_parentheses() {
        let e = parse_expression(
            "connect.p95 < 10 or (latency.chat.max < 1s and messages.sent.rate > 5/s)",
            &known(),
        )
        .unwrap();
        assert!(matches!(e, Expr::Or(_, ref r) if matches!(**r, Expr::And(..))));
    }

    #[test]
    fn errors_carry_columns() {
        let err = parse_expression("latency.chat.p95 < ", &known()).unwrap_err();
        assert_eq!(err.column, 20);
        let err = parse_expression("latency.chat.mena < 2", &known()).unwrap_err();
        assert_eq!(err.column, 14);
        assert!(err.message.contains("`mean`"));
        let err = parse_expression("latency.chta.p95 < 2", &known()).unwrap_err();
        assert_eq!(err.column, 1);
        assert!(err.message.contains("latency.chat"), "{}", err.message);
        let err = parse_expression("vusers.active.p95 < 2", &known()).unwrap_err();
        assert!(err.message.contains("gauge"));
    }

    #[test]
    fn http_metrics_exist_only_with_http_steps() {
        let ok = |text: &str| parse_expression(text, &known()).map(|_| ());
        ok("http.response_time.p95 < 300").unwrap();
        ok("http.response_time.login.p99 < 1s").unwrap();
        ok("http.codes.500.count == 0 and http.requests.rate > 5/s").unwrap();
        ok("http.downloaded_bytes.count > 0 and http.total.p99 < 2s").unwrap();
        let err = ok("http.response_time.logn.p99 < 1s").unwrap_err();
        assert!(
            err.message
                .contains("did you mean `http.response_time.login`"),
            "{}",
            err.message
        );
        assert!(ok("http.codes.5xx.count == 0").is_err());
        assert!(
            ok("http.requests.p95 < 1")
                .unwrap_err()
                .message
                .contains("counter")
        );
        let no_http = KnownMetrics {
            http_names: Vec::new(),
            ..known()
        };
        assert!(parse_expression("http.response_time.p95 < 300", &no_http).is_err());
    }
}
