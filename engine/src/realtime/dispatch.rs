//! The dispatcher: transactions in commit order → recipients → RLS → one serialization →
//! bounded queues → acknowledgement. Plus the slow-client sweep and the DDL watcher.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fluxbase_auth::AuthContext;
use fluxbase_replication::{Change, Op, ReplicationHandle, Transaction};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::Engine;
use super::connection::{CloseReason, Outbound, PushOutcome, close};
use super::gate::Visibility;
use super::protocol;
use super::registry::RowOp;
use super::rls::image::event_row;
use super::rls::{Completed, RowRef};

/// Consumes replication until shutdown.
pub(super) async fn run(
    engine: Engine,
    mut transactions: mpsc::Receiver<Transaction>,
    handle: ReplicationHandle,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let tx = tokio::select! {
            tx = transactions.recv() => match tx {
                Some(tx) => tx,
                None => break,
            },
            _ = shutdown.changed() => break,
        };
        for change in &tx.changes {
            engine.fan_out(&tx, change).await;
        }
        // Every change of the transaction is in its recipients' queues (or its recipient
        // was cut loose): the engine has taken it.
        handle.ack(tx.end_lsn);
    }
    tracing::info!("realtime dispatcher stopped");
}

/// Closes clients that stay over the slow threshold even when no new message arrives.
pub(super) async fn sweep(engine: Engine, mut shutdown: watch::Receiver<bool>) {
    let s = engine.settings().clone();
    let period =
        (s.slow_client_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut ticker = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => break,
        }
        let conns = engine
            .inner
            .registry
            .read()
            .expect("registry lock")
            .all_conns();
        for conn in conns {
            conn.check_pressure(s.slow_client_threshold, s.slow_client_timeout);
        }
        metrics::gauge!("fluxbase_realtime_rls_cache_entries")
            .set(engine.inner.gate.cache_len() as f64);
    }
}

