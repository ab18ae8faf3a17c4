//! Codec tests: round trips over every framing and header layout, split reads, the frame cap,
//! CRLF, XOR, and malformed input.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

use super::*;

fn codec(config: CodecConfig) -> FrameCodec {
    FrameCodec::new(config).expect("valid config")
}

fn encode_all(codec: &mut FrameCodec, frames: &[Frame]) -> BytesMut {
    let mut out = BytesMut::new();
    for frame in frames {
        codec.encode(frame, &mut out).expect("encodes");
    }
    out
}

/// Feeds `wire` in chunks ending at `cuts`, decoding after each one, then hits EOF.
fn decode_in_chunks(codec: &mut FrameCodec, wire: &[u8], cuts: &[usize]) -> Vec<Frame> {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut fed = 0;
    let mut ends: Vec<usize> = cuts.iter().map(|c| c.min(&wire.len()).to_owned()).collect();
    ends.sort_unstable();
    ends.push(wire.len());
    for end in ends {
        buf.extend_from_slice(&wire[fed..end.max(fed)]);
        fed = end.max(fed);
        while let Some(frame) = codec.decode(&mut buf).expect("decodes") {
            frames.push(frame);
        }
    }
    while let Some(frame) = codec.decode_eof(&mut buf).expect("clean eof") {
        frames.push(frame);
    }
    frames
}

fn config(framing: Framing) -> CodecConfig {
    CodecConfig {
        framing,
        ..CodecConfig::lines()
    }
}

fn header_strategy() -> impl Strategy<Value = (Vec<HeaderField>, Endian, LengthCounts)> {
    let length = prop_oneof![Just(1u8), Just(2), Just(4), Just(8)];
    let type_width = prop::option::of(prop_oneof![Just(1u8), Just(2), Just(4)]);
    let fixed = prop::collection::vec(prop::collection::vec(any::<u8>(), 1..4), 0..3);
    let endian = prop_oneof![Just(Endian::Little), Just(Endian::Big)];
    let counts = prop_oneof![Just(LengthCounts::Body), Just(LengthCounts::Frame)];
    (length, type_width, fixed, any::<u64>(), endian, counts).prop_map(
        |(length, type_width, fixed, order_seed, endian, counts)| {
            let mut header = vec![HeaderField::Length { bytes: length }];
            if let Some(bytes) = type_width {
                header.push(HeaderField::Type { bytes });
            }
            header.extend(fixed.into_iter().map(|value| HeaderField::Fixed { value }));
            // Deterministic shuffle from the seed: every order of fields gets exercised.
            let mut seed = order_seed;
            for i in (1..header.len()).rev() {
                header.swap(i, (seed % (i as u64 + 1)) as usize);
                seed /= i as u64 + 1;
            }
            (header, endian, counts)
        },
    )
}

fn xor_strategy() -> impl Strategy<Value = Option<Transform>> {
    prop::option::of(
        prop::collection::vec(any::<u8>(), 1..5).prop_map(|key| Transform::Xor { key }),
    )
}

