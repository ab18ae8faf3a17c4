//! The stored form of a result: what `write_result` puts on disk and `read_result` turns back
//! into the full [`RunResult`].
//!
//! Two things keep a long run's file small (a 1-hour run with 1 s intervals and 20 latency
//! metrics went from 51 MiB to under 10 MB):
//! - an interval's `summaries` are left out for every metric whose histogram the interval
//!   carries — they are exactly what the histogram gives ([`Summary::from_histogram`]), so the
//!   reader derives them again; v1 intervals (no histograms) keep theirs;
//! - the per-interval histograms go to a binary sidecar next to the file
//!   (`<result stem>.histograms.bin`, referenced by `intervalHistograms` with its size and
//!   checksum) instead of base64 inside the JSON.
//!
//! Sidecar layout (little-endian): the 8 bytes `CHLDHIST`, `u32` version (1), `u32` name
//! count and per name `u32` length + UTF-8 bytes, `u32` interval count, then per interval (in
//! `intermediate` order) `u32` histogram count and per histogram `u32` name index, `u32`
//! length and the HdrHistogram V2-deflate bytes (what the base64 of the JSON form decodes to).
//!
//! It does not decide what a result contains (`model`) nor how files are written (`io`).

use std::collections::BTreeMap;
use std::hash::Hasher as _;
use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::ser::{SerializeSeq as _, SerializeStruct as _};
use serde::{Serialize, Serializer};

use super::ReportError;
use super::model::{HistogramSidecar, RunResult};
use crate::metrics::{PeriodSummary, Summary, decode_histogram};

const MAGIC: &[u8; 8] = b"CHLDHIST";
const VERSION: u32 = 1;

/// The sidecar's file name for a result file: `result.json` → `result.histograms.bin`.
pub fn sidecar_name(result_path: &Path) -> String {
    let stem = result_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "result".to_owned());
    format!("{stem}.histograms.bin")
}

/// `result` as stored: intervals without derivable summaries, and their histograms inline
/// (base64) or, with `sidecar`, only referenced.
pub struct Stored<'a> {
    pub result: &'a RunResult,
    pub sidecar: Option<&'a HistogramSidecar>,
}

impl Serialize for Stored<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Destructured whole so a new field of RunResult cannot be forgotten here.
        let RunResult {
            format,
            run,
            aggregate,
            intermediate,
            phases,
            scenarios,
            thresholds,
            errors,
            endpoints,
            monitor,
            adaptive,
            breaking_point,
            hooks,
            histograms,
            plan,
            plan_source,
            interval_histograms: _,
        } = self.result;
        let mut m = s.serialize_struct("RunResult", 17)?;
        m.serialize_field("format", format)?;
        m.serialize_field("run", run)?;
        m.serialize_field("aggregate", aggregate)?;
        m.serialize_field(
            "intermediate",
            &Intervals {
                intervals: intermediate,
                inline_histograms: self.sidecar.is_none(),
            },
        )?;
        m.serialize_field("phases", phases)?;
        m.serialize_field("scenarios", scenarios)?;
        m.serialize_field("thresholds", thresholds)?;
        m.serialize_field("errors", errors)?;
        if endpoints.is_empty() {
            m.skip_field("endpoints")?;
        } else {
            m.serialize_field("endpoints", endpoints)?;
        }
        m.serialize_field("monitor", monitor)?;
        match adaptive {
            Some(a) => m.serialize_field("adaptive", a)?,
            None => m.skip_field("adaptive")?,
        }
        match breaking_point {
            Some(b) => m.serialize_field("breakingPoint", b)?,
            None => m.skip_field("breakingPoint")?,
        }
        if hooks.is_empty() {
            m.skip_field("hooks")?;
        } else {
            m.serialize_field("hooks", hooks)?;
        }
        m.serialize_field("histograms", histograms)?;
        m.serialize_field("plan", plan)?;
        match plan_source {
            Some(p) => m.serialize_field("planSource", p)?,
            None => m.skip_field("planSource")?,
        }
        match self.sidecar {
            Some(sidecar) => m.serialize_field("intervalHistograms", sidecar)?,
            None => m.skip_field("intervalHistograms")?,
        }
        m.end()
    }
}

struct Intervals<'a> {
    intervals: &'a [PeriodSummary],
    inline_histograms: bool,
}

impl Serialize for Intervals<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.intervals.len()))?;
        for period in self.intervals {
            seq.serialize_element(&Interval {
                period,
                inline_histograms: self.inline_histograms,
            })?;
        }
        seq.end()
    }
}

struct Interval<'a> {
    period: &'a PeriodSummary,
    inline_histograms: bool,
}

