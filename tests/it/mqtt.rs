//! An MQTT-shaped run against an in-test broker: varint-framed packets (`{length: varint}`),
//! a 17 000-byte PUBLISH round trip, a handler that acknowledges a QoS 1 delivery with the
//! packet id it decoded, an expect that decodes its reply, a type beside a body matcher, and
//! a handler capture. The broker speaks just enough MQTT 3.1.1 for that, with chatload's own
//! codec, and records what the client sent so the test can check it byte for byte.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use chatload::engine::{self, RunOptions};
use chatload::plan::{self, Format};
use chatload::protocol::{
    CodecConfig, Endian, Frame, FrameCodec, Framing, HeaderField, LengthCounts,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

const CONNECT: u32 = 0x10;
const CONNACK: u32 = 0x20;
const PUBLISH_QOS1: u32 = 0x32;
const PUBACK: u32 = 0x40;
const SUBSCRIBE: u32 = 0x82;
const SUBACK: u32 = 0x90;
const PINGRESP: u32 = 0xd0;
/// Not MQTT 3.1.1: the broker's "new token" push, to exercise a handler capture.
const TOKEN_PUSH: u32 = 0xf0;
/// The packet id the broker gives its delivery (the client's own was 7).
const DELIVERY_ID: u16 = 0x1234;

/// What the broker saw.
#[derive(Debug, Default)]
struct Seen {
    /// Topic and payload length of each PUBLISH received.
    published: Vec<(String, usize)>,
    /// Packet ids of the PUBACKs the client sent.
    acked: Vec<u16>,
}

fn mqtt_codec() -> FrameCodec {
    FrameCodec::new(CodecConfig {
        framing: Framing::LengthPrefixed {
            header: vec![HeaderField::Type { bytes: 1 }, HeaderField::VarintLength],
            endian: Endian::Big,
            length_counts: LengthCounts::Body,
        },
        ..CodecConfig::lines()
    })
    .expect("codec")
}

fn str16(out: &mut BytesMut, text: &str) {
    out.put_u16(text.len() as u16);
    out.put_slice(text.as_bytes());
}

fn read_str16(body: &mut Bytes) -> String {
    let len = usize::from(body.get_u16());
    let text = body.split_to(len);
    String::from_utf8(text.to_vec()).expect("utf-8 topic")
}

/// One client: CONNECT → token push + CONNACK, SUBSCRIBE → SUBACK, PUBLISH (QoS 1) → PUBACK
/// and the same message delivered back under the broker's own packet id; the client's PUBACK
/// for it → PINGRESP, which tells the flow the acknowledgement arrived.
async fn broker(listener: TcpListener, seen: Arc<Mutex<Seen>>) {
    let (socket, _) = listener.accept().await.expect("accept");
    let mut conn = Framed::new(socket, mqtt_codec());
    while let Some(frame) = conn.next().await {
        let frame = frame.expect("a well-framed packet");
        let mut body = frame.body.clone();
        let reply: Vec<Frame> = match frame.type_id {
            Some(CONNECT) => vec![
                Frame::typed(TOKEN_PUSH, &b"TOKEN s3cr3t"[..]),
                Frame::typed(CONNACK, &[0u8, 0][..]),
            ],
            Some(SUBSCRIBE) => {
                let pid = body.get_u16();
                let mut out = BytesMut::new();
                out.put_u16(pid);
                out.put_u8(1);
                vec![Frame::typed(SUBACK, out.freeze())]
            }
            Some(PUBLISH_QOS1) => {
                let topic = read_str16(&mut body);
                let pid = body.get_u16();
                let payload = body;
                seen.lock()
                    .expect("lock")
                    .published
                    .push((topic.clone(), payload.len()));
                let mut delivery = BytesMut::new();
                str16(&mut delivery, &topic);
                delivery.put_u16(DELIVERY_ID);
                delivery.put_slice(&payload);
                vec![
                    Frame::typed(PUBACK, pid.to_be_bytes().to_vec()),
                    Frame::typed(PUBLISH_QOS1, delivery.freeze()),
                ]
            }
            Some(PUBACK) => {
                seen.lock().expect("lock").acked.push(body.get_u16());
                vec![Frame::typed(PINGRESP, Bytes::new())]
            }
            other => panic!("unexpected packet type {other:?}"),
        };
        for frame in reply {
            conn.send(frame).await.expect("send");
        }
    }
}

const PLAN: &str = r#"
config:
  target: "127.0.0.1:1"
  phases: [{duration: 1s, arrivalCount: 1}]
  defaults: {timeout: 10s}
  protocol:
    framing:
      lengthPrefixed:
        header: [{type: 1}, {length: varint}]
        endian: big
  handlers:
    # A pushed token, captured for later steps: a type beside a body matcher.
    - {type: 240, on: "^TOKEN (?P<t>\\S+)$", capture: {token: t}, name: token}
    # Acknowledge every QoS 1 delivery with the packet id it carried.
    - type: {value: 48, mask: 240}
      decode: [{str: topic, lengthPrefix: 2}, {u16: pid}]
      reply: {type: 64, fields: [{u16: "{{ pid }}"}]}
      name: puback
scenarios:
  - name: mqtt
    flow:
      - connect
      - send:
          type: 16
          fields:
            - {str: MQTT, lengthPrefix: 2}
            - {u8: 4}
            - {u8: 2}
            - {u16: 60}
            - {str: "chatload-{{ vu.id }}", lengthPrefix: 2}
          expect: {type: 32, equals: "\0\0", name: connack}
      - send: {type: 130, fields: [{u16: 1}, {str: "t/#", lengthPrefix: 2}, {u8: 1}]}
        expect: {type: 144, decode: [{u16: sub_pid}, {u8: granted}], name: suback}
      - send:
          type: 50
          fields:
            - {str: "t/{{ granted }}/{{ token }}/{{ sub_pid + 1 }}", lengthPrefix: 2}
            - {u16: 7}
            - {str: "{{ stamp() }}", bytes: 17000}
          expect: {type: 64, equals: "\0\x07", name: puback}
      - expect: {type: 208, name: acked}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_varint_framed_17000_byte_publish_round_trips_and_a_handler_acks_its_packet_id() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let target = listener.local_addr().expect("addr").to_string();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let server = tokio::spawn(broker(listener, Arc::clone(&seen)));
    let plan = match plan::load_str(PLAN, Path::new("mqtt.yml"), Format::Yaml) {
        Ok(plan) => plan,
        Err(p) => panic!("{p}"),
    };
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        engine::run(Arc::new(plan), &target, RunOptions::default()),
    )
    .await
    .expect("ends")
    .expect("runs");
    let agg = &out.metrics.aggregate;
    let errors: Vec<_> = agg
        .counters
        .iter()
        .filter(|(k, v)| k.starts_with("errors.") && **v > 0)
        .collect();
    assert!(errors.is_empty(), "{errors:?} {:?}", out.error_samples);
    let counter = |name: &str| agg.counters.get(name).copied().unwrap_or(0);
    assert_eq!(counter("vusers.completed"), 1);
    // The broker got the 17 000-byte payload whole, under a topic built from the decoded
    // SUBACK (granted QoS 1, packet id 1) and the captured token.
    {
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.published, [("t/1/s3cr3t/2".to_owned(), 17_000)]);
        // The handler decoded the delivery's packet id and acknowledged exactly that one.
        assert_eq!(seen.acked, [DELIVERY_ID]);
    }
    assert_eq!(counter("handled.puback"), 1);
    assert_eq!(counter("handled.token"), 1);
    // The delivered copy came back through the varint codec with its stamp intact.
    assert_eq!(agg.summaries.get("delivery").map(|s| s.count), Some(1));
    assert!(counter("bytes.received") > 17_000, "{:?}", agg.counters);
    server.await.expect("broker ends when the client leaves");
}
