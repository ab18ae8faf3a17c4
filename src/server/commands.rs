//! The chat commands and replies, and how each wire flavour spells them.
//!
//! Text: `VERB args` per line. Binary: the verb is the packet type and the body holds the
//! same arguments as the text form (see [`RequestType`] and [`ReplyType`]).

use bytes::{Bytes, BytesMut};

use crate::protocol::{Frame, FrameCodec};
use crate::server::ServerFraming;

/// Packet types of client → server commands in the binary flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum RequestType {
    Login = 1,
    Join = 2,
    Say = 3,
    Whisper = 4,
    Ping = 5,
    Echo = 6,
    Quit = 7,
}

/// Packet types of server → client messages in the binary flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ReplyType {
    Err = 100,
    Ok = 101,
    Joined = 102,
    Msg = 103,
    Dm = 104,
    Pong = 105,
    Echo = 106,
    Bye = 107,
}

impl ReplyType {
    fn keyword(self) -> &'static str {
        match self {
            ReplyType::Err => "ERR",
            ReplyType::Ok => "OK",
            ReplyType::Joined => "JOINED",
            ReplyType::Msg => "MSG",
            ReplyType::Dm => "DM",
            ReplyType::Pong => "PONG",
            ReplyType::Echo => "",
            ReplyType::Bye => "BYE",
        }
    }
}

const VERBS: [(&str, RequestType); 7] = [
    ("LOGIN", RequestType::Login),
    ("JOIN", RequestType::Join),
    ("SAY", RequestType::Say),
    ("WHISPER", RequestType::Whisper),
    ("PING", RequestType::Ping),
    ("ECHO", RequestType::Echo),
    ("QUIT", RequestType::Quit),
];

