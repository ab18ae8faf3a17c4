//! `IntervalStore`: the run's interval history (`intermediate`) with a bounded memory
//! footprint. A run keeps one summary per interval (counters, rates, gauges and encoded
//! histograms, a few KiB each), so an hour at 1 s intervals grew the generator by tens of MiB;
//! here only the last `window` intervals stay in memory and older ones are appended to an
//! anonymous temporary file (one JSON line each), read back when the whole history is asked
//! for (the result file, the results so far).
//!
//! It does not decide what an interval holds (`aggregate`) or where the result goes (`report`).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Read};
use std::os::unix::fs::FileExt as _;

use super::MetricsError;
use super::summary::PeriodSummary;

/// Intervals kept in memory when spilling: the live outputs read only the latest interval,
/// so this only bounds how often the file is written, not what anyone can see.
pub const SPILL_WINDOW: usize = 64;

/// The interval history, oldest first. Without a spill file it is a plain list.
#[derive(Debug, Default)]
pub struct IntervalStore {
    /// The most recent intervals, oldest first.
    recent: VecDeque<PeriodSummary>,
    /// Where older intervals go; `None` keeps everything in memory.
    spill: Option<Spill>,
    /// Intervals kept in memory at most while spilling.
    window: usize,
    /// Why writing the file failed, if it did: from then on the store keeps every new
    /// interval in memory (a full disk costs memory, never intervals).
    spill_failure: Option<String>,
}

#[derive(Debug)]
struct Spill {
    file: File,
    /// Bytes written so far (writes are positional, so reading back never moves an offset
    /// a later write depends on).
    len_bytes: u64,
    intervals: usize,
}

impl IntervalStore {
    /// Everything in memory (results merged from files, tests).
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// At most `window` (at least 1) intervals in memory, older ones in an anonymous temporary
    /// file (removed by the system when the process ends, however it ends). When no temporary
    /// file can be created the store keeps everything in memory, as before spilling existed.
    pub fn spilling(window: usize) -> Self {
        let spill = tempfile::tempfile().ok().map(|file| Spill {
            file,
            len_bytes: 0,
            intervals: 0,
        });
        Self {
            recent: VecDeque::new(),
            spill,
            window: window.max(1),
            spill_failure: None,
        }
    }

    /// Appends the next interval; moves the oldest one to the file when the window is full.
    pub fn push(&mut self, interval: PeriodSummary) {
        self.recent.push_back(interval);
        let Some(spill) = &mut self.spill else {
            return;
        };
        while self.recent.len() > self.window && self.spill_failure.is_none() {
            let Some(oldest) = self.recent.front() else {
                break;
            };
            match spill.append(oldest) {
                Ok(()) => {
                    self.recent.pop_front();
                }
                Err(err) => self.spill_failure = Some(err.to_string()),
            }
        }
    }

    /// Why the temporary file could not be written, if it could not (the intervals are all
    /// kept nonetheless, in memory).
    pub fn spill_failure(&self) -> Option<&str> {
        self.spill_failure.as_deref()
    }

    /// How many intervals there are in all.
    pub fn len(&self) -> usize {
        self.spilled() + self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many intervals are held in memory now.
    pub fn held(&self) -> usize {
        self.recent.len()
    }

    /// How many intervals are in the file.
    pub fn spilled(&self) -> usize {
        self.spill.as_ref().map_or(0, |s| s.intervals)
    }

    /// The most recent interval.
    pub fn last(&self) -> Option<&PeriodSummary> {
        self.recent.back()
    }

    /// The intervals held in memory, oldest first (all of them when not spilling).
    pub fn recent(&self) -> impl Iterator<Item = &PeriodSummary> {
        self.recent.iter()
    }

    /// The whole history, oldest first: the file read back, then the window.
    pub fn to_vec(&self) -> Result<Vec<PeriodSummary>, MetricsError> {
        let mut all = self.read_spilled()?;
        all.extend(self.recent.iter().cloned());
        Ok(all)
    }

    /// [`Self::to_vec`] without copying the window.
    pub fn into_vec(self) -> Result<Vec<PeriodSummary>, MetricsError> {
        let mut all = self.read_spilled()?;
        all.extend(self.recent);
        Ok(all)
    }

    fn read_spilled(&self) -> Result<Vec<PeriodSummary>, MetricsError> {
        let Some(spill) = &self.spill else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(spill.intervals + self.recent.len());
        let reader = BufReader::new(ReadAt {
            file: &spill.file,
            pos: 0,
            end: spill.len_bytes,
        });
        for line in reader.lines() {
            let line = line.map_err(spill_error)?;
            out.push(serde_json::from_str(&line).map_err(spill_error)?);
        }
        if out.len() != spill.intervals {
            return Err(MetricsError::Spill(format!(
                "read {} intervals back, {} were written",
                out.len(),
                spill.intervals
            )));
        }
        Ok(out)
    }
}

impl Spill {
    fn append(&mut self, interval: &PeriodSummary) -> Result<(), MetricsError> {
        let mut line = serde_json::to_vec(interval).map_err(spill_error)?;
        line.push(b'\n');
        // A partial write is overwritten by the next attempt: only `len_bytes` counts.
        self.file
            .write_all_at(&line, self.len_bytes)
            .map_err(spill_error)?;
        self.len_bytes += line.len() as u64;
        self.intervals += 1;
        Ok(())
    }
}

fn spill_error(err: impl std::fmt::Display) -> MetricsError {
    MetricsError::Spill(err.to_string())
}

/// Reads `file` from `pos` to `end` with positional reads.
struct ReadAt<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = usize::try_from(self.end.saturating_sub(self.pos)).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn interval(i: u64) -> PeriodSummary {
        PeriodSummary {
            start_ms: i * 1000,
            end_ms: (i + 1) * 1000,
            phase: None,
            phase_index: None,
            counters: BTreeMap::from([("messages.sent".to_owned(), i)]),
            rates: BTreeMap::new(),
            summaries: BTreeMap::new(),
            gauges: BTreeMap::new(),
            histograms: BTreeMap::from([("latency.x".to_owned(), format!("H{i}"))]),
        }
    }

    #[test]
    fn a_spilling_store_holds_at_most_its_window_and_gives_everything_back_in_order() {
        let mut store = IntervalStore::spilling(8);
        for i in 0..1_000 {
            store.push(interval(i));
            assert!(store.held() <= 8);
        }
        assert_eq!(store.len(), 1_000);
        assert_eq!(store.spilled(), 992);
        assert_eq!(store.last().map(|p| p.start_ms), Some(999_000));
        let all = store.to_vec().unwrap();
        assert_eq!(all, (0..1_000).map(interval).collect::<Vec<_>>());
        // Reading back does not disturb later writes.
        store.push(interval(1_000));
        assert_eq!(store.into_vec().unwrap().len(), 1_001);
    }

    #[test]
    fn an_in_memory_store_keeps_everything() {
        let mut store = IntervalStore::in_memory();
        for i in 0..100 {
            store.push(interval(i));
        }
        assert_eq!((store.held(), store.spilled()), (100, 0));
        assert_eq!(store.into_vec().unwrap().len(), 100);
    }
}
