//! Reading plan text: YAML or TOML into one `serde_json::Value` tree plus a position index
//! (plan path → line:column). This is the only module that names `serde_yaml`, `yaml_rust2` and
//! `toml`.
//!
//! serde_yaml gives the values (and positions for syntax errors) but no node positions, so YAML
//! is read a second time with yaml-rust2's span-aware event parser just to build the index;
//! TOML positions come from toml's spanned `DeTable`. It does not interpret the plan.
//!
//! Both syntaxes build their value tree through [`BoundedValue`] (depth, nodes and bytes after
//! alias expansion are bounded); YAML is first walked once, event by event, to refuse deep
//! nesting before libyaml spends time quadratic in the depth on it.

use std::path::Path;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use serde::de::DeserializeSeed;

use super::bounds::{BoundedValue, Budget, MAX_DEPTH, depth_message};
use super::problem::{NodePos, Pos, PositionIndex, Seg};

/// The syntax of a plan file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Toml,
}

impl Format {
    /// `.toml` is TOML; `.yml`, `.yaml` and anything else is YAML.
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("toml") => Format::Toml,
            _ => Format::Yaml,
        }
    }
}

/// A syntax error, with the parser's position.
#[derive(Debug, Clone)]
pub(crate) struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses `text` into a value tree and the positions of its nodes.
pub(crate) fn parse(
    text: &str,
    format: Format,
) -> Result<(serde_json::Value, PositionIndex), SyntaxError> {
    match format {
        Format::Yaml => parse_yaml(text),
        Format::Toml => parse_toml(text),
    }
}

/// Refuses YAML nested deeper than [`MAX_DEPTH`], at the node that goes too deep, reading
/// only as far as that node. A document yaml-rust2 cannot read is left to serde_yaml's verdict.
/// A `-v NAME=VALUE` value read as YAML, so it keeps its type (`5` a number, `true` a
/// boolean, `[a, b]` a list); text that is not a YAML value, or is empty, stays a string.
pub(crate) fn yaml_value(text: &str) -> serde_json::Value {
    if text.trim().is_empty() {
        return serde_json::Value::String(text.to_owned());
    }
    serde_yaml::from_str::<serde_json::Value>(text)
        .unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

fn check_yaml_depth(text: &str) -> Result<(), SyntaxError> {
    let mut parser = Parser::new_from_str(text);
    let mut depth = 0usize;
    loop {
        let Ok((event, mark)) = parser.next_token() else {
            return Ok(());
        };
        match event {
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(SyntaxError {
                        pos: marker_pos(mark),
                        message: depth_message(),
                    });
                }
            }
            Event::MappingEnd | Event::SequenceEnd => depth = depth.saturating_sub(1),
            Event::StreamEnd => return Ok(()),
            _ => {}
        }
    }
}

fn parse_yaml(text: &str) -> Result<(serde_json::Value, PositionIndex), SyntaxError> {
    check_yaml_depth(text)?;
    let bounded = BoundedValue {
        budget: &mut Budget::default(),
        depth: 0,
    }
    .deserialize(serde_yaml::Deserializer::from_str(text));
    let value: serde_json::Value = match bounded {
        Ok(value) => value,
        Err(err) => {
            let pos = err
                .location()
                .map(|l| Pos {
                    line: l.line(),
                    column: l.column(),
                })
                .unwrap_or(Pos { line: 1, column: 1 });
            let mut message = err.to_string();
            // serde_yaml appends the position we report separately.
            if let Some(cut) = message.find(" at line ") {
                message.truncate(cut);
            }
            // A bound (`bounds`) is not a syntax error: its message stands alone (serde_yaml
            // puts the path of the node before it; the position says where).
            match message.find("the plan ") {
                Some(start) => message = message.split_off(start),
                None => message = format!("YAML syntax error: {message}"),
            }
            return Err(SyntaxError { pos, message });
        }
    };
    let mut builder = YamlIndexBuilder::default();
    // A document serde_yaml accepted but yaml-rust2 does not only loses positions, not values.
    let _ = Parser::new_from_str(text).load(&mut builder, false);
    Ok((value, builder.index))
}