impl Serialize for Interval<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let PeriodSummary {
            start_ms,
            end_ms,
            phase,
            phase_index,
            counters,
            rates,
            summaries,
            gauges,
            histograms,
        } = self.period;
        let mut m = s.serialize_struct("PeriodSummary", 9)?;
        m.serialize_field("startMs", start_ms)?;
        m.serialize_field("endMs", end_ms)?;
        match phase {
            Some(p) => m.serialize_field("phase", p)?,
            None => m.skip_field("phase")?,
        }
        match phase_index {
            Some(i) => m.serialize_field("phaseIndex", i)?,
            None => m.skip_field("phaseIndex")?,
        }
        m.serialize_field("counters", counters)?;
        m.serialize_field("rates", rates)?;
        let underived: BTreeMap<&String, &Summary> = summaries
            .iter()
            .filter(|(name, _)| !histograms.contains_key(*name))
            .collect();
        m.serialize_field("summaries", &underived)?;
        m.serialize_field("gauges", gauges)?;
        if self.inline_histograms && !histograms.is_empty() {
            m.serialize_field("histograms", histograms)?;
        } else {
            m.skip_field("histograms")?;
        }
        m.end()
    }
}

/// FNV-1a (64 bits) of `bytes` as 16 hex digits: enough to tell a sidecar from another run's.
fn checksum(bytes: &[u8]) -> String {
    let mut h = fnv::FnvHasher::default();
    h.write(bytes);
    format!("{:016x}", h.finish())
}

/// The sidecar holding every interval's histograms, and its reference; `None` when no
/// interval has a histogram (v1-style results).
pub fn encode_sidecar(
    intervals: &[PeriodSummary],
    file: String,
) -> Result<Option<(Vec<u8>, HistogramSidecar)>, ReportError> {
    if intervals.iter().all(|p| p.histograms.is_empty()) {
        return Ok(None);
    }
    let mut names: BTreeMap<&str, u32> = BTreeMap::new();
    for name in intervals.iter().flat_map(|p| p.histograms.keys()) {
        let next = u32::try_from(names.len()).map_err(|_| too_big("names"))?;
        names.entry(name.as_str()).or_insert(next);
    }
    let mut ordered: Vec<(&str, u32)> = names.iter().map(|(n, i)| (*n, *i)).collect();
    ordered.sort_by_key(|(_, i)| *i);
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    put_u32(&mut out, VERSION);
    put_u32(&mut out, len_u32(ordered.len())?);
    for (name, _) in &ordered {
        put_u32(&mut out, len_u32(name.len())?);
        out.extend_from_slice(name.as_bytes());
    }
    put_u32(&mut out, len_u32(intervals.len())?);
    for period in intervals {
        put_u32(&mut out, len_u32(period.histograms.len())?);
        for (name, text) in &period.histograms {
            let bytes = STANDARD
                .decode(text.trim())
                .map_err(|e| ReportError::Histogram {
                    metric: name.clone(),
                    source: crate::metrics::MetricsError::HistogramDecode(format!(
                        "not base64: {e}"
                    )),
                })?;
            put_u32(&mut out, names.get(name.as_str()).copied().unwrap_or(0));
            put_u32(&mut out, len_u32(bytes.len())?);
            out.extend_from_slice(&bytes);
        }
    }
    let reference = HistogramSidecar {
        file,
        bytes: out.len() as u64,
        intervals: intervals.len() as u64,
        fnv1a64: checksum(&out),
    };
    Ok(Some((out, reference)))
}

/// Reads the sidecar `reference` names (in the folder of `result_path`) into the histograms
/// of `intervals`.
pub fn attach_sidecar(
    result_path: &Path,
    reference: &HistogramSidecar,
    intervals: &mut [PeriodSummary],
) -> Result<(), ReportError> {
    let path = match result_path.parent() {
        Some(dir) => dir.join(&reference.file),
        None => Path::new(&reference.file).to_owned(),
    };
    let bad = |reason: String| ReportError::Sidecar {
        path: path.clone(),
        reason,
    };
    // Only a plain file name: a result must not make its reader open files elsewhere.
    if Path::new(&reference.file).file_name() != Some(std::ffi::OsStr::new(&reference.file)) {
        return Err(bad("the reference is not a plain file name".to_owned()));
    }
    // Streamed: the file's bytes are never held next to the histograms made from them.
    let file = std::fs::File::open(&path).map_err(|e| bad(e.to_string()))?;
    let size = file.metadata().map_err(|e| bad(e.to_string()))?.len();
    let mismatch = |size: u64, sum: &str| {
        bad(format!(
            "it holds {size} bytes with checksum {sum}, the result expects {} bytes with \
             checksum {} (a sidecar of another run?)",
            reference.bytes, reference.fnv1a64
        ))
    };
    if size != reference.bytes {
        return Err(mismatch(size, "(not computed)"));
    }
    let mut cur = Cursor {
        reader: std::io::BufReader::new(file),
        hash: fnv::FnvHasher::default(),
        pos: 0,
    };
    decode_sidecar(&mut cur, intervals).map_err(&bad)?;
    let sum = format!("{:016x}", cur.hash.finish());
    if cur.pos != reference.bytes || sum != reference.fnv1a64 {
        return Err(mismatch(cur.pos, &sum));
    }
    Ok(())
}

