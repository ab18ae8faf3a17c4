//! The variable-length integer of MQTT's remaining length: 7 bits per byte, least significant
//! group first, the high bit set on every byte but the last, 1 to 4 bytes (so at most
//! 268 435 455). Used by the `{length: varint}` header field.
//!
//! Only the integer itself: where it sits in a header and what it counts is the codec's job.

use bytes::BufMut;

/// The most bytes a varint may take.
pub const MAX_BYTES: usize = 4;

/// The largest value four bytes hold: 2^28 - 1.
pub const MAX_VALUE: u64 = (1 << (7 * MAX_BYTES)) - 1;

/// Why bytes are not a varint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VarintError {
    #[error("a varint length has at most {MAX_BYTES} bytes, but the 4th byte says more follow")]
    TooLong,
    #[error("{value} is over the varint maximum of {MAX_VALUE}")]
    TooLarge { value: u64 },
}

/// How many bytes `value` takes, or `None` when it is over [`MAX_VALUE`].
pub fn encoded_len(value: u64) -> Option<usize> {
    match value {
        0..=0x7f => Some(1),
        0x80..=0x3fff => Some(2),
        0x4000..=0x1f_ffff => Some(3),
        0x20_0000..=MAX_VALUE => Some(4),
        _ => None,
    }
}

/// Appends `value` in as few bytes as it needs.
pub fn put(dst: &mut impl BufMut, value: u64) -> Result<(), VarintError> {
    if value > MAX_VALUE {
        return Err(VarintError::TooLarge { value });
    }
    let mut rest = value;
    loop {
        // Below 2^28, so every group fits a byte.
        let group = (rest & 0x7f) as u8;
        rest >>= 7;
        if rest == 0 {
            dst.put_u8(group);
            return Ok(());
        }
        dst.put_u8(group | 0x80);
    }
}

/// Reads a varint from the start of `src`: `Ok(Some((value, bytes read)))`, `Ok(None)` when
/// `src` ends before the last byte (wait for more), an error after four bytes that all say
/// more follow.
pub fn read(src: &[u8]) -> Result<Option<(u64, usize)>, VarintError> {
    let mut value = 0u64;
    for (i, byte) in src.iter().take(MAX_BYTES).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if src.len() >= MAX_BYTES {
        return Err(VarintError::TooLong);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put(&mut out, value).expect("in range");
        out
    }

    #[test]
    fn matches_the_mqtt_table() {
        // MQTT 3.1.1 §2.2.3: the first and last value of each width.
        let table: [(u64, &[u8]); 8] = [
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xff, 0x7f]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xff, 0xff, 0x7f]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xff, 0xff, 0xff, 0x7f]),
        ];
        for (value, bytes) in table {
            assert_eq!(encode(value), bytes, "{value}");
            assert_eq!(encoded_len(value), Some(bytes.len()), "{value}");
            assert_eq!(read(bytes), Ok(Some((value, bytes.len()))), "{value}");
        }
        // 17 000, the size of the large test message: 0x4268 = 0b1_0000100_1101000.
        assert_eq!(encode(17_000), [0xe8, 0x84, 0x01]);
    }

    #[test]
    fn refuses_what_four_bytes_cannot_hold() {
        assert_eq!(encoded_len(MAX_VALUE + 1), None);
        let mut out = Vec::new();
        assert_eq!(
            put(&mut out, MAX_VALUE + 1),
            Err(VarintError::TooLarge {
                value: MAX_VALUE + 1
            })
        );
        assert!(out.is_empty(), "nothing written on error");
        assert_eq!(read(&[0x80, 0x80, 0x80, 0x80]), Err(VarintError::TooLong));
        assert_eq!(
            read(&[0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(VarintError::TooLong)
        );
    }

    #[test]
    fn an_unfinished_varint_asks_for_more() {
        assert_eq!(read(&[]), Ok(None));
        assert_eq!(read(&[0x80]), Ok(None));
        assert_eq!(read(&[0xff, 0xff, 0xff]), Ok(None));
        // Bytes after the varint are not its business.
        assert_eq!(read(&[0x05, 0xff]), Ok(Some((5, 1))));
    }

    proptest! {
        #[test]
        fn round_trips_every_value_in_range(value in 0..=MAX_VALUE, tail in any::<Vec<u8>>()) {
            let mut wire = encode(value);
            prop_assert_eq!(Some(wire.len()), encoded_len(value));
            let len = wire.len();
            wire.extend_from_slice(&tail);
            prop_assert_eq!(read(&wire), Ok(Some((value, len))));
            // Any strict prefix is incomplete, never a wrong value.
            for cut in 0..len {
                prop_assert_eq!(read(&wire[..cut]), Ok(None));
            }
        }
    }
}
