//! One change to every subscriber allowed to see it: recipients from the filter index,
//! filters PostgreSQL must decide, one RLS decision per distinct context, one body per
//! format in use, then `try_send` into each recipient's bounded queue. Never awaits a
//! socket; awaits the database only through the gate's own pool.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use fluxbase_auth::AuthContext;
use fluxbase_replication::{Change, Op, Transaction};
use serde_json::Value;

use crate::realtime::codec::{ChangeView, Detail, EventFormat};
use crate::realtime::connection::{CloseReason, Outbound, PushOutcome, close, unix_now};
use crate::realtime::engine::Engine;
use crate::realtime::gate::Visibility;
use crate::realtime::index::{Matches, RowOp, Subscription};
use crate::realtime::rls::image::event_row;
use crate::realtime::rls::{Completed, RowRef};

/// The bodies of one change, encoded on first use: once per (format, detail).
struct Bodies<'a> {
    tx: &'a Transaction,
    change: &'a Change,
    encoded: Vec<(usize, Detail, Arc<str>)>,
}

impl Bodies<'_> {
    fn get(&mut self, format: &'static dyn EventFormat, detail: Detail) -> Option<Arc<str>> {
        let key = format as *const dyn EventFormat as *const () as usize;
        if let Some((_, _, body)) = self
            .encoded
            .iter()
            .find(|(k, d, _)| *k == key && *d == detail)
        {
            return Some(body.clone());
        }
        let body = format.change_body(&ChangeView::new(self.tx, self.change, detail)?);
        self.encoded.push((key, detail, body.clone()));
        Some(body)
    }
}

impl Engine {
    /// Delivers change `index` of `tx` to every subscriber allowed to see it, skipping the
    /// connections it was already queued for (a transaction taken again after a restart).
    pub(crate) async fn fan_out(&self, tx: &Transaction, index: u32, change: &Change) {
        let op = match change.op {
            Op::Insert => RowOp::Insert,
            Op::Update => RowOp::Update,
            Op::Delete => RowOp::Delete,
            Op::Truncate => RowOp::Truncate,
            Op::Message => return,
        };
        if &*change.schema == "auth" && &*change.table == "sessions" {
            if op == RowOp::Delete {
                self.revoke_sessions(change);
            }
            return;
        }
        let inner = &self.inner;
        // Unchanged TOAST values a filter or a policy reads are recovered first (rare:
        // only updates that left a large value untouched).
        let completed = if change.unchanged_toast.is_empty() || op == RowOp::Truncate {
            None
        } else {
            let columns = inner
                .index
                .read()
                .expect("index lock")
                .filter_columns(&change.schema, &change.table);
            inner.gate.complete(tx, change, &columns).await
        };
        let filter_row = completed.as_ref().map(Completed::for_filters);
        let row = match &filter_row {
            Some((values, json_nulls)) => Some(RowRef { values, json_nulls }),
            None => event_row(change).map(|(values, json_nulls)| RowRef { values, json_nulls }),
        };
        let mut matches = inner.index.read().expect("index lock").recipients(
            &change.schema,
            &change.table,
            op,
            row,
        );
        // Already queued (before a restart), or expired: not again, and never.
        let (lsn, now) = (tx.commit_lsn.0, unix_now());
        matches.retain(|sub| sub.conn.is_new(lsn, index) && !sub.conn.expired_at(now));
        if let Some(row) = row
            && op != RowOp::Truncate
        {
            inner
                .gate
                .drop_failed_filters(change, row, &mut matches)
                .await;
        }
        if matches.is_empty() {
            return;
        }
        let (groups, contexts) = group(&matches);
        let decisions: Vec<Visibility> = if op == RowOp::Truncate {
            let allowed = inner.gate.may_select(change.relation_id, &contexts).await;
            allowed
                .into_iter()
                .map(|a| {
                    if a {
                        Visibility::Allow
                    } else {
                        Visibility::Deny
                    }
                })
                .collect()
        } else {
            inner
                .gate
                .decide(tx, change, completed.as_ref(), &contexts)
                .await
        };
        let mut bodies = Bodies {
            tx,
            change,
            encoded: Vec::new(),
        };
        let (mut sent, mut dropped, mut first) = (0u64, 0u64, true);
        for (start, end, slot) in groups {
            let detail = match (decisions[slot], op) {
                (Visibility::Allow, _) => Detail::Full,
                // DELETE: the key only where the old row's visibility is not established.
                (Visibility::Unknown, RowOp::Delete) => Detail::KeyOnly,
                _ => continue,
            };
            let subs = &matches[start..end];
            let conn = &subs[0].conn;
            let Some(body) = bodies.get(conn.format, detail) else {
                continue;
            };
            let mut push = |frame: Outbound| match conn.push(frame) {
                PushOutcome::Queued => sent += 1,
                PushOutcome::Disconnected | PushOutcome::Closing => dropped += 1,
            };
            if let [sub] = subs {
                push(Outbound::Change {
                    sub: sub.clone(),
                    body,
                });
            } else {
                // Several subscriptions of one socket matched: one frame per channel.
                let mut by_channel: Vec<&Arc<Subscription>> = subs.iter().collect();
                by_channel.sort_by(|a, b| a.channel.cmp(&b.channel));
                for chunk in by_channel.chunk_by(|a, b| a.channel == b.channel) {
                    let subs: Arc<[Arc<Subscription>]> =
                        chunk.iter().map(|s| (*s).clone()).collect();
                    push(Outbound::Changes {
                        subs,
                        body: body.clone(),
                    });
                }
            }
            conn.mark(lsn, index);
            if first {
                first = false;
                #[cfg(debug_assertions)]
                crate::realtime::fault::after_first_delivery(tx, index, change);
            }
        }
        metrics::counter!("fluxbase_realtime_messages_sent_total").increment(sent);
        if dropped > 0 {
            metrics::counter!("fluxbase_realtime_messages_dropped_total").increment(dropped);
        }
        if let Some(latency) = latency_seconds(tx) {
            metrics::histogram!("fluxbase_realtime_delivery_latency_seconds").record(latency);
        }
    }

