//! Who is connected under which name and who is in which room.
//!
//! Joins, leaves and logins take a short global lock; a broadcast takes only its room's read
//! lock, and only to enqueue (`try_send`), never to write to a socket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One message queued for a connection's writer.
#[derive(Debug)]
pub struct Outgoing {
    /// Not before this instant (delay/jitter); `None` = at once.
    pub due: Option<Instant>,
    pub bytes: Bytes,
    /// Close the connection once this message is written (`BYE`, `ERR server full`).
    pub close: bool,
}

/// A connection as the rest of the server sees it.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: u64,
    pub tx: mpsc::Sender<Outgoing>,
    /// Cancelled to disconnect this member (slow consumer, shutdown).
    pub kick: CancellationToken,
}

impl Member {
    /// Queues a message without waiting. A member whose queue is full is disconnected:
    /// one slow reader must not hold up everyone else in the room.
    pub fn offer(&self, due: Option<Instant>, bytes: Bytes) -> bool {
        let message = Outgoing {
            due,
            bytes,
            close: false,
        };
        match self.tx.try_send(message) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.kick.cancel();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

#[derive(Debug, Default)]
pub struct Room {
    members: RwLock<Vec<Member>>,
}

impl Room {
    /// Queues the same encoded bytes to every member; returns how many accepted it.
    pub fn broadcast(&self, due: Option<Instant>, bytes: &Bytes) -> usize {
        let members = self.members.read().unwrap_or_else(PoisonError::into_inner);
        members
            .iter()
            .filter(|member| member.offer(due, bytes.clone()))
            .count()
    }
}

#[derive(Debug, Default)]
pub struct Registry {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    /// Several connections may share a name (load tests reuse names); a whisper reaches all.
    names: Mutex<HashMap<String, Vec<Member>>>,
    next_id: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Registry {
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds the member to the room (created on first join); returns it and its size.
    pub fn join(&self, room_name: &str, member: Member) -> (Arc<Room>, usize) {
        let mut rooms = lock(&self.rooms);
        let room = rooms.entry(room_name.to_string()).or_default().clone();
        let mut members = room.members.write().unwrap_or_else(PoisonError::into_inner);
        members.push(member);
        let size = members.len();
        drop(members);
        (room, size)
    }

    /// Removes the member; an emptied room is forgotten.
    pub fn leave(&self, room_name: &str, room: &Room, id: u64) {
        let mut rooms = lock(&self.rooms);
        let mut members = room.members.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = members.iter().position(|m| m.id == id) {
            members.swap_remove(at);
        }
        if members.is_empty() {
            rooms.remove(room_name);
        }
    }

    pub fn login(&self, name: &str, member: Member) {
        lock(&self.names)
            .entry(name.to_string())
            .or_default()
            .push(member);
    }

    pub fn logout(&self, name: &str, id: u64) {
        let mut names = lock(&self.names);
        if let Some(sessions) = names.get_mut(name) {
            sessions.retain(|m| m.id != id);
            if sessions.is_empty() {
                names.remove(name);
            }
        }
    }

    /// Queues `bytes` to every session logged in as `name`; false when there is none.
    pub fn send_to_name(&self, name: &str, due: Option<Instant>, bytes: &Bytes) -> bool {
        let names = lock(&self.names);
        match names.get(name) {
            Some(sessions) => {
                for member in sessions {
                    member.offer(due, bytes.clone());
                }
                true
            }
            None => false,
        }
    }
}