/// Re-reads the catalog and policies when DDL happens (`NOTIFY fluxbase_ddl` from the event
/// trigger), every 30 s in case the trigger could not be installed, and within a second of a
/// change to role attributes, memberships or grants (`ALTER ROLE … BYPASSRLS`, `GRANT role
/// TO role` fire no event trigger): a cheap fingerprint of them is compared every second.
pub(super) async fn watch_ddl(engine: Engine, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(30));
    ticker.tick().await;
    let mut roles = tokio::time::interval(Duration::from_secs(1));
    roles.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // A dedicated connection for LISTEN; on any error, fall back to the timer.
        let listener = engine.inner.gate.listen("fluxbase_ddl").await;
        let mut notifications = match listener {
            Ok(rx) => Some(rx),
            Err(err) => {
                tracing::debug!(error = %err, "cannot LISTEN for DDL, polling instead");
                None
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = ticker.tick() => engine.reload().await,
                _ = roles.tick() => {
                    if engine.inner.gate.access_changed().await {
                        engine.reload().await;
                        // Logged once the new facts are in use.
                        tracing::info!("rls facts reloaded after a role change");
                    }
                }
                n = async {
                    match notifications.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => match n {
                    Some(()) => engine.reload().await,
                    None => break, // connection lost: listen again
                },
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

impl Engine {
    /// Delivers one change to every subscriber allowed to see it.
    async fn fan_out(&self, tx: &Transaction, change: &Change) {
        let op = match change.op {
            Op::Insert => RowOp::Insert,
            Op::Update => RowOp::Update,
            Op::Delete => RowOp::Delete,
            Op::Truncate | Op::Message => return,
        };
        tracing::debug!(table = %change.table, op = ?op, "change");
        if &*change.schema == "auth" && &*change.table == "sessions" {
            if op == RowOp::Delete {
                self.revoke_sessions(change);
            }
            return;
        }
        // Unchanged TOAST values a filter or a policy reads are recovered first (rare:
        // only updates that left a large value untouched).
        let completed = if change.unchanged_toast.is_empty() {
            None
        } else {
            let columns = self
                .inner
                .registry
                .read()
                .expect("registry lock")
                .filter_columns(&change.schema, &change.table);
            self.inner.gate.complete(tx, change, &columns).await
        };
        let filter_row = completed.as_ref().map(Completed::for_filters);
        let row = match &filter_row {
            Some((values, json_nulls)) => Some(RowRef { values, json_nulls }),
            None => event_row(change).map(|(values, json_nulls)| RowRef { values, json_nulls }),
        };
        let mut matches = self
            .inner
            .registry
            .read()
            .expect("registry lock")
            .recipients(&change.schema, &change.table, op, row);
        if let Some(row) = row {
            self.inner
                .gate
                .drop_failed_filters(change, row, &mut matches)
                .await;
        }
        if matches.is_empty() {
            return;
        }

        // One decision per distinct context: contexts are grouped by their fingerprint
        // (already a hash, so an identity hasher), and cloned (an Arc) once per group.
        let mut contexts: Vec<Arc<AuthContext>> = Vec::new();
        let mut index: HashMap<u64, usize, BuildHasherDefault<IdentityHasher>> = HashMap::default();
        // (start, end) of each connection's run in `matches`, and its context slot.
        let mut groups: Vec<(usize, usize, usize)> = Vec::new();
        let mut start = 0;
        while start < matches.len() {
            let conn = &matches[start].0;
            let mut end = start + 1;
            while end < matches.len() && matches[end].0.id == conn.id {
                end += 1;
            }
            let slot = *index.entry(conn.fingerprint()).or_insert_with(|| {
                contexts.push(conn.context());
                contexts.len() - 1
            });
            groups.push((start, end, slot));
            start = end;
        }
        tracing::debug!(table = %change.table, recipients = matches.len(), contexts = contexts.len(), "deciding");
        let decisions = self
            .inner
            .gate
            .decide(tx, change, completed.as_ref(), &contexts)
            .await;
        tracing::debug!(table = %change.table, decisions = ?decisions, "decided");

        let full: Arc<str> = Arc::from(payload(tx, change, op, Detail::Full));
        let mut key_only: Option<Arc<str>> = None;
        let s = &self.inner.settings;
        let latency = latency_seconds(tx);
        let (mut sent, mut dropped) = (0u64, 0u64);
        for (start, end, slot) in groups {
            let body: &Arc<str> = match (decisions[slot], op) {
                (Visibility::Allow, _) => &full,
                // DELETE: the key only where the old row's visibility is not established.
                (Visibility::Unknown, RowOp::Delete) => key_only
                    .get_or_insert_with(|| Arc::from(payload(tx, change, op, Detail::KeyOnly))),
                _ => continue,
            };
            let conn = &matches[start].0;
            let subs = &matches[start..end];
            let mut push = |frame: Outbound| match conn.push(
                frame,
                s.slow_client_threshold,
                s.slow_client_timeout,
            ) {
                PushOutcome::Queued => sent += 1,
                PushOutcome::Disconnected | PushOutcome::Closing => dropped += 1,
            };
            if subs.len() == 1 {
                push(Outbound::Change {
                    prefix: subs[0].1.envelope.clone(),
                    payload: body.clone(),
                });
                continue;
            }
            // Several subscriptions of one socket matched: one frame per channel.
            let mut channels: Vec<&str> = subs.iter().map(|(_, sub)| &*sub.channel).collect();
            channels.sort_unstable();
            channels.dedup();
            for channel in channels {
                let ids: Vec<&str> = subs
                    .iter()
                    .filter(|(_, sub)| &*sub.channel == channel)
                    .map(|(_, sub)| &*sub.id)
                    .collect();
                push(Outbound::Text(protocol::postgres_changes(
                    channel, &ids, body,
                )));
            }
        }
        metrics::counter!("fluxbase_realtime_messages_sent_total").increment(sent);
        if dropped > 0 {
            metrics::counter!("fluxbase_realtime_messages_dropped_total").increment(dropped);
        }
        if let Some(latency) = latency {
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
        let conns = self
            .inner
            .registry
            .read()
            .expect("registry lock")
            .user_conns(user);
        for conn in conns {
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

/// How much of the row a payload carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detail {
    /// New and old rows as decoded.
    Full,
    /// DELETE whose old row's visibility is not established: the primary key only.
    KeyOnly,
}

/// The `payload` object of a `postgres_changes` frame, serialized once per change.
fn payload(tx: &Transaction, change: &Change, op: RowOp, detail: Detail) -> String {
    let kind = match op {
        RowOp::Insert => "INSERT",
        RowOp::Update => "UPDATE",
        RowOp::Delete => "DELETE",
    };
    let key = || Value::Object(change.primary_key.clone().unwrap_or_default());
    let old_record = match (op, detail) {
        (RowOp::Insert, _) => Value::Null,
        (RowOp::Delete, Detail::Full) => change
            .old_record
            .clone()
            .map(Value::Object)
            .unwrap_or_else(key),
        // UPDATE's old image and an unestablished DELETE carry the key only: the old
        // row's visibility is not what was decided.
        _ => key(),
    };
    let record = match op {
        RowOp::Delete => Value::Null,
        _ => change
            .record
            .clone()
            .map(Value::Object)
            .unwrap_or(Value::Null),
    };
    let mut body = json!({
        "type": kind,
        "schema": &*change.schema,
        "table": &*change.table,
        "commit_timestamp": tx.commit_timestamp.to_string(),
        "lsn": tx.commit_lsn.to_string(),
        "columns": &*change.columns,
        "record": record,
        "old_record": old_record,
    });
    if !change.unchanged_toast.is_empty() {
        body["unchanged_toast"] = json!(change.unchanged_toast);
    }
    // JSON `null` literals of json/jsonb columns are `null` in the records, as SQL NULL is
    // (records stay plain JSON for Supabase-shaped clients); these lists tell them apart.
    if op != RowOp::Delete && !change.json_nulls.is_empty() {
        body["json_nulls"] = json!(change.json_nulls);
    }
    if op == RowOp::Delete && detail == Detail::Full && !change.old_json_nulls.is_empty() {
        body["old_json_nulls"] = json!(change.old_json_nulls);
    }
    body.to_string()
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
