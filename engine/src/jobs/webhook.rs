//! Database webhooks: rules "on INSERT/UPDATE/DELETE of schema.table (optionally a realtime
//! filter `col=op.value`) → an `http` job POSTing the change", fed by the replication stream.
//!
//! [`Webhooks::take`] is called by the replication consumer with each decoded transaction
//! before the slot is acknowledged. It enqueues one `http` job per (matching change, rule)
//! in a single statement, with the idempotency key `webhook:<rule>:<commit_lsn>:<change
//! index>`: a transaction replayed after a restart enqueues nothing new, so each change
//! fires each rule exactly once. With no matching rule it does not touch the database.
//!
//! The body POSTed is Supabase's database-webhook shape plus the position:
//! `{"type": "INSERT", "schema": "public", "table": "todos", "record": {…}, "old_record": …,
//! "commit_lsn": "0/16B3748", "commit_timestamp": "…"}`. A DELETE's row is the old row
//! (its primary key, or every column under REPLICA IDENTITY FULL), and a filter of a DELETE
//! rule is matched against it. A row over `jobs.max_payload_size` is sent as its primary
//! key only, with `"truncated": true`.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use fluxbase_migrations::Db;
use fluxbase_replication::{Change, Op, Transaction};
use serde_json::{Value, json};
use uuid::Uuid;

use super::error::JobError;
use crate::realtime::filter::Filter;
use crate::realtime::rls::RowRef;

/// Rules are re-read at least this often, even without a change notification.
const RULES_TTL: Duration = Duration::from_secs(60);

/// A rule as the matcher holds it.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    /// Rule id (part of each job's idempotency key).
    pub id: Uuid,
    /// Rule name (jobs are named `webhook:<name>`).
    pub name: String,
    /// Schema of the watched table.
    pub schema: String,
    /// The watched table.
    pub table: String,
    /// Fires on INSERT.
    pub insert: bool,
    /// Fires on UPDATE.
    pub update: bool,
    /// Fires on DELETE.
    pub delete: bool,
    /// The row must pass it.
    pub filter: Option<Filter>,
    /// Where to POST.
    pub url: String,
    /// Extra request headers.
    pub headers: Value,
    /// `max_attempts` of its jobs.
    pub max_attempts: i32,
}

impl Rule {
    /// Whether `change` fires this rule.
    fn fires(&self, change: &Change) -> bool {
        let wanted = match change.op {
            Op::Insert => self.insert,
            Op::Update => self.update,
            Op::Delete => self.delete,
            Op::Truncate | Op::Message => false,
        };
        if !wanted || *change.schema != *self.schema || *change.table != *self.table {
            return false;
        }
        match &self.filter {
            None => true,
            Some(filter) => {
                let row = match change.op {
                    Op::Delete => change
                        .old_record
                        .as_ref()
                        .map(|values| (values, &change.old_json_nulls)),
                    _ => change
                        .record
                        .as_ref()
                        .map(|values| (values, &change.json_nulls)),
                };
                row.is_some_and(|(values, json_nulls)| {
                    filter.matches(RowRef { values, json_nulls })
                })
            }
        }
    }
}

/// The cached rules and when they were read.
#[derive(Debug, Default)]
struct Cache {
    rules: Option<Arc<Vec<Rule>>>,
    loaded_at: Option<Instant>,
}

/// The webhook component; cheap to clone, safe to call from any thread.
#[derive(Debug, Clone)]
pub struct Webhooks {
    db: Db,
    max_payload_size: usize,
    /// A std lock: held only to read or swap the rule list, never across `.await`.
    cache: Arc<RwLock<Cache>>,
}

impl Webhooks {
    /// The component over `db`; rules are read on first use.
    pub fn new(db: Db, max_payload_size: usize) -> Webhooks {
        Webhooks {
            db,
            max_payload_size,
            cache: Arc::default(),
        }
    }

    /// Forgets the rules: the next transaction re-reads them (rules changed).
    pub fn invalidate(&self) {
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        cache.rules = None;
    }