enum Frame {
    Map {
        path: Vec<Seg>,
        /// The key just read, waiting for its value.
        key: Option<(String, Pos)>,
        /// No key read yet.
        first: bool,
    },
    Seq {
        path: Vec<Seg>,
        next: usize,
    },
    /// A complex (non-scalar) mapping key: its nodes are not indexed.
    Skip {
        depth: usize,
    },
}

#[derive(Default)]
struct YamlIndexBuilder {
    stack: Vec<Frame>,
    index: PositionIndex,
    root_done: bool,
}

fn marker_pos(mark: Marker) -> Pos {
    Pos {
        line: mark.line(),
        column: mark.col() + 1,
    }
}

impl YamlIndexBuilder {
    /// Decides where the node starting at `pos` sits; `None` when it is a map key.
    fn place(&mut self, scalar: Option<&str>, pos: Pos) -> Option<Vec<Seg>> {
        match self.stack.last_mut() {
            None => {
                if self.root_done {
                    return None;
                }
                self.root_done = true;
                self.index.insert(
                    Vec::new(),
                    NodePos {
                        key: None,
                        value: pos,
                    },
                );
                Some(Vec::new())
            }
            Some(Frame::Map { path, key, first }) => match key.take() {
                None => {
                    *key = Some((scalar.unwrap_or_default().to_owned(), pos));
                    // A block mapping's start event comes after its first key: the map begins
                    // where that key does.
                    if std::mem::take(first) {
                        self.index.move_before(path, pos);
                    }
                    None
                }
                Some((name, key_pos)) => {
                    let mut child = path.clone();
                    child.push(Seg::Key(name));
                    self.index.insert(
                        child.clone(),
                        NodePos {
                            key: Some(key_pos),
                            value: pos,
                        },
                    );
                    Some(child)
                }
            },
            Some(Frame::Seq { path, next }) => {
                let mut child = path.clone();
                child.push(Seg::Index(*next));
                *next += 1;
                self.index.insert(
                    child.clone(),
                    NodePos {
                        key: None,
                        value: pos,
                    },
                );
                Some(child)
            }
            Some(Frame::Skip { .. }) => None,
        }
    }
}