/// A parsed command, borrowing its arguments from the frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Login(&'a str),
    Join(&'a str),
    Say(&'a str),
    Whisper { to: &'a str, text: &'a str },
    Ping(&'a str),
    Echo(&'a str),
    Quit,
}

/// Parses a frame; the error is the `ERR` reason sent back.
pub fn parse(framing: ServerFraming, frame: &Frame) -> Result<Command<'_>, String> {
    let text = frame
        .body_str()
        .ok_or_else(|| "command is not valid UTF-8".to_string())?;
    let (verb, args) = match framing {
        ServerFraming::Text => {
            let (word, args) = text.split_once(' ').unwrap_or((text, ""));
            let verb = VERBS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(word))
                .map(|(_, verb)| *verb)
                .ok_or_else(|| {
                    format!(
                        "unknown command {:?} (commands: LOGIN JOIN SAY WHISPER PING ECHO QUIT)",
                        truncate(word, 32)
                    )
                })?;
            (verb, args)
        }
        ServerFraming::Binary => {
            let type_id = frame.type_id.unwrap_or(0);
            let verb = VERBS
                .iter()
                .map(|(_, verb)| *verb)
                .find(|verb| *verb as u32 == type_id)
                .ok_or_else(|| format!("unknown packet type {type_id} (commands are types 1-7)"))?;
            (verb, text)
        }
    };
    let one_word = |what: &str| {
        let word = args.trim();
        if word.is_empty() || word.contains(char::is_whitespace) {
            Err(format!("{what} must be one word"))
        } else {
            Ok(word)
        }
    };
    Ok(match verb {
        RequestType::Login => Command::Login(one_word("LOGIN name")?),
        RequestType::Join => Command::Join(one_word("JOIN room")?),
        RequestType::Say => Command::Say(args),
        RequestType::Whisper => {
            let (to, text) = args
                .trim_start()
                .split_once(' ')
                .ok_or_else(|| "WHISPER needs a name and a text".to_string())?;
            Command::Whisper { to, text }
        }
        RequestType::Ping => Command::Ping(args),
        RequestType::Echo => Command::Echo(args),
        RequestType::Quit => Command::Quit,
    })
}

fn truncate(text: &str, max_chars: usize) -> &str {
    text.char_indices()
        .nth(max_chars)
        .map_or(text, |(at, _)| text.get(..at).unwrap_or(text))
}

/// Encodes one server message (`parts` joined by spaces) for the flavour.
pub fn encode(
    codec: &FrameCodec,
    framing: ServerFraming,
    reply: ReplyType,
    parts: &[&str],
) -> Bytes {
    let mut body = Vec::with_capacity(16 + parts.iter().map(|p| p.len() + 1).sum::<usize>());
    if framing == ServerFraming::Text && !reply.keyword().is_empty() {
        body.extend_from_slice(reply.keyword().as_bytes());
        if !parts.is_empty() {
            body.push(b' ');
        }
    }
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            body.push(b' ');
        }
        body.extend_from_slice(part.as_bytes());
    }
    let type_id = (framing == ServerFraming::Binary).then_some(reply as u32);
    let mut out = BytesMut::with_capacity(body.len() + 8);
    if codec.encode_parts(type_id, &body, &mut out).is_err() {
        // Only an over-the-cap reply (e.g. PONG of a maximal line) gets here.
        out.clear();
        let err = match framing {
            ServerFraming::Text => &b"ERR reply too large"[..],
            ServerFraming::Binary => &b"reply too large"[..],
        };
        let err_type = type_id.map(|_| ReplyType::Err as u32);
        let _ = codec.encode_parts(err_type, err, &mut out);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::CodecConfig;

    #[test]
    fn parses_text_commands() {
        let parse_text = |line: &'static str| {
            let frame = Frame::text(line);
            parse(ServerFraming::Text, &frame).map(|command| format!("{command:?}"))
        };
        let ok = |command: Command<'_>| Ok(format!("{command:?}"));
        assert_eq!(parse_text("LOGIN ann"), ok(Command::Login("ann")));
        assert_eq!(parse_text("join lobby"), ok(Command::Join("lobby")));
        assert_eq!(parse_text("SAY hi there"), ok(Command::Say("hi there")));
        assert_eq!(
            parse_text("WHISPER bob psst hey"),
            ok(Command::Whisper {
                to: "bob",
                text: "psst hey"
            })
        );
        assert_eq!(parse_text("PING"), ok(Command::Ping("")));
        assert_eq!(parse_text("QUIT"), ok(Command::Quit));
        assert!(parse_text("LOGIN").is_err());
        assert!(parse_text("LOGIN a b").is_err());
        assert!(parse_text("WHISPER bob").is_err());
        assert!(parse_text("DANCE").unwrap_err().contains("unknown command"));
    }

    #[test]
    fn parses_binary_commands() {
        let frame = Frame::typed(4, "bob hello");
        assert_eq!(
            parse(ServerFraming::Binary, &frame),
            Ok(Command::Whisper {
                to: "bob",
                text: "hello"
            })
        );
        assert!(parse(ServerFraming::Binary, &Frame::typed(99, "")).is_err());
    }

    #[test]
    fn encodes_both_flavours() {
        let text = FrameCodec::new(CodecConfig::lines()).expect("codec");
        let msg = encode(
            &text,
            ServerFraming::Text,
            ReplyType::Msg,
            &["lobby", "ann", "hi"],
        );
        assert_eq!(&msg[..], b"MSG lobby ann hi\n");
        assert_eq!(
            &encode(&text, ServerFraming::Text, ReplyType::Bye, &[])[..],
            b"BYE\n"
        );
        assert_eq!(
            &encode(&text, ServerFraming::Text, ReplyType::Echo, &["x y"])[..],
            b"x y\n"
        );
        let binary = FrameCodec::new(CodecConfig::u16_length_type_le()).expect("codec");
        let pong = encode(&binary, ServerFraming::Binary, ReplyType::Pong, &["7"]);
        assert_eq!(&pong[..], [5, 0, 105, 0, b'7']);
    }
}
