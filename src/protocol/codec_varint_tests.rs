//! Codec tests for the `{length: varint}` header field: round trips however the bytes are
//! split, hand-computed MQTT packets, the frame cap read from the varint, malformed lengths.

use bytes::{BufMut, BytesMut};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

use super::*;

fn codec(config: CodecConfig) -> FrameCodec {
    FrameCodec::new(config).expect("valid config")
}

/// MQTT's fixed header: one type-and-flags byte, then the remaining length as a varint.
fn mqtt() -> CodecConfig {
    layout(
        vec![HeaderField::Type { bytes: 1 }, HeaderField::VarintLength],
        LengthCounts::Body,
    )
}

fn layout(header: Vec<HeaderField>, length_counts: LengthCounts) -> CodecConfig {
    CodecConfig {
        framing: Framing::LengthPrefixed {
            header,
            endian: Endian::Big,
            length_counts,
        },
        ..CodecConfig::lines()
    }
}

fn encode_all(codec: &mut FrameCodec, frames: &[Frame]) -> BytesMut {
    let mut out = BytesMut::new();
    for frame in frames {
        codec.encode(frame, &mut out).expect("encodes");
    }
    out
}

/// Feeds `wire` in chunks ending at `cuts` (sorted, clamped), decoding after each chunk.
fn decode_split(codec: &mut FrameCodec, wire: &[u8], cuts: &[usize]) -> Vec<Frame> {
    let mut ends: Vec<usize> = cuts.iter().map(|c| (*c).min(wire.len())).collect();
    ends.sort_unstable();
    ends.push(wire.len());
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut fed = 0;
    for end in ends {
        buf.extend_from_slice(&wire[fed..end]);
        fed = end;
        while let Some(frame) = codec.decode(&mut buf).expect("decodes") {
            frames.push(frame);
        }
    }
    assert!(
        codec.decode_eof(&mut buf).expect("clean eof").is_none(),
        "nothing left over"
    );
    frames
}

fn frames_of(sizes: &[usize]) -> Vec<Frame> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, size)| {
            let body: Vec<u8> = (0..*size).map(|b| (b * 7 + i) as u8).collect();
            Frame::typed(0x30 | (i as u32 % 16), body)
        })
        .collect()
}

/// The layouts exercised: MQTT's, the varint first, the varint between fixed fields, and a
/// varint that counts the whole frame (itself included).
fn layouts() -> Vec<CodecConfig> {
    vec![
        mqtt(),
        layout(
            vec![HeaderField::VarintLength, HeaderField::Type { bytes: 2 }],
            LengthCounts::Body,
        ),
        layout(
            vec![
                HeaderField::Fixed {
                    value: vec![0xca, 0xfe],
                },
                HeaderField::VarintLength,
                HeaderField::Type { bytes: 1 },
            ],
            LengthCounts::Frame,
        ),
        CodecConfig {
            transform: Some(Transform::Xor {
                key: b"k3y".to_vec(),
            }),
            ..layout(
                vec![HeaderField::Type { bytes: 1 }, HeaderField::VarintLength],
                LengthCounts::Frame,
            )
        },
    ]
}

#[test]
fn every_split_point_of_a_varint_stream_decodes_the_same() {
    // Bodies on both sides of each width boundary a 1-byte type header can reach here.
    let frames = frames_of(&[0, 1, 125, 126, 127, 128, 300, 1000]);
    for cfg in layouts() {
        let wire = encode_all(&mut codec(cfg.clone()), &frames);
        for cut in 0..=wire.len() {
            assert_eq!(
                decode_split(&mut codec(cfg.clone()), &wire, &[cut]),
                frames,
                "{:?} split at {cut}",
                cfg.framing
            );
        }
        // One byte at a time: every varint arrives a byte at a time too.
        let every: Vec<usize> = (0..wire.len()).collect();
        assert_eq!(decode_split(&mut codec(cfg), &wire, &every), frames);
    }
}

proptest! {
    #[test]
    fn varint_frames_round_trip_however_split(
        layout in 0usize..4,
        sizes in prop::collection::vec(prop_oneof![0usize..200, 16_300usize..16_500, 17_000usize..17_001], 1..5),
        cuts in prop::collection::vec(0usize..70_000, 0..8),
    ) {
        let cfg = layouts().swap_remove(layout);
        let frames = frames_of(&sizes);
        let wire = encode_all(&mut codec(cfg.clone()), &frames);
        prop_assert_eq!(decode_split(&mut codec(cfg), &wire, &cuts), frames);
    }

    #[test]
    fn random_bytes_never_panic_a_varint_codec(
        layout in 0usize..4,
        wire in prop::collection::vec(any::<u8>(), 0..400),
        cap in 1usize..300,
    ) {
        let mut codec = codec(CodecConfig { max_frame_bytes: cap, ..layouts().swap_remove(layout) });
        let mut buf = BytesMut::from(&wire[..]);
        while let Ok(Some(frame)) = codec.decode(&mut buf) {
            prop_assert!(frame.body.len() <= cap);
        }
        let _ = codec.decode_eof(&mut buf);
    }
}

