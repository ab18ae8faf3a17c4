//! Who is connected under which name and who is in which room, and how many bytes each
//! connection holds for its client (its [`Budget`]).
//!
//! Joins, leaves and logins take a short global lock; a broadcast takes only its room's read
//! lock, and only to enqueue (`try_send`), never to write to a socket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
    /// The message's bytes, counted against the connection's budget until written.
    pub charge: Charge,
}

/// The server's own count of the bytes it holds for clients (queued for a writer, or in a
/// writer's batch waiting for the socket), so a test or an operator can see that memory stays
/// bounded however slowly clients read.
#[derive(Debug, Default)]
pub struct BufferStats {
    bytes: AtomicUsize,
    peak_bytes: AtomicUsize,
    slow_consumers: AtomicU64,
}

/// A reading of [`BufferStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferSnapshot {
    /// Bytes held for all clients now.
    pub bytes: usize,
    /// The most ever held at once.
    pub peak_bytes: usize,
    /// Clients disconnected for reaching their buffer limit (or queue depth).
    pub slow_consumers: u64,
}

impl BufferStats {
    pub fn snapshot(&self) -> BufferSnapshot {
        BufferSnapshot {
            bytes: self.bytes.load(Ordering::Relaxed),
            peak_bytes: self.peak_bytes.load(Ordering::Relaxed),
            slow_consumers: self.slow_consumers.load(Ordering::Relaxed),
        }
    }
}

/// How many bytes one connection may hold for its client; reaching it makes the client a
/// slow consumer. Counted in bytes, not messages: a few maximal frames weigh more than
/// thousands of `PONG`s.
#[derive(Debug)]
pub struct Budget {
    bytes: AtomicUsize,
    limit_bytes: usize,
    kicked: AtomicBool,
    server: Arc<BufferStats>,
}

impl Budget {
    pub fn new(limit_bytes: usize, server: Arc<BufferStats>) -> Arc<Budget> {
        Arc::new(Budget {
            bytes: AtomicUsize::new(0),
            limit_bytes,
            kicked: AtomicBool::new(false),
            server,
        })
    }

    /// Reserves `bytes`, or `None` when that would pass the limit.
    fn charge(self: &Arc<Self>, bytes: usize) -> Option<Charge> {
        let before = self.bytes.fetch_add(bytes, Ordering::AcqRel);
        if before.saturating_add(bytes) > self.limit_bytes {
            self.bytes.fetch_sub(bytes, Ordering::AcqRel);
            return None;
        }
        let total = self.server.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.server.peak_bytes.fetch_max(total, Ordering::Relaxed);
        Some(Charge {
            budget: Arc::clone(self),
            bytes,
        })
    }

    /// Counts the client once as a slow consumer.
    fn count_slow_consumer(&self) {
        if !self.kicked.swap(true, Ordering::AcqRel) {
            self.server.slow_consumers.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Bytes reserved against a [`Budget`], given back when dropped (written, or thrown away with
/// its connection), so the count cannot leak.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Charge {
    /// Nothing reserved yet; the writer gathers its batch's charges into one.
    pub fn empty(budget: &Arc<Budget>) -> Charge {
        Charge {
            budget: Arc::clone(budget),
            bytes: 0,
        }
    }

    /// Takes over `other`'s reservation (same connection).
    pub fn absorb(&mut self, mut other: Charge) {
        self.bytes += std::mem::take(&mut other.bytes);
    }

    /// Gives the reserved bytes back now (the batch was written).
    pub fn release(&mut self) {
        let bytes = std::mem::take(&mut self.bytes);
        if bytes > 0 {
            self.budget.bytes.fetch_sub(bytes, Ordering::AcqRel);
            self.budget.server.bytes.fetch_sub(bytes, Ordering::Relaxed);
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.release();
    }
}

/// A connection as the rest of the server sees it.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: u64,
    pub tx: mpsc::Sender<Outgoing>,
    /// Cancelled to disconnect this member (slow consumer, shutdown).
    pub kick: CancellationToken,
    pub budget: Arc<Budget>,
}

impl Member {
    /// Queues a message without waiting. A member whose budget or queue is full is
    /// disconnected: one slow reader must not hold up everyone else in the room, nor make the
    /// server hold an unbounded amount for it.
    pub fn offer(&self, due: Option<Instant>, bytes: Bytes) -> bool {
        self.queue(due, bytes, false)
    }

    /// [`Member::offer`], optionally closing the connection after the message.
    pub fn queue(&self, due: Option<Instant>, bytes: Bytes, close: bool) -> bool {
        let Some(charge) = self.budget.charge(bytes.len()) else {
            self.drop_slow_consumer();
            return false;
        };
        let message = Outgoing {
            due,
            bytes,
            close,
            charge,
        };
        match self.tx.try_send(message) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.drop_slow_consumer();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn drop_slow_consumer(&self) {
        if !self.kick.is_cancelled() {
            self.budget.count_slow_consumer();
        }
        self.kick.cancel();
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