proptest! {
    #[test]
    fn length_prefixed_round_trips(
        (header, endian, length_counts) in header_strategy(),
        transform in xor_strategy(),
        bodies in prop::collection::vec((any::<u32>(), prop::collection::vec(any::<u8>(), 0..200)), 0..6),
        cuts in prop::collection::vec(0usize..2000, 0..6),
    ) {
        let type_width = header.iter().find_map(|f| match f {
            HeaderField::Type { bytes } => Some(*bytes),
            _ => None,
        });
        let length_width = header.iter().find_map(|f| match f {
            HeaderField::Length { bytes } => Some(*bytes),
            _ => None,
        }).unwrap_or(8);
        let header_bytes: usize = header.iter().map(HeaderField::width).sum();
        let max_body = if length_width >= 8 { usize::MAX } else { (1usize << (8 * length_width)) - 1 - header_bytes };
        let frames: Vec<Frame> = bodies
            .into_iter()
            .map(|(type_id, mut body)| {
                body.truncate(max_body);
                let type_id = type_width.map(|w| if w >= 4 { type_id } else { type_id % (1 << (8 * w)) });
                Frame { type_id, body: body.into() }
            })
            .collect();
        let cfg = CodecConfig {
            framing: Framing::LengthPrefixed { header, endian, length_counts },
            transform,
            ..CodecConfig::lines()
        };
        let wire = encode_all(&mut codec(cfg.clone()), &frames);
        prop_assert_eq!(decode_in_chunks(&mut codec(cfg), &wire, &cuts), frames);
    }

    #[test]
    fn text_framings_round_trip(
        delimiter in prop_oneof![Just(None), prop::collection::vec(any::<u8>(), 1..4).prop_map(Some)],
        crlf in any::<bool>(),
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..100), 0..6),
        cuts in prop::collection::vec(0usize..700, 0..6),
    ) {
        let framing = match &delimiter {
            Some(d) => Framing::Delimiter(d.clone()),
            None => Framing::Lines,
        };
        let terminator = delimiter.clone().unwrap_or_else(|| b"\n".to_vec());
        // Keep only bodies the framing can carry: no terminator inside, and for lines no
        // trailing CR (it would be read as part of a CRLF ending).
        let frames: Vec<Frame> = bodies
            .into_iter()
            .filter(|b| !b.windows(terminator.len()).any(|w| w == terminator.as_slice()))
            .filter(|b| delimiter.is_some() || b.last() != Some(&b'\r'))
            .map(Frame::text)
            .collect();
        // A delimiter body that ends with a prefix of the delimiter would merge with it.
        let frames: Vec<Frame> = frames.into_iter().filter(|f| {
            let mut joined = f.body.to_vec();
            joined.extend_from_slice(&terminator);
            joined.windows(terminator.len()).position(|w| w == terminator.as_slice()) == Some(f.body.len())
        }).collect();
        let cfg = CodecConfig {
            framing,
            line_ending: if crlf { LineEnding::CrLf } else { LineEnding::Lf },
            ..CodecConfig::lines()
        };
        let wire = encode_all(&mut codec(cfg.clone()), &frames);
        prop_assert_eq!(decode_in_chunks(&mut codec(cfg), &wire, &cuts), frames);
    }

    #[test]
    fn random_bytes_never_panic(
        (header, endian, length_counts) in header_strategy(),
        wire in prop::collection::vec(any::<u8>(), 0..600),
        cap in 1usize..300,
    ) {
        let framings = [
            Framing::Lines,
            Framing::Delimiter(b"\r\n\0".to_vec()),
            Framing::LengthPrefixed { header, endian, length_counts },
        ];
        for framing in framings {
            let mut codec = codec(CodecConfig { max_frame_bytes: cap, ..config(framing) });
            let mut buf = BytesMut::from(&wire[..]);
            while let Ok(Some(frame)) = codec.decode(&mut buf) {
                prop_assert!(frame.body.len() <= cap);
            }
            let _ = codec.decode_eof(&mut buf);
        }
    }
}

#[test]
fn every_split_point_of_a_stream_decodes_the_same() {
    let game = CodecConfig {
        transform: Some(Transform::Xor {
            key: b"k3y".to_vec(),
        }),
        ..CodecConfig::u16_length_type_le()
    };
    let configs = [
        config(Framing::Lines),
        config(Framing::Delimiter(b"||".to_vec())),
        game,
    ];
    for cfg in configs {
        let typed = matches!(cfg.framing, Framing::LengthPrefixed { .. });
        let frames: Vec<Frame> = ["LOGIN ann", "", "SAY hello world", "x"]
            .iter()
            .enumerate()
            .map(|(i, body)| Frame {
                type_id: typed.then_some(i as u32 + 1),
                body: body.as_bytes().to_vec().into(),
            })
            .collect();
        let wire = encode_all(&mut codec(cfg.clone()), &frames);
        for first in 0..=wire.len() {
            for second in first..=wire.len() {
                let got = decode_in_chunks(&mut codec(cfg.clone()), &wire, &[first, second]);
                assert_eq!(got, frames, "{:?} split at {first},{second}", cfg.framing);
            }
        }
    }
}

#[test]
fn oversized_length_prefixed_frame_is_rejected_from_its_header() {
    let mut codec = codec(CodecConfig {
        max_frame_bytes: 64,
        ..config(Framing::LengthPrefixed {
            header: vec![HeaderField::Length { bytes: 4 }],
            endian: Endian::Big,
            length_counts: LengthCounts::Body,
        })
    });
    let mut buf = BytesMut::with_capacity(8);
    buf.put_u32(1_000_000_000);
    let err = codec.decode(&mut buf).expect_err("over the cap");
    assert!(
        matches!(
            err,
            ProtocolError::FrameTooLarge {
                frame_bytes: 1_000_000_004,
                ..
            }
        ),
        "{err}"
    );
    assert!(buf.capacity() < 1024, "no room was reserved for the frame");
    // A frame of exactly the cap passes.
    let mut buf = BytesMut::new();
    buf.put_u32(60);
    buf.put_bytes(7, 60);
    assert_eq!(
        codec.decode(&mut buf).expect("fits").map(|f| f.body.len()),
        Some(60)
    );
}

