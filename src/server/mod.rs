//! The reference chat server (`chatload serve`, `target: embedded`).
