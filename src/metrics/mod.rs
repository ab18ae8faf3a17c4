//! Recording (cheap, no lock contention on the hot path), interval snapshots, aggregation and
//! histogram merge.
//!
//! It knows metric names and numbers only: nothing about plans, sockets or protocols.
