//! Delivery stamps: the compact token `stamp()` writes into a message and the scan every
//! received frame goes through.
//!
//! Format: `~c<run>.<vu>.<µs>~` with the run's stamp token (6 base-36 characters, see
//! [`token`]), the sender's run-wide vuser id and the wall-clock send time in microseconds
//! since the Unix epoch, both in base 36. Every shard of a run has the same token and the
//! same vuser numbering, so a message sent by a vuser of one shard and received by a vuser of
//! another is a delivery too; on one host the clocks are one clock, across machines the
//! measurement is as good as their clock synchronisation (NTP: about a millisecond; PTP:
//! microseconds). Judging a found stamp (a first delivery, or a duplicate, future or other run's
//! one) is `delivery`'s business.

use std::fmt::Write;

/// Length of a run id in characters.
pub const RUN_ID_LEN: usize = 6;

const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A fresh random run id. Deliberately not drawn from the run seed: two runs with one seed
/// must still tell their stamps apart (a server replaying history to a later run).
pub fn new_run_id() -> String {
    (0..RUN_ID_LEN)
        .map(|_| {
            let i = rand::random_range(0..DIGITS.len());
            DIGITS.get(i).map_or('0', |b| char::from(*b))
        })
        .collect()
}

/// The stamp token of run `run_id`: 6 base-36 characters of its FNV-1a hash, the same in every
/// shard that was given the same run id.
pub fn token(run_id: &str) -> String {
    use std::hash::Hasher as _;
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(run_id.as_bytes());
    let mut n = hasher.finish();
    (0..RUN_ID_LEN)
        .map(|_| {
            let digit = DIGITS.get((n % 36) as usize).copied().unwrap_or(b'0');
            n /= 36;
            char::from(digit)
        })
        .collect()
}

/// Appends `n` in base 36.
fn push_base36(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 13];
    let mut at = buf.len();
    loop {
        at -= 1;
        if let (Some(slot), Some(digit)) = (buf.get_mut(at), DIGITS.get((n % 36) as usize)) {
            *slot = *digit;
        }
        n /= 36;
        if n == 0 || at == 0 {
            break;
        }
    }
    for b in buf.iter().skip(at) {
        out.push(char::from(*b));
    }
}

/// The stamp for vuser `vu` sending at `sent_us` (wall clock, µs since the Unix epoch).
pub fn format(run_id: &str, vu: u64, sent_us: u64) -> String {
    let mut out = String::with_capacity(32);
    out.push_str("~c");
    let _ = write!(out, "{run_id}");
    out.push('.');
    push_base36(&mut out, vu);
    out.push('.');
    push_base36(&mut out, sent_us);
    out.push('~');
    out
}

/// A stamp found in a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub sender: u64,
    pub sent_us: u64,
}

fn parse_base36(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 13 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, b| {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'z' => b - b'a' + 10,
            _ => return None,
        };
        acc.checked_mul(36)?.checked_add(u64::from(d))
    })
}

/// Parses a stamp starting right after its `~c`: its run id, the stamp, and the bytes after it.
fn parse_at(rest: &[u8]) -> Option<(&[u8], Found, &[u8])> {
    let run = rest.get(..RUN_ID_LEN)?;
    if !run.iter().all(|b| DIGITS.contains(b)) {
        return None;
    }
    let rest = rest.get(RUN_ID_LEN..)?.strip_prefix(b".")?;
    let dot = rest.iter().position(|b| *b == b'.')?;
    let sender = parse_base36(rest.get(..dot)?)?;
    let rest = rest.get(dot + 1..)?;
    let end = rest.iter().position(|b| *b == b'~')?;
    let sent_us = parse_base36(rest.get(..end)?)?;
    Some((run, Found { sender, sent_us }, rest.get(end + 1..)?))
}

/// Every well-formed stamp in `body`, of any run, with its run id, in order.
pub fn scan_any(body: &[u8]) -> impl Iterator<Item = (&[u8], Found)> + '_ {
    let mut rest = body;
    std::iter::from_fn(move || {
        loop {
            let at = memchr::memmem::find(rest, b"~c")?;
            let after = rest.get(at + 2..)?;
            match parse_at(after) {
                Some((run, found, tail)) => {
                    rest = tail;
                    return Some((run, found));
                }
                None => rest = after,
            }
        }
    })
}

/// Every stamp of run `run_id` in `body`, in order.
pub fn scan<'a>(body: &'a [u8], run_id: &'a str) -> impl Iterator<Item = Found> + 'a {
    scan_any(body).filter_map(move |(run, found)| (run == run_id.as_bytes()).then_some(found))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_compact() {
        let s = format("ab12cd", 4242, 123_456_789);
        assert!(s.len() <= 24, "{s}");
        let body = format!("MSG lobby bob {s} hello world");
        let found: Vec<_> = scan(body.as_bytes(), "ab12cd").collect();
        assert_eq!(
            found,
            vec![Found {
                sender: 4242,
                sent_us: 123_456_789
            }]
        );
    }

    #[test]
    fn finds_several_and_skips_garbage_and_other_runs() {
        let body = format!(
            "~c ~cab12cd.zz ~czzzzzz.1.2~ {} x {} ~cab12cd.1.~",
            format("ab12cd", 0, 0),
            format("ab12cd", u64::MAX, 35)
        );
        let found: Vec<_> = scan(body.as_bytes(), "ab12cd").collect();
        assert_eq!(
            found,
            vec![
                Found {
                    sender: 0,
                    sent_us: 0
                },
                Found {
                    sender: u64::MAX,
                    sent_us: 35
                }
            ]
        );
    }

    #[test]
    fn run_ids_are_base36() {
        let id = new_run_id();
        assert_eq!(id.len(), RUN_ID_LEN);
        assert!(id.bytes().all(|b| DIGITS.contains(&b)));
    }

    #[test]
    fn tokens_are_stable_per_run_id() {
        let a = token("checkout-2026-12-02");
        assert_eq!(a, token("checkout-2026-12-02"));
        assert_ne!(a, token("checkout-2026-12-03"));
        assert_eq!(a.len(), RUN_ID_LEN);
        assert!(a.bytes().all(|b| DIGITS.contains(&b)));
        // A wall-clock send time (2026, in µs) still makes a short stamp.
        assert!(format(&a, 51_000, 1_796_000_000_000_000).len() <= 28);
    }
}