#[test]
fn mqtt_packets_match_hand_computed_bytes() {
    let mut codec = codec(mqtt());
    let mut out = BytesMut::new();
    // PUBACK for packet id 1: type 0x40, remaining length 2.
    codec
        .encode(Frame::typed(0x40, vec![0, 1]), &mut out)
        .expect("encodes");
    assert_eq!(&out[..], [0x40, 0x02, 0x00, 0x01]);
    // A 17 000-byte PUBLISH body: the remaining length takes three bytes.
    out.clear();
    codec
        .encode(Frame::typed(0x32, vec![b'x'; 17_000]), &mut out)
        .expect("encodes");
    assert_eq!(&out[..4], [0x32, 0xe8, 0x84, 0x01]);
    assert_eq!(out.len(), 4 + 17_000);
    let frame = codec.decode(&mut out).expect("decodes").expect("whole");
    assert_eq!((frame.type_id, frame.body.len()), (Some(0x32), 17_000));
    assert!(out.is_empty());
}

#[test]
fn a_varint_counting_the_frame_counts_itself() {
    // 1 type byte + 126 body bytes = 127: one more byte for the length makes 128, which
    // needs two, so the length is 129 in two bytes.
    let mut codec = codec(layout(
        vec![HeaderField::Type { bytes: 1 }, HeaderField::VarintLength],
        LengthCounts::Frame,
    ));
    let mut out = BytesMut::new();
    codec
        .encode(Frame::typed(1, vec![0; 126]), &mut out)
        .expect("encodes");
    assert_eq!(&out[..3], [0x01, 0x81, 0x01]);
    assert_eq!(out.len(), 129);
    out.clear();
    codec
        .encode(Frame::typed(1, vec![0; 125]), &mut out)
        .expect("encodes");
    assert_eq!(&out[..2], [0x01, 0x7f]);
    assert_eq!(out.len(), 127);
}

#[test]
fn a_varint_over_the_cap_is_refused_before_its_body_arrives() {
    let mut codec = codec(CodecConfig {
        max_frame_bytes: 16_384,
        ..mqtt()
    });
    // Type, then 17 000 as a varint: the header alone says the frame is too big.
    let mut buf = BytesMut::from(&[0x30u8, 0xe8, 0x84, 0x01][..]);
    let err = codec.decode(&mut buf).expect_err("over the cap");
    assert!(
        matches!(
            err,
            ProtocolError::FrameTooLarge {
                frame_bytes: 17_004,
                max_frame_bytes: 16_384
            }
        ),
        "{err}"
    );
    assert!(buf.capacity() < 1024, "no room was reserved for the frame");
    // A frame of exactly the cap passes: 1 type byte, a 2-byte varint, 16 381 body bytes.
    let mut out = BytesMut::new();
    codec
        .encode(Frame::typed(0x30, vec![1; 16_381]), &mut out)
        .expect("fits");
    assert_eq!(out.len(), 16_384);
    let err = codec
        .encode(Frame::typed(0x30, vec![1; 16_382]), &mut out)
        .expect_err("one byte over");
    assert!(matches!(err, ProtocolError::FrameTooLarge { .. }), "{err}");
}

#[test]
fn malformed_varints_are_errors() {
    let mut codec = codec(mqtt());
    // Four bytes that all say another follows.
    let mut buf = BytesMut::from(&[0x30u8, 0x80, 0x80, 0x80, 0x80, 0x01][..]);
    let err = codec.decode(&mut buf).expect_err("too long");
    assert!(err.to_string().contains("at most 4 bytes"), "{err}");
    // A stream that ends inside a varint is a truncated frame.
    let mut buf = BytesMut::from(&[0x30u8, 0x80][..]);
    assert!(codec.decode(&mut buf).expect("needs more").is_none());
    assert!(matches!(
        codec.decode_eof(&mut buf),
        Err(ProtocolError::TruncatedFrame { buffered_bytes: 2 })
    ));
    // A whole-frame varint below its own header.
    let mut frame_codec = codec_for_frame_counts();
    let mut buf = BytesMut::new();
    buf.put_u8(1);
    buf.put_u8(1);
    assert!(matches!(
        frame_codec.decode(&mut buf),
        Err(ProtocolError::LengthBelowHeader { length: 1, .. })
    ));
}

fn codec_for_frame_counts() -> FrameCodec {
    codec(layout(
        vec![HeaderField::Type { bytes: 1 }, HeaderField::VarintLength],
        LengthCounts::Frame,
    ))
}

#[test]
fn a_varint_layout_needs_exactly_one_length() {
    let two = layout(
        vec![HeaderField::VarintLength, HeaderField::Length { bytes: 2 }],
        LengthCounts::Body,
    );
    assert!(FrameCodec::new(two).is_err());
    let varint_only = layout(vec![HeaderField::VarintLength], LengthCounts::Body);
    let mut codec = codec(varint_only);
    let mut out = BytesMut::new();
    codec
        .encode(Frame::text(&b"hi"[..]), &mut out)
        .expect("encodes");
    assert_eq!(&out[..], [0x02, b'h', b'i']);
}

#[test]
fn a_varint_message_holds_exactly_one_packet() {
    let mut codec = codec(mqtt());
    let frame = codec
        .decode_message(bytes::Bytes::from_static(&[0x90, 0x03, 0x00, 0x01, 0x01]))
        .expect("one SUBACK");
    assert_eq!(frame, Frame::typed(0x90, vec![0, 1, 1]));
    assert!(matches!(
        codec.decode_message(bytes::Bytes::from_static(&[0x90, 0x03, 0x00])),
        Err(ProtocolError::TruncatedFrame { .. })
    ));
}