#[test]
fn unterminated_text_is_rejected_once_over_the_cap() {
    for framing in [Framing::Lines, Framing::Delimiter(b"\0\0".to_vec())] {
        let mut codec = codec(CodecConfig {
            max_frame_bytes: 10,
            ..config(framing.clone())
        });
        let mut buf = BytesMut::from(&b"0123456789"[..]);
        assert!(
            codec
                .decode(&mut buf)
                .expect("at the cap, still waiting")
                .is_none()
        );
        buf.put_slice(b"ab");
        let err = codec.decode(&mut buf).expect_err("over the cap");
        assert!(
            matches!(
                err,
                ProtocolError::UnterminatedFrame {
                    max_frame_bytes: 10
                }
            ),
            "{framing:?}: {err}"
        );
    }
    // A terminated line over the cap is refused too.
    let mut codec = codec(CodecConfig {
        max_frame_bytes: 3,
        ..config(Framing::Lines)
    });
    let mut buf = BytesMut::from(&b"abcd\n"[..]);
    assert!(codec.decode(&mut buf).is_err());
    // Sending over the cap is refused as well.
    assert!(codec.encode(&b"abcd"[..], &mut BytesMut::new()).is_err());
}

#[test]
fn crlf_is_stripped_on_read_and_written_when_asked() {
    let mut lf = codec(config(Framing::Lines));
    let mut buf = BytesMut::from(&b"OK ann\r\nPONG 1\n\r\n"[..]);
    let bodies: Vec<_> = std::iter::from_fn(|| lf.decode(&mut buf).expect("decodes"))
        .map(|f| f.body)
        .collect();
    assert_eq!(bodies, ["OK ann".as_bytes(), b"PONG 1", b""]);
    let mut crlf = codec(CodecConfig {
        line_ending: LineEnding::CrLf,
        ..CodecConfig::lines()
    });
    let mut out = BytesMut::new();
    crlf.encode(&b"PING 1"[..], &mut out).expect("encodes");
    assert_eq!(&out[..], b"PING 1\r\n");
    lf.encode(&b"PING 1"[..], &mut out).expect("encodes");
    assert_eq!(&out[..], b"PING 1\r\nPING 1\n");
    assert!(matches!(
        lf.encode(&b"a\nb"[..], &mut out),
        Err(ProtocolError::TerminatorInBody)
    ));
}

#[test]
fn xor_applies_to_the_body_both_ways() {
    let cfg = CodecConfig {
        transform: Some(Transform::Xor {
            key: vec![0x01, 0xff],
        }),
        ..CodecConfig::u16_length_type_le()
    };
    let mut codec = codec(cfg);
    let mut out = BytesMut::new();
    codec
        .encode(Frame::typed(3, vec![0x10, 0x20, 0x30]), &mut out)
        .expect("encodes");
    // [u16 LE total 7][u16 LE type 3][body ^ 01 ff 01]
    assert_eq!(&out[..], [7, 0, 3, 0, 0x11, 0xdf, 0x31]);
    let frame = codec
        .decode(&mut out)
        .expect("decodes")
        .expect("whole frame");
    assert_eq!(frame, Frame::typed(3, vec![0x10, 0x20, 0x30]));
}

#[test]
fn header_layouts_match_hand_computed_bytes() {
    let cfg = config(Framing::LengthPrefixed {
        header: vec![
            HeaderField::Fixed {
                value: vec![0xca, 0xfe],
            },
            HeaderField::Type { bytes: 1 },
            HeaderField::Length { bytes: 4 },
        ],
        endian: Endian::Big,
        length_counts: LengthCounts::Body,
    });
    let mut out = BytesMut::new();
    codec(cfg)
        .encode(Frame::typed(9, "hi"), &mut out)
        .expect("encodes");
    assert_eq!(&out[..], [0xca, 0xfe, 9, 0, 0, 0, 2, b'h', b'i']);
}

