//! One client connection: a reader that parses and executes commands in order, and a writer
//! task that drains the connection's bounded queue to the socket, coalescing small messages
//! into one write.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::protocol::Frame;
use crate::server::Shared;
use crate::server::commands::{self, Command, ReplyType};
use crate::server::registry::{Member, Outgoing, Room};

/// Bytes gathered from the queue before one socket write.
const WRITE_BATCH_BYTES: usize = 64 * 1024;
/// Initial read buffer: small, because 20 000 idle clients must stay cheap.
const READ_BUFFER_BYTES: usize = 1024;

/// Counts the client as connected for as long as it lives.
pub struct ClientGuard(pub Arc<Shared>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::AcqRel);
    }
}

pub async fn serve(
    socket: TcpStream,
    shared: Arc<Shared>,
    kick: CancellationToken,
    _guard: ClientGuard,
    over_limit: bool,
) {
    let (read, write) = socket.into_split();
    let (tx, rx) = mpsc::channel(shared.config.queue_depth);
    let writer = tokio::spawn(write_loop(write, rx, shared.clone(), kick.clone()));
    let mut session = Session {
        member: Member {
            id: shared.registry.next_id(),
            tx,
            kick: kick.clone(),
        },
        shared: shared.clone(),
        name: None,
        room: None,
    };
    if over_limit {
        let limit = shared.config.max_clients.unwrap_or(0).to_string();
        let reason = format!("server full ({limit} clients)");
        session.reply_and_close(ReplyType::Err, &[&reason]).await;
    } else {
        let mut frames = FramedRead::with_capacity(read, shared.codec.clone(), READ_BUFFER_BYTES);
        loop {
            let next = tokio::select! {
                _ = kick.cancelled() => break,
                next = frames.next() => next,
            };
            match next {
                None => break,
                Some(Ok(frame)) => {
                    tokio::select! {
                        _ = kick.cancelled() => break,
                        _ = shared.pacing.before_command() => {}
                    }
                    if session.handle(&frame).await == Flow::Close {
                        break;
                    }
                }
                // The stream cannot be resynchronised after a framing error: say why, close.
                Some(Err(err)) => {
                    session
                        .reply_and_close(ReplyType::Err, &[&err.to_string()])
                        .await;
                    break;
                }
            }
        }
    }
    session.leave_everything();
    drop(session);
    let _ = writer.await;
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

struct Session {
    member: Member,
    shared: Arc<Shared>,
    name: Option<String>,
    room: Option<(String, Arc<Room>)>,
}

impl Session {
    async fn handle(&mut self, frame: &Frame) -> Flow {
        let framing = self.shared.config.framing;
        let command = match commands::parse(framing, frame) {
            Ok(command) => command,
            Err(reason) => {
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

    async fn reply(&self, reply: ReplyType, parts: &[&str]) {
        self.send(reply, parts, false).await;
    }

    async fn reply_and_close(&self, reply: ReplyType, parts: &[&str]) {
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

    fn leave_everything(&mut self) {
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

async fn write_loop(
    mut write: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Outgoing>,
    shared: Arc<Shared>,
    kick: CancellationToken,
) {
    let mut batch = BytesMut::new();
    'connection: loop {
        let first = tokio::select! {
            biased;
            _ = kick.cancelled() => break,
            message = rx.recv() => message,
        };
        let Some(mut message) = first else { break };
        let mut close = false;
        loop {
            if let Some(due) = message.due
                && due > tokio::time::Instant::now()
            {
                if flush(&mut write, &mut batch).await.is_err() {
                    break 'connection;
                }
                tokio::select! {
                    _ = kick.cancelled() => break 'connection,
                    _ = tokio::time::sleep_until(due) => {}
                }
            }
            batch.extend_from_slice(&message.bytes);
            if message.close {
                close = true;
                break;
            }
            if batch.len() >= WRITE_BATCH_BYTES {
                break;
            }
            match rx.try_recv() {
                Ok(next) => message = next,
                Err(_) => break,
            }
        }
        // A stalled server writes nothing either.
        tokio::select! {
            _ = kick.cancelled() => break,
            _ = shared.pacing.wait_out_stall() => {}
        }
        if flush(&mut write, &mut batch).await.is_err() || close {
            break;
        }
    }
    // Wake the reader (it may be blocked on a client that never sends again).
    kick.cancel();
    let _ = write.shutdown().await;
}

async fn flush(write: &mut OwnedWriteHalf, batch: &mut BytesMut) -> std::io::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let result = write.write_all(batch).await;
    batch.clear();
    result
}