    /// The enabled rules, read again when invalidated or older than the TTL.
    async fn rules(&self) -> Result<Arc<Vec<Rule>>, JobError> {
        {
            let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
            if let (Some(rules), Some(at)) = (&cache.rules, cache.loaded_at)
                && at.elapsed() < RULES_TTL
            {
                return Ok(rules.clone());
            }
        }
        let rows = self
            .db
            .query(
                "SELECT id, name, schema_name, table_name, events, filter, url, headers, \
                   max_attempts \
                 FROM jobs.webhooks WHERE enabled ORDER BY name",
                &[],
            )
            .await?;
        let mut rules = Vec::with_capacity(rows.len());
        for row in &rows {
            let events: Vec<String> = row.get(4);
            let filter: Option<String> = row.get(5);
            let name: String = row.get(1);
            let filter = match filter.as_deref().map(Filter::parse) {
                None => None,
                Some(Ok(filter)) => Some(filter),
                Some(Err(err)) => {
                    // Written by SQL with a bad filter: the rule is skipped, not guessed.
                    tracing::warn!(webhook = %name, error = %err, "webhook rule has an invalid filter; skipped");
                    continue;
                }
            };
            rules.push(Rule {
                id: row.get(0),
                name,
                schema: row.get(2),
                table: row.get(3),
                insert: events.iter().any(|e| e == "INSERT"),
                update: events.iter().any(|e| e == "UPDATE"),
                delete: events.iter().any(|e| e == "DELETE"),
                filter,
                url: row.get(6),
                headers: row.get(7),
                max_attempts: row.get(8),
            });
        }
        let rules = Arc::new(rules);
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        cache.rules = Some(rules.clone());
        cache.loaded_at = Some(Instant::now());
        Ok(rules)
    }

    /// Takes one decoded transaction: enqueues an `http` job for every change that fires a
    /// rule, in one round trip, idempotently. Returns how many jobs were new (0 on a replay).
    /// Call it before acknowledging the transaction's `end_lsn` to the slot; on an error,
    /// do not acknowledge (the transaction comes again).
    pub async fn take(&self, tx: &Transaction) -> Result<u64, JobError> {
        let rules = self.rules().await?;
        if rules.is_empty() {
            return Ok(0);
        }
        let mut names = Vec::new();
        let mut payloads = Vec::new();
        let mut keys = Vec::new();
        let mut attempts = Vec::new();
        let mut creators = Vec::new();
        for (index, change) in tx.changes.iter().enumerate() {
            for rule in rules.iter().filter(|r| r.fires(change)) {
                names.push(format!("webhook:{}", rule.name));
                payloads.push(self.payload(rule, tx, change));
                keys.push(format!("webhook:{}:{}:{index}", rule.id, tx.commit_lsn));
                attempts.push(rule.max_attempts);
                creators.push(format!("webhook:{}", rule.id));
            }
        }
        if names.is_empty() {
            return Ok(0);
        }
        let rows = self
            .db
            .query(
                "INSERT INTO jobs.jobs (name, kind, payload, payload_sha256, idempotency_key, \
                   max_attempts, created_by) \
                 SELECT n, 'http', p, encode(sha256(convert_to(p::text, 'UTF8')), 'hex'), k, m, c \
                 FROM unnest($1::text[], $2::jsonb[], $3::text[], $4::int4[], $5::text[]) \
                   AS t(n, p, k, m, c) \
                 ON CONFLICT (idempotency_key) DO NOTHING \
                 RETURNING 1",
                &[&names, &payloads, &keys, &attempts, &creators],
            )
            .await?;
        let created = rows.len() as u64;
        metrics::counter!("fluxbase_jobs_webhooks_enqueued_total").increment(created);
        Ok(created)
    }

