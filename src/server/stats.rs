//! The reference server's own counters, for `serve --metrics-listen`: relaxed atomics bumped
//! once per connection, command or written batch (never per byte), read by whoever renders
//! them.
//!
//! It does not render anything (`export` does) and counts no per-room detail.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Counters since the server started.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Clients connected now (also what `max_clients` is checked against).
    pub(crate) clients: AtomicUsize,
    connections: AtomicU64,
    commands: AtomicU64,
    command_errors: AtomicU64,
    messages_sent: AtomicU64,
    bytes_sent: AtomicU64,
}

/// One reading of [`ServerStats`].
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerCounters {
    /// Connections accepted.
    pub connections: u64,
    /// Commands received (well-formed or not).
    pub commands: u64,
    /// Commands answered with `ERR` because they could not be parsed.
    pub command_errors: u64,
    /// Messages written to clients (replies, room messages, whispers).
    pub messages_sent: u64,
    /// Bytes of those messages.
    pub bytes_sent: u64,
    /// Clients connected now.
    pub clients: u64,
}

impl ServerStats {
    pub(crate) fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn command(&self) {
        self.commands.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn command_error(&self) {
        self.command_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A batch of `messages` messages, `bytes` long, went out on one connection.
    pub(crate) fn written(&self, messages: u64, bytes: u64) {
        self.messages_sent.fetch_add(messages, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn read(&self) -> ServerCounters {
        ServerCounters {
            connections: self.connections.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            command_errors: self.command_errors.load(Ordering::Relaxed),
            messages_sent: self.messages_sent.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            clients: self.clients.load(Ordering::Relaxed) as u64,
        }
    }
}
