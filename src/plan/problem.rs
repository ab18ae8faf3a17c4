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

    /// Places the value of `path` where its key is.
    pub fn value_at_key(&mut self, path: &[Seg]) {
        if let Some(node) = self.nodes.get_mut(path)
            && let Some(key) = node.key
        {
            node.value = key;
        }
    }

    /// Moves the start of the node at `path` back to `pos` when `pos` comes first.
    pub fn move_before(&mut self, path: &[Seg], pos: Pos) {
        if let Some(node) = self.nodes.get_mut(path) {
            node.value = node.value.min(pos);
        }
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
        .filter_map(|c| {
            let candidate = c.to_lowercase();
            let distance = strsim::damerau_levenshtein(&lower, &candidate);
            let close = distance <= (c.len().max(word.len()) / 5).clamp(1, 3);
            // `endianness` for `endian`, `time` for `timeout`.
            let prefix = lower.len().min(candidate.len()) >= 4
                && (lower.starts_with(&candidate) || candidate.starts_with(&lower));
            (close || prefix).then_some((distance, c))
        })
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
    /// When validating the plan with environment NAME merged in: (NAME, its overlay).
    pub environment: Option<(String, serde_json::Value)>,
    pub problems: Vec<Problem>,
}

impl<'a> Collector<'a> {
    pub fn new(file: PathBuf, text: &'a str, index: &'a PositionIndex) -> Self {
        Collector {
            file,
            text,
            index,
            remap: Default::default(),
            environment: None,
            problems: Vec::new(),
        }
    }

    /// The path in the file of a path in the validated tree: removed list items are counted
    /// back in, and when an environment is being validated, paths it does not set are dropped
    /// (`None`) and the rest point into `config.environments.NAME`.
    fn file_path(&self, path: &[Seg]) -> Option<Vec<Seg>> {
        let path = self.remap.to_original(path);
        if self.remap.tainted.contains(&path) {
            return None;
        }
        let Some((name, overlay)) = &self.environment else {
            return Some(path);
        };
        let (first, rest) = path.split_first()?;
        if *first != Seg::Key("config".to_owned()) || rest.is_empty() {
            return None;
        }
        let mut node = overlay;
        for seg in rest {
            node = match (seg, node) {
                (Seg::Key(k), serde_json::Value::Object(m)) => m.get(k)?,
                (Seg::Index(i), serde_json::Value::Array(a)) => a.get(*i)?,
                _ => return None,
            };
        }
        let mut out = vec![
            Seg::Key("config".to_owned()),
            Seg::Key("environments".to_owned()),
            Seg::Key(name.clone()),
        ];
        out.extend_from_slice(rest);
        Some(out)
    }

    /// A problem with the value at `path`.
    pub fn error(&mut self, path: &[Seg], message: impl Into<String>, help: Option<String>) {
        if let Some(path) = self.file_path(path) {
            let pos = self.index.locate(&path, false);
            self.at(pos, &path, message, help);
        }
    }

    /// A problem with the key naming `path` (unknown or misplaced keys).
    pub fn key_error(&mut self, path: &[Seg], message: impl Into<String>, help: Option<String>) {
        if let Some(path) = self.file_path(path) {
            let pos = self.index.locate(&path, true);
            self.at(pos, &path, message, help);
        }
    }

    /// A problem at character `offset` (0-based) of the one-line scalar at `path`, such as a
    /// column inside an expression or a template.
    pub fn error_inside(
        &mut self,
        path: &[Seg],
        offset: usize,
        message: impl Into<String>,
        help: Option<String>,
    ) {
        let Some(path) = self.file_path(path) else {
            return;
        };
        let node = self.index.locate(&path, false);
        let line = node
            .line
            .checked_sub(1)
            .and_then(|i| self.text.lines().nth(i));
        let first = line.and_then(|l| l.chars().nth(node.column.saturating_sub(1)));
        let pos = match first {
            Some('"') | Some('\'') => Pos {
                line: node.line,
                column: node.column + 1 + offset,
            },
            Some('|') | Some('>') | None => node,
            Some(_) => Pos {
                line: node.line,
                column: node.column + offset,
            },
        };
        self.at(pos, &path, message, help);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_like_the_plan() {
        let path = vec![
            Seg::Key("scenarios".into()),
            Seg::Index(1),
            Seg::Key("flow".into()),
            Seg::Index(3),
            Seg::Key("expect".into()),
            Seg::Key("timeout".into()),
        ];
        assert_eq!(path_string(&path), "scenarios[1].flow[3].expect.timeout");
        let odd = vec![
            Seg::Key("thresholds".into()),
            Seg::Key("latency.chat.p95".into()),
        ];
        assert_eq!(path_string(&odd), "thresholds[\"latency.chat.p95\"]");
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let keys = ["arrivalRate", "arrivalCount", "duration", "rampTo"];
        assert_eq!(suggest("arivalRate", keys), Some("arrivalRate"));
        assert_eq!(suggest("ramp_to", keys), Some("rampTo"));
        assert_eq!(suggest("durration", keys), Some("duration"));
        assert_eq!(suggest("weight", keys), None);
        assert_eq!(suggest("endianness", ["header", "endian"]), Some("endian"));
    }
}
