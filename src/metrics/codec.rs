//! Histogram (de)serialization for result files: HdrHistogram's V2 compressed format
//! (the one every HdrHistogram implementation reads), base64-encoded as in HdrHistogram
//! interval logs. Decoding then merging reproduces the recorded distribution exactly.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

use super::MetricsError;

/// Encodes a histogram as base64 of its V2-deflate serialization.
pub fn encode_histogram(h: &Histogram<u64>) -> Result<String, MetricsError> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .map_err(|e| MetricsError::HistogramEncode(format!("{e:?}")))?;
    Ok(STANDARD.encode(bytes))
}

/// Encodes every non-empty histogram of `map`.
pub fn encode_all(
    map: &BTreeMap<String, Histogram<u64>>,
) -> Result<BTreeMap<String, String>, MetricsError> {
    map.iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(name, h)| Ok((name.clone(), encode_histogram(h)?)))
        .collect()
}

/// Decodes every histogram of `map` (the inverse of [`encode_all`]).
pub fn decode_all(
    map: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Histogram<u64>>, MetricsError> {
    map.iter()
        .map(|(name, text)| Ok((name.clone(), decode_histogram(text)?)))
        .collect()
}

/// Decodes [`encode_histogram`]'s output. The result auto-resizes, so it can be merged with
/// any other histogram.
pub fn decode_histogram(text: &str) -> Result<Histogram<u64>, MetricsError> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|e| MetricsError::HistogramDecode(format!("not base64: {e}")))?;
    let mut h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| {
            MetricsError::HistogramDecode(format!("not an HdrHistogram V2 blob: {e:?}"))
        })?;
    h.auto(true);
    Ok(h)
}
