//! Problems found in a plan, and where they are: plan paths, source positions, suggestions.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

/// One step of a path inside the plan: a map key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Renders a path the way users write it: `scenarios[1].flow[3].expect.timeout`.
pub fn path_string(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
            Seg::Key(k) => {
                let plain = !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if plain {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                } else {
                    out.push_str(&format!("[{k:?}]"));
                }
            }
        }
    }
    out
}

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct NodePos {
    /// Where the key naming this node starts (absent for list items and the root).
    pub key: Option<Pos>,
    pub value: Pos,
}

/// Plan path → position of the node (and of its key) in the source text.
#[derive(Debug, Clone, Default)]
pub(crate) struct PositionIndex {
    nodes: HashMap<Vec<Seg>, NodePos>,
}

impl PositionIndex {
    pub fn insert(&mut self, path: Vec<Seg>, node: NodePos) {
        self.nodes.entry(path).or_insert(node);
    }

    /// The position of `path`, or of its nearest ancestor that has one; the key's position when
    /// `at_key` and the node has a key.
    pub fn locate(&self, path: &[Seg], at_key: bool) -> Pos {
        let mut len = path.len();
        loop {
            if let Some(node) = path.get(..len).and_then(|p| self.nodes.get(p)) {
                return match (at_key && len == path.len(), node.key) {
                    (true, Some(key)) => key,
                    _ => node.value,
                };
            }
            if len == 0 {
                return Pos { line: 1, column: 1 };
            }
            len -= 1;
        }
    }
}

/// One thing wrong with a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Where in the plan, e.g. `scenarios[1].flow[3].expect.timeout` (empty for the whole file).
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when there is more to say than the message.
    pub help: Option<String>,
    /// The source line the position points into.
    pub source_line: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )?;
        if !self.path.is_empty() {
            write!(f, " (at `{}`)", self.path)?;
        }
        if let Some(help) = &self.help {
            write!(f, "; help: {help}")?;
        }
        Ok(())
    }
}

/// Every problem found in one plan, sorted by position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Problems {
    pub problems: Vec<Problem>,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        write!(
            f,
            "{count} problem{} in the plan",
            if count == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n{problem}")?;
        }
        Ok(())
    }
}

/// The closest candidate to `word` by edit distance, when it is close enough to be a typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&lower, &c.to_lowercase()), c))
        .filter(|(distance, c)| *distance <= (c.len().max(word.len()) / 5).clamp(1, 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

/// Collects problems while validating one plan, turning plan paths into source positions.
pub(crate) struct Collector<'a> {
    pub file: PathBuf,
    pub text: &'a str,
    pub index: &'a PositionIndex,
    /// Translates paths of the pruned tree (after structural errors) back to the file.
    pub remap: super::structure::Remap,
    pub problems: Vec<Problem>,
}

impl<'a> Collector<'a> {
    pub fn new(file: PathBuf, text: &'a str, index: &'a PositionIndex) -> Self {
        Collector {
            file,
            text,
            index,
            remap: Default::default(),
            problems: Vec::new(),
        }
    }

    /// A problem with the value at `path`.
    pub fn error(&mut self, path: &[Seg], message: impl Into<String>, help: Option<String>) {
        let path = self.remap.to_original(path);
        if self.remap.tainted.contains(&path) {
            return;
        }
        let pos = self.index.locate(&path, false);
        self.at(pos, &path, message, help);
    }

    /// A problem with the key naming `path` (unknown or misplaced keys).
    pub fn key_error(&mut self, path: &[Seg], message: impl Into<String>, help: Option<String>) {
        let path = self.remap.to_original(path);
        let pos = self.index.locate(&path, true);
        self.at(pos, &path, message, help);
    }

    /// The position of character `offset` (0-based) inside the one-line scalar at `path`.
    pub fn pos_inside(&self, path: &[Seg], offset: usize) -> Pos {
        let node = self.index.locate(&self.remap.to_original(path), false);
        let line = node
            .line
            .checked_sub(1)
            .and_then(|i| self.text.lines().nth(i));
        let first = line.and_then(|l| l.chars().nth(node.column.saturating_sub(1)));
        match first {
            Some('"') | Some('\'') => Pos {
                line: node.line,
                column: node.column + 1 + offset,
            },
            Some('|') | Some('>') | None => node,
            Some(_) => Pos {
                line: node.line,
                column: node.column + offset,
            },
        }
    }

    /// A problem at a position inside the node at `path` (already a file path).
    pub fn at(&mut self, pos: Pos, path: &[Seg], message: impl Into<String>, help: Option<String>) {
        let source_line = pos
            .line
            .checked_sub(1)
            .and_then(|i| self.text.lines().nth(i))
            .map(str::to_owned);
        self.problems.push(Problem {
            file: self.file.clone(),
            line: pos.line,
            column: pos.column,
            path: path_string(path),
            message: message.into(),
            help,
            source_line,
        });
    }

    pub fn finish(mut self) -> Vec<Problem> {
        self.problems.sort_by_key(|a| (a.line, a.column));
        self.problems.dedup();
        self.problems
    }
}

/// Appends a key to a path.
pub(crate) fn key(path: &[Seg], name: &str) -> Vec<Seg> {
    let mut out = path.to_vec();
    out.push(Seg::Key(name.to_owned()));
    out
}

/// Appends an index to a path.
pub(crate) fn idx(path: &[Seg], i: usize) -> Vec<Seg> {
    let mut out = path.to_vec();
    out.push(Seg::Index(i));
    out
}