impl MarkedEventReceiver for YamlIndexBuilder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = marker_pos(mark);
        if let Some(Frame::Skip { depth }) = self.stack.last_mut() {
            match ev {
                Event::MappingStart(..) | Event::SequenceStart(..) => *depth += 1,
                Event::MappingEnd | Event::SequenceEnd => {
                    *depth -= 1;
                    if *depth == 0 {
                        self.stack.pop();
                        // The complex key is done: its value follows under an unknown name.
                        if let Some(Frame::Map { key, first, .. }) = self.stack.last_mut() {
                            *first = false;
                            *key = Some(("?".to_owned(), pos));
                        }
                    }
                }
                _ => {}
            }
            return;
        }
        let is_key = matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
        match ev {
            Event::Scalar(text, style, ..) => {
                let empty = text.is_empty() && style == yaml_rust2::scanner::TScalarStyle::Plain;
                if let Some(path) = self.place(Some(&text), pos) {
                    // An empty value (`send:`) is reported where its key is: the parser places
                    // it at the next token, often on a later line.
                    if empty {
                        self.index.value_at_key(&path);
                    }
                }
            }
            Event::Alias(_) => {
                self.place(None, pos);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) if is_key => {
                self.stack.push(Frame::Skip { depth: 1 });
            }
            Event::MappingStart(..) => {
                if let Some(path) = self.place(None, pos) {
                    self.stack.push(Frame::Map {
                        path,
                        key: None,
                        first: true,
                    });
                }
            }
            Event::SequenceStart(..) => {
                if let Some(path) = self.place(None, pos) {
                    self.stack.push(Frame::Seq { path, next: 0 });
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

fn parse_toml(text: &str) -> Result<(serde_json::Value, PositionIndex), SyntaxError> {
    let lines = LineIndex::new(text);
    let spanned = toml::de::DeTable::parse(text).map_err(|err| SyntaxError {
        pos: lines.pos(err.span().map(|s| s.start).unwrap_or(0)),
        message: format!("TOML syntax error: {}", err.message().trim()),
    })?;
    let toml_error = |err: toml::de::Error| SyntaxError {
        pos: lines.pos(err.span().map(|s| s.start).unwrap_or(0)),
        message: match err.message().trim() {
            bound if bound.contains("the plan ") => bound.to_owned(),
            other => format!("TOML error: {other}"),
        },
    };
    let value = BoundedValue {
        budget: &mut Budget::default(),
        depth: 0,
    }
    .deserialize(toml::Deserializer::parse(text).map_err(toml_error)?)
    .map_err(toml_error)?;
    let mut index = PositionIndex::default();
    index.insert(
        Vec::new(),
        NodePos {
            key: None,
            value: lines.pos(spanned.span().start),
        },
    );
    index_toml_table(spanned.get_ref(), &mut Vec::new(), &lines, &mut index);
    Ok((value, index))
}

fn index_toml_table(
    table: &toml::de::DeTable<'_>,
    path: &mut Vec<Seg>,
    lines: &LineIndex,
    index: &mut PositionIndex,
) {
    for (k, v) in table.iter() {
        path.push(Seg::Key(k.get_ref().to_string()));
        index.insert(
            path.clone(),
            NodePos {
                key: Some(lines.pos(k.span().start)),
                value: lines.pos(v.span().start),
            },
        );
        index_toml_value(v.get_ref(), path, lines, index);
        path.pop();
    }
}

fn index_toml_value(
    value: &toml::de::DeValue<'_>,
    path: &mut Vec<Seg>,
    lines: &LineIndex,
    index: &mut PositionIndex,
) {
    match value {
        toml::de::DeValue::Table(t) => index_toml_table(t, path, lines, index),
        toml::de::DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                index.insert(
                    path.clone(),
                    NodePos {
                        key: None,
                        value: lines.pos(item.span().start),
                    },
                );
                index_toml_value(item.get_ref(), path, lines, index);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Byte offset → 1-based line and column (in characters).
struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    fn pos(&self, offset: usize) -> Pos {
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset.min(self.text.len()))
            .map(|s| s.chars().count())
            .unwrap_or(0)
            + 1;
        Pos { line, column }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(index: &PositionIndex, path: &[Seg], key: bool) -> (usize, usize) {
        let p = index.locate(path, key);
        (p.line, p.column)
    }

    fn k(s: &str) -> Seg {
        Seg::Key(s.to_owned())
    }

    #[test]
    fn yaml_positions_cover_block_and_flow_nodes() {
        let text = "config:\n  phases:\n    - duration: 1s\n      vusers: 2\n    - {pause: 3s}\nlist: [a, {b: c}]\n";
        let (value, index) = parse(text, Format::Yaml).unwrap();
        assert_eq!(value["config"]["phases"][1]["pause"], "3s");
        let phases = [k("config"), k("phases")];
        assert_eq!(
            at(
                &index,
                &[phases.to_vec(), vec![Seg::Index(0)]].concat(),
                false
            ),
            (3, 7)
        );
        let vusers = [phases.to_vec(), vec![Seg::Index(0), k("vusers")]].concat();
        assert_eq!(at(&index, &vusers, false), (4, 15));
        assert_eq!(at(&index, &vusers, true), (4, 7));
        let pause = [phases.to_vec(), vec![Seg::Index(1), k("pause")]].concat();
        assert_eq!(at(&index, &pause, false), (5, 15));
        assert_eq!(
            at(&index, &[k("list"), Seg::Index(1), k("b")], false),
            (6, 15)
        );
        // Unknown paths fall back to the nearest ancestor.
        assert_eq!(
            at(&index, &[k("list"), Seg::Index(1), k("zzz")], false),
            (6, 11)
        );
    }

    #[test]
    fn toml_positions_cover_tables_arrays_and_inline_tables() {
        let text = "[config]\ntarget = \"embedded\"\nphases = [{ duration = \"1s\" }]\n\n[[scenarios]]\nname = \"a\"\n";
        let (value, index) = parse(text, Format::Toml).unwrap();
        assert_eq!(value["scenarios"][0]["name"], "a");
        assert_eq!(at(&index, &[k("config"), k("target")], false), (2, 10));
        assert_eq!(at(&index, &[k("config"), k("target")], true), (2, 1));
        let duration = [k("config"), k("phases"), Seg::Index(0), k("duration")];
        assert_eq!(at(&index, &duration, false), (3, 24));
        assert_eq!(
            at(&index, &[k("scenarios"), Seg::Index(0), k("name")], false),
            (6, 8)
        );
    }

    #[test]
    fn syntax_errors_carry_the_parser_position() {
        let err = parse("a: [1, 2\nb: 3\n", Format::Yaml).unwrap_err();
        assert!(
            err.message.starts_with("YAML syntax error"),
            "{}",
            err.message
        );
        assert_eq!(err.pos.line, 2);
        let err = parse("a = \nb = 1\n", Format::Toml).unwrap_err();
        assert!(
            err.message.starts_with("TOML syntax error"),
            "{}",
            err.message
        );
        assert_eq!(err.pos.line, 1);
    }

    #[test]
    fn deep_yaml_is_refused_at_the_node_that_goes_too_deep_without_reading_the_rest() {
        // 40 000 levels: libyaml alone spends time quadratic in the depth (tens of seconds).
        let depth = 40_000;
        let text = format!("config: {}1{}\n", "{a: ".repeat(depth), "}".repeat(depth));
        let started = std::time::Instant::now();
        let err = parse(&text, Format::Yaml).err().map(|e| (e.pos, e.message));
        let Some((pos, message)) = err else {
            panic!("accepted");
        };
        assert!(message.contains("deeper than 64"), "{message}");
        assert_eq!((pos.line, pos.column), (1, 9 + 4 * 63));
        // Generous: the bounded walk takes milliseconds; the unbounded one tens of seconds.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // Block nesting counts the same.
        let mut block = String::new();
        for level in 0..70 {
            block.push_str(&format!("{}k:\n", " ".repeat(level)));
        }
        let err = parse(&block, Format::Yaml).err().map(|e| e.message);
        assert!(err.is_some_and(|m| m.contains("deeper than 64")));
    }

    #[test]
    fn an_alias_bomb_padded_past_the_parser_guard_is_refused() {
        // 9^5 = 59 049 uses of a 4 KB string: 240 MB expanded from a 40 KB file. Thousands
        // of small padding nodes used to lift libyaml's ratio guard out of the way.
        let mut text = format!("pad: &p0 \"{}\"\n", "x".repeat(4000));
        for level in 1..=5 {
            let refs = vec![format!("*p{}", level - 1); 9].join(", ");
            text.push_str(&format!("l{level}: &p{level} [{refs}]\n"));
        }
        text.push_str("filler: [");
        text.push_str(&"0, ".repeat(10_000));
        text.push_str("0]\n");
        let err = parse(&text, Format::Yaml).err().map(|e| e.message);
        let message = err.unwrap_or_default();
        assert!(
            message.starts_with("the plan expands to more than"),
            "{message}"
        );
        // Aliases within the bounds still work.
        let (value, _) = parse("a: &x [1, 2]\nb: *x\n", Format::Yaml).unwrap();
        assert_eq!(value["b"], serde_json::json!([1, 2]));
    }

    #[test]
    fn toml_has_the_same_depth_bound() {
        let text = format!("x = {}1{}\n", "[".repeat(70), "]".repeat(70));
        let message = parse(&text, Format::Toml).err().map(|e| e.message);
        assert!(
            message
                .as_deref()
                .is_some_and(|m| m.contains("deeper than 64")),
            "{message:?}"
        );
        let ok = format!("x = {}1{}\n", "[".repeat(60), "]".repeat(60));
        assert!(parse(&ok, Format::Toml).is_ok());
    }
}