    /// `DELETE FROM auth.sessions WHERE user_id = …` closes that user's sockets: those
    /// whose token names the deleted session (`session_id` claim), and those whose token
    /// names no session. A signout on one device leaves the user's other devices open.
    fn revoke_sessions(&self, change: &Change) {
        let old = change.old_record.as_ref();
        let Some(user) = old.and_then(|r| r.get("user_id")).and_then(Value::as_str) else {
            return;
        };
        let session = old.and_then(|r| r.get("id")).and_then(Value::as_str);
        for conn in self.inner.connections.of_user(user) {
            let ctx = conn.context();
            let token_session = ctx.claim("session_id").and_then(Value::as_str);
            let hit = match (token_session, session) {
                (Some(t), Some(s)) => t.eq_ignore_ascii_case(s),
                _ => true,
            };
            if hit {
                conn.request_close(CloseReason {
                    code: close::SESSION_REVOKED,
                    reason: "session revoked".into(),
                    label: "session_revoked",
                });
            }
        }
    }
}

/// (start, end, context slot) of each connection's run in the matches.
type Runs = Vec<(usize, usize, usize)>;

/// Each connection's run in the matches, and the distinct contexts: one decision per
/// context, grouped by fingerprint (already a hash, so an identity hasher) and cloned (an
/// `Arc`) once per group.
fn group(matches: &Matches) -> (Runs, Vec<Arc<AuthContext>>) {
    let mut contexts: Vec<Arc<AuthContext>> = Vec::new();
    let mut index: HashMap<u64, usize, BuildHasherDefault<IdentityHasher>> = HashMap::default();
    let mut groups = Vec::new();
    let mut start = 0;
    while start < matches.len() {
        let conn = &matches[start].conn;
        let mut end = start + 1;
        while end < matches.len() && matches[end].conn.seq == conn.seq {
            end += 1;
        }
        let slot = *index.entry(conn.fingerprint()).or_insert_with(|| {
            contexts.push(conn.context());
            contexts.len() - 1
        });
        groups.push((start, end, slot));
        start = end;
    }
    (groups, contexts)
}

/// A hasher for keys that already are hashes (context fingerprints).
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; fold anything else in for completeness.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Commit → now, in seconds.
fn latency_seconds(tx: &Transaction) -> Option<f64> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_micros() as i64;
    let micros = now - tx.commit_timestamp.unix_micros();
    (micros >= 0).then(|| micros as f64 / 1e6)
}