fn decode_sidecar<R: Read>(
    cur: &mut Cursor<R>,
    intervals: &mut [PeriodSummary],
) -> Result<(), String> {
    if cur.take(MAGIC.len())? != MAGIC {
        return Err("not a chatload histogram sidecar".to_owned());
    }
    let version = cur.u32()?;
    if version != VERSION {
        return Err(format!(
            "sidecar version {version}, this chatload reads {VERSION}"
        ));
    }
    let name_count = cur.u32()? as usize;
    let mut names = Vec::new();
    for _ in 0..name_count {
        let len = cur.u32()? as usize;
        let name = String::from_utf8(cur.take(len)?).map_err(|e| e.to_string())?;
        names.push(name);
    }
    let interval_count = cur.u32()? as usize;
    if interval_count != intervals.len() {
        return Err(format!(
            "it has {interval_count} intervals, the result {}",
            intervals.len()
        ));
    }
    for period in intervals.iter_mut() {
        let count = cur.u32()?;
        for _ in 0..count {
            let index = cur.u32()? as usize;
            let name = names
                .get(index)
                .ok_or_else(|| format!("histogram name #{index} out of range"))?;
            let len = cur.u32()? as usize;
            let text = STANDARD.encode(cur.take(len)?);
            period.histograms.insert(name.clone(), text);
        }
    }
    let mut rest = [0u8; 1];
    if cur.reader.read(&mut rest).map_err(|e| e.to_string())? != 0 {
        return Err("bytes left over after the last interval".to_owned());
    }
    Ok(())
}

/// Puts back every interval summary its histogram implies and the file left out. Decoding
/// tens of thousands of histograms is most of the time it takes to load a long run's result,
/// so the intervals are shared out over the available cores.
pub fn derive_summaries(intervals: &mut [PeriodSummary]) -> Result<(), ReportError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = intervals.len().div_ceil(threads).max(64);
    if intervals.len() <= per_thread {
        return derive_in(intervals);
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = intervals
            .chunks_mut(per_thread)
            .map(|chunk| scope.spawn(move || derive_in(chunk)))
            .collect();
        let mut outcome = Ok(());
        for worker in workers {
            let done = worker.join().unwrap_or_else(|_| {
                Err(ReportError::Histogram {
                    metric: String::new(),
                    source: crate::metrics::MetricsError::HistogramDecode(
                        "a decoding thread failed".to_owned(),
                    ),
                })
            });
            if outcome.is_ok() {
                outcome = done;
            }
        }
        outcome
    })
}

fn derive_in(intervals: &mut [PeriodSummary]) -> Result<(), ReportError> {
    for period in intervals {
        let PeriodSummary {
            summaries,
            histograms,
            ..
        } = period;
        for (name, text) in histograms.iter() {
            if summaries.contains_key(name) {
                continue;
            }
            let h = decode_histogram(text).map_err(|source| ReportError::Histogram {
                metric: name.clone(),
                source,
            })?;
            if !h.is_empty() {
                summaries.insert(name.clone(), Summary::from_histogram(&h));
            }
        }
    }
    Ok(())
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn len_u32(n: usize) -> Result<u32, ReportError> {
    u32::try_from(n).map_err(|_| too_big("a length"))
}

fn too_big(what: &str) -> ReportError {
    ReportError::Histogram {
        metric: String::new(),
        source: crate::metrics::MetricsError::HistogramEncode(format!(
            "{what} does not fit the sidecar format"
        )),
    }
}

/// Reads the sidecar in order, hashing what it reads.
struct Cursor<R> {
    reader: R,
    hash: fnv::FnvHasher,
    pos: u64,
}

impl<R: Read> Cursor<R> {
    /// The next `n` bytes; `n` is bounded by what the file still holds (its size was
    /// checked), so a corrupt length cannot make it allocate more than the file.
    fn take(&mut self, n: usize) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let got = (&mut self.reader)
            .take(n as u64)
            .read_to_end(&mut out)
            .map_err(|e| e.to_string())?;
        if got != n {
            return Err("truncated".to_owned());
        }
        self.hash.write(&out);
        self.pos += n as u64;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}