    /// The `http` payload of one change for one rule.
    fn payload(&self, rule: &Rule, tx: &Transaction, change: &Change) -> Value {
        let mut body = json!({
            "type": change.op,
            "schema": &*change.schema,
            "table": &*change.table,
            "record": change.record,
            "old_record": change.old_record,
            "commit_lsn": tx.commit_lsn.to_string(),
            "commit_timestamp": tx.commit_timestamp.to_string(),
        });
        if serde_json::to_vec(&body).map_or(0, |b| b.len()) > self.max_payload_size {
            body = json!({
                "type": change.op,
                "schema": &*change.schema,
                "table": &*change.table,
                "record": change.primary_key,
                "old_record": null,
                "commit_lsn": tx.commit_lsn.to_string(),
                "commit_timestamp": tx.commit_timestamp.to_string(),
                "truncated": true,
            });
        }
        json!({"url": rule.url, "body": body, "headers": rule.headers})
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fluxbase_replication::Change;
    use serde_json::Map;

    use super::*;

    fn change(op: Op, table: &str, record: Value) -> Change {
        let row: Map<String, Value> = record.as_object().unwrap().clone();
        Change {
            op,
            schema: Arc::from("public"),
            table: Arc::from(table),
            relation_id: 1,
            columns: Arc::from(Vec::new()),
            record: (op != Op::Delete).then(|| row.clone()),
            old_record: (op == Op::Delete).then(|| row.clone()),
            primary_key: None,
            unchanged_toast: Vec::new(),
            json_nulls: Vec::new(),
            old_json_nulls: Vec::new(),
            message: None,
        }
    }

    fn rule(filter: Option<&str>) -> Rule {
        Rule {
            id: Uuid::nil(),
            name: "r".into(),
            schema: "public".into(),
            table: "orders".into(),
            insert: true,
            update: false,
            delete: true,
            filter: filter.map(|f| Filter::parse(f).unwrap()),
            url: "http://x".into(),
            headers: json!({}),
            max_attempts: 3,
        }
    }

    #[test]
    fn a_row_too_large_for_a_payload_is_sent_as_its_primary_key() {
        let db = fluxbase_migrations::Db::new(
            tokio_postgres::Config::new(),
            fluxbase_migrations::PoolSettings::default(),
        );
        let webhooks = Webhooks::new(db, 200);
        let mut big = change(
            Op::Insert,
            "orders",
            json!({"id": 1, "blob": "x".repeat(500)}),
        );
        big.primary_key = Some(json!({"id": 1}).as_object().unwrap().clone());
        let tx = Transaction {
            xid: 1,
            begin_lsn: fluxbase_replication::Lsn(1),
            commit_lsn: fluxbase_replication::Lsn(2),
            end_lsn: fluxbase_replication::Lsn(3),
            commit_timestamp: fluxbase_replication::Timestamp(0),
            changes: vec![big.clone()],
        };
        let payload = webhooks.payload(&rule(None), &tx, &big);
        assert_eq!(payload["url"], "http://x");
        assert_eq!(payload["body"]["record"], json!({"id": 1}));
        assert_eq!(payload["body"]["truncated"], json!(true));
        let small = change(Op::Insert, "orders", json!({"id": 2}));
        let payload = webhooks.payload(&rule(None), &tx, &small);
        assert_eq!(payload["body"]["record"], json!({"id": 2}));
        assert_eq!(payload["body"]["commit_lsn"], "0/2");
        assert!(payload["body"].get("truncated").is_none());
    }

    /// The replication consumer may run `take` on any runtime thread.
    #[allow(dead_code)]
    fn take_is_send(webhooks: &Webhooks, tx: &Transaction) {
        fn send<T: Send>(_: T) {}
        send(webhooks.take(tx));
        send(webhooks.clone());
    }

    #[test]
    fn rules_fire_on_their_table_events_and_filter() {
        let r = rule(Some("status=eq.paid"));
        assert!(r.fires(&change(Op::Insert, "orders", json!({"status": "paid"}))));
        assert!(!r.fires(&change(Op::Insert, "orders", json!({"status": "open"}))));
        assert!(!r.fires(&change(Op::Insert, "other", json!({"status": "paid"}))));
        assert!(!r.fires(&change(Op::Update, "orders", json!({"status": "paid"}))));
        // A DELETE is matched on its old row.
        assert!(r.fires(&change(Op::Delete, "orders", json!({"status": "paid"}))));
        assert!(rule(None).fires(&change(Op::Insert, "orders", json!({}))));
    }
}
