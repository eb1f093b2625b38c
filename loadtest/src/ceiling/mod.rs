//! The WebSocket ceiling: a bare broadcast server that pushes pre-serialized
//! `postgres_changes` frames to every socket, so `realtime-public` can be stated as a
//! fraction of what this machine's WebSocket stack delivers to the same sockets.
//!
//! The server runs in a **child process** (this binary started again with [`CHILD_ARG`]),
//! not in the harness: the real server is a process of its own, so the ceiling must be
//! too — its own threads and allocator, its CPU and RSS sampled from `/proc/<pid>` like
//! the real server's, and the harness's client sockets costing the same on both sides of
//! the ratio. It uses the server's stack (actix-web workers, one per core, and `actix-ws`
//! sessions, one task per socket draining a bounded queue); the broadcast loop runs on the
//! system thread, where the server's dispatcher runs. What it leaves out is all the
//! engine does: replication, decoding, matching, RLS, and the per-recipient copy.
//!
//! The parent drives the child with one JSON object per line on its stdin ([`Command`]) and
//! reads one per line on its stdout ([`Reply`]); the child exits when its stdin closes, so
//! it never outlives the harness.

pub mod child;
pub mod frame;
pub mod server;

use serde::{Deserialize, Serialize};

/// The first argument that turns the harness binary into the ceiling server.
pub const CHILD_ARG: &str = "__ws-ceiling-server";

/// Frames queued per socket, as the server's `realtime.client_message_queue_size` default.
pub const QUEUE_CAPACITY: usize = 1024;

/// Parent → child.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Start broadcasting to every socket subscribed so far.
    Go(Broadcast),
    /// Stop after the message in flight; the child answers [`Reply::Sent`].
    Stop,
}

/// What to broadcast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Broadcast {
    /// Messages/s to every socket; 0 = as fast as the sockets drain their queues.
    pub rate: f64,
    /// Bytes of the row's `payload` column, as `realtime-public` writes it.
    pub payload_bytes: usize,
    /// The table name the frames carry (the same length as `realtime-public`'s).
    pub table: String,
}

/// Child → parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// Listening on this address (first line).
    Listening(String),
    /// The broadcast ended.
    Sent(Sent),
}

/// What a broadcast did (all zero when none ran).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sent {
    /// Messages broadcast; each went to every socket, sequence numbers 1..=messages.
    pub messages: u64,
    /// Sockets the broadcast went to.
    pub sockets: usize,
    /// From the first message to the stop.
    pub secs: f64,
    /// Bytes of one frame (the first).
    pub frame_bytes: usize,
}
