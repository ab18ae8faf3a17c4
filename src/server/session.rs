//! One client's chat state (name, room) and the execution of its commands, whatever the
//! transport: the connection code hands it decoded frames and it queues replies to the
//! connection's writer.

use std::sync::Arc;

use bytes::Bytes;

use crate::protocol::Frame;
use crate::server::Shared;
use crate::server::commands::{self, Command, ReplyType};
use crate::server::registry::{Member, Outgoing, Room};

#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Close,
}

pub struct Session {
    member: Member,
    shared: Arc<Shared>,
    name: Option<String>,
    room: Option<(String, Arc<Room>)>,
}

impl Session {
    pub fn new(member: Member, shared: Arc<Shared>) -> Session {
        Session {
            member,
            shared,
            name: None,
            room: None,
        }
    }

    /// Executes one command; `Close` once the session is over (`QUIT`).
    pub async fn handle(&mut self, frame: &Frame) -> Flow {
        let framing = self.shared.config.framing;
        self.shared.stats.command();
        let command = match commands::parse(framing, frame) {
            Ok(command) => command,
            Err(reason) => {
                self.shared.stats.command_error();
                self.reply(ReplyType::Err, &[&reason]).await;
                return Flow::Continue;
            }
        };
        match command {
            Command::Login(name) => {
                if let Some(old) = self.name.take() {
                    self.shared.registry.logout(&old, self.member.id);
                }
                self.shared.registry.login(name, self.member.clone());
                self.name = Some(name.to_string());
                self.reply(ReplyType::Ok, &[name]).await;
            }
            Command::Join(room_name) => {
                if self.name.is_none() {
                    return self.login_first().await;
                }
                self.leave_room();
                let (room, size) = self.shared.registry.join(room_name, self.member.clone());
                self.room = Some((room_name.to_string(), room));
                self.reply(ReplyType::Joined, &[room_name, &size.to_string()])
                    .await;
            }
            Command::Say(text) => {
                let (Some(name), Some((room_name, room))) = (&self.name, &self.room) else {
                    let reason = "join a room first: LOGIN name, then JOIN room";
                    self.reply(ReplyType::Err, &[reason]).await;
                    return Flow::Continue;
                };
                // Encoded once; every member's queue gets the same shared bytes.
                let message = self.encode(ReplyType::Msg, &[room_name, name, text]);
                room.broadcast(self.shared.pacing.due(), &message);
            }
            Command::Whisper { to, text } => {
                let Some(name) = &self.name else {
                    return self.login_first().await;
                };
                let message = self.encode(ReplyType::Dm, &[name, text]);
                let due = self.shared.pacing.due();
                if !self.shared.registry.send_to_name(to, due, &message) {
                    let reason = format!("no user named {to}");
                    self.reply(ReplyType::Err, &[&reason]).await;
                }
            }
            Command::Ping(token) => self.reply(ReplyType::Pong, &parts(token)).await,
            Command::Echo(text) => self.reply(ReplyType::Echo, &[text]).await,
            Command::Quit => {
                self.reply_and_close(ReplyType::Bye, &[]).await;
                return Flow::Close;
            }
        }
        Flow::Continue
    }

    async fn login_first(&self) -> Flow {
        self.reply(ReplyType::Err, &["login first: LOGIN name"])
            .await;
        Flow::Continue
    }

    fn encode(&self, reply: ReplyType, parts: &[&str]) -> Bytes {
        commands::encode(
            &self.shared.out_codec,
            self.shared.config.framing,
            reply,
            parts,
        )
    }

    pub async fn reply(&self, reply: ReplyType, parts: &[&str]) {
        self.send(reply, parts, false).await;
    }

    /// Queues a last message; the writer closes the connection after writing it.
    pub async fn reply_and_close(&self, reply: ReplyType, parts: &[&str]) {
        self.send(reply, parts, true).await;
    }

    /// The client's own replies wait for room in its queue: a client that does not read
    /// slows only itself.
    async fn send(&self, reply: ReplyType, parts: &[&str], close: bool) {
        let message = Outgoing {
            due: self.shared.pacing.due(),
            bytes: self.encode(reply, parts),
            close,
        };
        let _ = self.member.tx.send(message).await;
    }

    fn leave_room(&mut self) {
        if let Some((room_name, room)) = self.room.take() {
            self.shared
                .registry
                .leave(&room_name, &room, self.member.id);
        }
    }

    /// Leaves the room and logs out; called once the connection is over.
    pub fn leave_everything(&mut self) {
        self.leave_room();
        if let Some(name) = self.name.take() {
            self.shared.registry.logout(&name, self.member.id);
        }
    }
}

fn parts(token: &str) -> Vec<&str> {
    if token.is_empty() {
        vec![]
    } else {
        vec![token]
    }
}
