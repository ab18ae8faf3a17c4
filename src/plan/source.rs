//! Reading plan text: YAML or TOML into one `serde_json::Value` tree plus a position index
//! (plan path → line:column). This is the only module that names `serde_yaml`, `yaml_rust2` and
//! `toml`.
//!
//! serde_yaml gives the values (and positions for syntax errors) but no node positions, so YAML
//! is read a second time with yaml-rust2's span-aware event parser just to build the index;
//! TOML positions come from toml's spanned `DeTable`. It does not interpret the plan.

use std::path::Path;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

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

fn parse_yaml(text: &str) -> Result<(serde_json::Value, PositionIndex), SyntaxError> {
    let value: serde_json::Value = match serde_yaml::from_str(text) {
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
            return Err(SyntaxError {
                pos,
                message: format!("YAML syntax error: {message}"),
            });
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
            Some(Frame::Map { path, key }) => match key.take() {
                None => {
                    *key = Some((scalar.unwrap_or_default().to_owned(), pos));
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
                        if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
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
            Event::Scalar(text, ..) => {
                self.place(Some(&text), pos);
            }
            Event::Alias(_) => {
                self.place(None, pos);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) if is_key => {
                self.stack.push(Frame::Skip { depth: 1 });
            }
            Event::MappingStart(..) => {
                if let Some(path) = self.place(None, pos) {
                    self.stack.push(Frame::Map { path, key: None });
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
    let value: serde_json::Value = toml::from_str(text).map_err(|err| SyntaxError {
        pos: lines.pos(err.span().map(|s| s.start).unwrap_or(0)),
        message: format!("TOML error: {}", err.message().trim()),
    })?;
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
