//! [`Rows`]: the rows of a payload file, stored compactly — every cell's text in one string
//! and one 4-byte end offset per cell — so a file of millions of short cells costs about its
//! own size in memory, not a heap value per cell. Cells become values (cast or not) only when
//! a vuser takes its row.
//!
//! Reading the file and checking its shape is `validate::payload`'s job.

use serde_json::Value;

/// The data rows of one payload file, all the same width.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    text: String,
    /// Where each cell ends in `text`, row after row.
    ends: Vec<u32>,
    width: usize,
    /// `cast: true`: numbers and booleans become typed values.
    cast: bool,
}

/// Why a row could not be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowsFull {
    /// The cells' text passed 4 GiB (the payload byte cap keeps far below it).
    Text,
}

impl Rows {
    pub fn new(cast: bool) -> Self {
        Rows {
            cast,
            ..Rows::default()
        }
    }

    /// Appends one row; the first row sets the width, later rows must match it (the caller
    /// checks and reports a ragged row first).
    pub(crate) fn push<'a>(
        &mut self,
        cells: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), RowsFull> {
        let before = self.ends.len();
        for cell in cells {
            self.text.push_str(cell);
            let end = u32::try_from(self.text.len()).map_err(|_| RowsFull::Text)?;
            self.ends.push(end);
        }
        if self.width == 0 {
            self.width = self.ends.len() - before;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.ends.len().checked_div(self.width).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cells of row `index` as text.
    pub fn cells(&self, index: usize) -> Option<impl Iterator<Item = &str>> {
        let first = index.checked_mul(self.width)?;
        let ends = self.ends.get(first..first.checked_add(self.width)?)?;
        let mut start = match first.checked_sub(1) {
            Some(previous) => self.ends.get(previous).copied().unwrap_or(0),
            None => 0,
        };
        Some(ends.iter().map(move |&end| {
            let cell = self
                .text
                .get(start as usize..end as usize)
                .unwrap_or_default();
            start = end;
            cell
        }))
    }

    /// Row `index` as values, cast when the payload asks for it.
    pub fn row(&self, index: usize) -> Option<Vec<Value>> {
        Some(self.cells(index)?.map(|c| cell(c, self.cast)).collect())
    }

    /// Every row as values, in order.
    pub fn iter(&self) -> impl Iterator<Item = Vec<Value>> + '_ {
        (0..self.len()).filter_map(|i| self.row(i))
    }

    /// Bytes held, for the memory bound's tests.
    pub fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.ends.capacity() * size_of::<u32>()
    }
}

/// Rows of text cells, not cast (plans built in code, tests).
impl<S: AsRef<str>> FromIterator<Vec<S>> for Rows {
    fn from_iter<I: IntoIterator<Item = Vec<S>>>(rows: I) -> Self {
        let mut out = Rows::new(false);
        for row in rows {
            // Plans built in code stay far below 4 GiB of text.
            let _ = out.push(row.iter().map(AsRef::as_ref));
        }
        out
    }
}

fn cell(text: &str, cast: bool) -> Value {
    if cast {
        if let Ok(i) = text.trim().parse::<i64>() {
            return Value::from(i);
        }
        if let Ok(f) = text.trim().parse::<f64>()
            && f.is_finite()
        {
            return Value::from(f);
        }
        match text.trim() {
            "true" => return Value::Bool(true),
            "false" => return Value::Bool(false),
            _ => {}
        }
    }
    Value::String(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_keep_their_cells_and_cast_on_the_way_out() {
        let mut rows = Rows::new(true);
        assert!(rows.push(["ann", "7", ""]).is_ok());
        assert!(rows.push(["bob", "2.5", "true"]).is_ok());
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows.row(1),
            Some(vec![
                Value::from("bob"),
                Value::from(2.5),
                Value::Bool(true)
            ])
        );
        assert_eq!(
            rows.cells(0).map(|c| c.collect::<Vec<_>>()),
            Some(vec!["ann", "7", ""])
        );
        assert_eq!(rows.row(2), None);
        let plain: Rows = vec![vec!["7"]].into_iter().collect();
        assert_eq!(plain.row(0), Some(vec![Value::from("7")]));
    }

    #[test]
    fn a_short_cell_costs_its_text_and_four_bytes() {
        let mut rows = Rows::new(false);
        for _ in 0..100_000 {
            assert!(rows.push(["a", "b"]).is_ok());
        }
        // 200 000 cells: a heap value each would take tens of bytes.
        assert!(
            rows.heap_bytes() <= 200_000 * 5 * 2,
            "{}",
            rows.heap_bytes()
        );
    }
}