#[test]
fn malformed_headers_are_errors() {
    let mut codec = codec(CodecConfig::u16_length_type_le());
    let mut buf = BytesMut::from(&[2u8, 0, 1, 0][..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(ProtocolError::LengthBelowHeader { length: 2, .. })
    ));
    let mut out = BytesMut::new();
    let one_byte_type = CodecConfig {
        framing: Framing::LengthPrefixed {
            header: vec![
                HeaderField::Length { bytes: 1 },
                HeaderField::Type { bytes: 1 },
            ],
            endian: Endian::Little,
            length_counts: LengthCounts::Body,
        },
        ..CodecConfig::lines()
    };
    let mut small = FrameCodec::new(one_byte_type).expect("valid");
    assert!(matches!(
        small.encode(Frame::typed(256, ""), &mut out),
        Err(ProtocolError::TypeOverflow { .. })
    ));
    assert!(matches!(
        small.encode(Frame::typed(1, vec![0; 256]), &mut out),
        Err(ProtocolError::LengthOverflow { .. })
    ));
    let mut truncated = BytesMut::from(&[9u8, 0, 1, 0, 1][..]);
    assert!(matches!(
        codec.decode_eof(&mut truncated),
        Err(ProtocolError::TruncatedFrame { .. })
    ));
}

#[test]
fn inconsistent_configs_are_refused() {
    let bad = [
        config(Framing::Delimiter(vec![])),
        config(Framing::LengthPrefixed {
            header: vec![HeaderField::Type { bytes: 2 }],
            endian: Endian::Little,
            length_counts: LengthCounts::Body,
        }),
        config(Framing::LengthPrefixed {
            header: vec![HeaderField::Length { bytes: 3 }],
            endian: Endian::Little,
            length_counts: LengthCounts::Body,
        }),
        CodecConfig {
            transform: Some(Transform::Xor { key: vec![] }),
            ..CodecConfig::lines()
        },
        CodecConfig {
            max_frame_bytes: 0,
            ..CodecConfig::lines()
        },
    ];
    for cfg in bad {
        assert!(FrameCodec::new(cfg.clone()).is_err(), "{cfg:?}");
    }
}

#[test]
fn a_message_is_one_frame_without_terminator() {
    let mut codec = FrameCodec::new(CodecConfig {
        transform: Some(Transform::Xor { key: b"k".to_vec() }),
        ..CodecConfig::lines()
    })
    .expect("valid");
    let mut wire = BytesMut::new();
    codec
        .encode_message(None, b"SAY a\nb", &mut wire)
        .expect("a newline is fine inside a message");
    assert_eq!(wire.len(), 7, "no terminator added");
    let frame = codec.decode_message(wire.freeze()).expect("decodes");
    assert_eq!(frame, Frame::text("SAY a\nb"));
}

#[test]
fn a_length_prefixed_message_holds_exactly_one_packet() {
    let mut codec = FrameCodec::new(CodecConfig::u16_length_type_le()).expect("valid");
    let mut wire = BytesMut::new();
    codec
        .encode_message(Some(7), b"hi", &mut wire)
        .expect("encodes");
    assert_eq!(&wire[..], [6, 0, 7, 0, b'h', b'i']);
    let one = wire.clone().freeze();
    assert_eq!(
        codec.decode_message(one).expect("one"),
        Frame::typed(7, "hi")
    );
    wire.extend_from_slice(&[0]);
    assert!(matches!(
        codec.decode_message(wire.clone().freeze()),
        Err(ProtocolError::TrailingBytes { trailing_bytes: 1 })
    ));
    assert!(matches!(
        codec.decode_message(Bytes::from_static(&[6, 0, 7])),
        Err(ProtocolError::TruncatedFrame { .. })
    ));
    let capped = FrameCodec::new(CodecConfig {
        max_frame_bytes: 3,
        ..CodecConfig::lines()
    })
    .expect("valid");
    assert!(matches!(
        capped.encode_message(None, b"four", &mut BytesMut::new()),
        Err(ProtocolError::FrameTooLarge { .. })
    ));
}

#[test]
fn a_newline_anywhere_in_a_short_or_long_body_is_refused_and_found_when_decoding() {
    // Short bodies are scanned byte by byte, longer ones by memchr: both must find it.
    for len in 1..40 {
        for at in 0..len {
            let mut body = vec![b'a'; len];
            body[at] = b'\n';
            let mut dst = BytesMut::new();
            let refused = codec(CodecConfig::lines()).encode_parts(None, &body, &mut dst);
            assert!(
                matches!(refused, Err(ProtocolError::TerminatorInBody)),
                "len {len}, newline at {at}"
            );
            let mut src = BytesMut::from(&body[..]);
            let frame = codec(CodecConfig::lines())
                .decode(&mut src)
                .expect("decodes");
            assert_eq!(frame.map(|f| f.body.len()), Some(at), "len {len}, at {at}");
        }
        let mut dst = BytesMut::new();
        codec(CodecConfig::lines())
            .encode_parts(None, &vec![b'a'; len], &mut dst)
            .expect("no newline, accepted");
    }
}
