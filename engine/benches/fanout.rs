//! In-process match + decide + fan-out of one change to 5,000 subscriptions, without
//! sockets or a database (issue 4).
//!
//! The dispatcher's own `fan_out` is private and decides through the `Gate`, which takes a
//! pooled database connection for every change, so it cannot run without PostgreSQL. This
//! bench drives the same public pieces in the same order instead:
//! 1. **match**: `Index::recipients` (the filter index, owner routing);
//! 2. **decide**: one decision per distinct context (grouped by fingerprint, as the
//!    dispatcher does); tables without RLS once per role (bypass, as the `Gate` does),
//!    tables with RLS by `TablePolicies::evaluate` on the compiled policies — the
//!    in-process step of `RlsDecider::decide` (the SQL fallback and its cache need a DB and
//!    are not measured);
//! 3. **fan-out**: the change's body encoded once by the native format
//!    (`EventFormat::change_body`, as the dispatcher does), then `ConnShared::push` of
//!    `Outbound::Change` (two `Arc`s) into each recipient's bounded queue.
//!
//! Queues are drained outside the timed section (socket tasks do that in the server). The
//! per-recipient frame building that socket loops do (`Codec::change`) is measured
//! apart, as is policy evaluation for 5,000 distinct contexts.
//!
//! ```text
//! cargo bench -p fluxbase-engine --bench fanout
//! ```

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fluxbase_auth::{AuthContext, Role};
use fluxbase_engine::realtime::RealtimeSettings;
use fluxbase_engine::realtime::codec::native::{NATIVE, Native};
use fluxbase_engine::realtime::codec::{ChangeView, Codec, Detail, EventFormat};
use fluxbase_engine::realtime::connection::{ConnId, ConnShared, Outbound, PushOutcome};
use fluxbase_engine::realtime::connections::{Connections, Limits};
use fluxbase_engine::realtime::filter::Filter;
use fluxbase_engine::realtime::index::{EventMask, Index, RowOp, Subscription};
use fluxbase_engine::realtime::rls::policy::RawPolicy;
use fluxbase_engine::realtime::rls::predicate::{AuthUse, Collation, ColumnInfo, CompileEnv};
use fluxbase_engine::realtime::rls::value::SqlType;
use fluxbase_engine::realtime::rls::{
    OwnerIndex, OwnerRoute, RoleAccess, RowRef, TablePolicies, Verdict,
};
use fluxbase_replication::{Change, Column, Lsn, Op, Timestamp, Transaction};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

/// Subscriptions (one per connection, each with its own context).
const SUBSCRIBERS: usize = 5_000;

/// Distinct `room` values of the eq-filtered case: 5,000 / 100 = 50 recipients a change.
const ROOMS: usize = 100;

const TABLE_OID: u32 = 16_500;

/// The uuid of user `i`.
fn uid(i: usize) -> String {
    format!("a0eebc99-9c0b-4ef8-bb6d-{i:012x}")
}

/// A signed-in user's context, distinct per user (so 5,000 distinct fingerprints).
fn user(i: usize) -> AuthContext {
    let claims = json!({"sub": uid(i), "role": "authenticated", "tenant": format!("t{}", i % 10)});
    AuthContext::from_claims(claims.as_object().expect("object").clone())
}

/// How a table's rows are decided.
enum Rls {
    /// RLS off: one decision per role, every role allowed (the `Gate`'s shortcut).
    Off,
    /// Compiled policies; the access facts of `authenticated` on the table.
    Compiled(TablePolicies, RoleAccess),
}

/// `public.<table>` with `columns` and, when given, SELECT policies (name, qual).
fn table_policies(table: &str, policies: &[(&str, &str)]) -> (TablePolicies, RoleAccess) {
    let col = |name: &str, ty: SqlType| ColumnInfo {
        name: name.into(),
        ty,
        collation: Collation::C,
    };
    let env = CompileEnv {
        columns: vec![
            col("id", SqlType::Int8),
            col("owner", SqlType::Uuid),
            col("tenant", SqlType::Text),
            col("room", SqlType::Int4),
            col("is_public", SqlType::Bool),
            col("body", SqlType::Text),
        ],
        default_collation: Collation::C,
    };
    let raw: Vec<RawPolicy> = policies
        .iter()
        .enumerate()
        .map(|(i, (name, qual))| RawPolicy {
            oid: 100 + i as u32,
            name: (*name).into(),
            permissive: true,
            roles: vec![0],
            qual: (*qual).into(),
        })
        .collect();
    let oids = raw.iter().map(|p| p.oid).collect();
    let compiled = TablePolicies::new(
        TABLE_OID,
        "public".into(),
        table.into(),
        true,
        false,
        raw,
        &env,
    );
    for p in &compiled.policies {
        assert!(p.fully_compiled(), "{} must compile", p.qual);
    }
    let access = RoleAccess {
        exists: true,
        can_select: true,
        bypasses_rls: false,
        applicable: oids,
        auth_callable: AuthUse {
            uid: true,
            role: true,
            jwt: true,
        },
    };
    (compiled, access)
}

/// 5,000 connections, each with one subscription to `public.<table>` (and `filter(i)`),
/// and their queue receivers.
struct Setup {
    index: Index,
    /// Registered as the server registers them (the limits are part of a connect).
    _connections: Connections,
    receivers: Vec<mpsc::Receiver<Outbound>>,
    rls: Rls,
    table: &'static str,
}

impl Setup {
    fn new(
        table: &'static str,
        rls: Rls,
        route: Option<OwnerRoute>,
        filter: impl Fn(usize) -> Option<String>,
    ) -> Setup {
        let settings = RealtimeSettings::default();
        let limits = Limits {
            max_connections: usize::MAX,
            per_user: usize::MAX,
            per_ip: usize::MAX,
        };
        let connections = Connections::default();
        let mut index = Index::default();
        index.set_route("public", table, route);
        let mut receivers = Vec::with_capacity(SUBSCRIBERS);
        for i in 0..SUBSCRIBERS {
            let id = i as u64 + 1;
            let context = user(i);
            let sub = context.uid().map(str::to_owned);
            let (conn, rx) = ConnShared::new(
                id,
                ConnId::new("bench", id),
                "127.0.0.1".parse().expect("ip"),
                context,
                &NATIVE,
                settings.queue_limits(),
            );
            connections
                .add(conn.clone(), sub, limits)
                .expect("under the limits");
            receivers.push(rx);
            let sub_id = format!("sub-{i}");
            index.add(Subscription {
                envelope: Native.envelope("room", &[&sub_id]),
                id: Arc::from(sub_id),
                conn,
                channel: Arc::from("room"),
                schema: Arc::from("public"),
                table: Arc::from(table),
                events: EventMask::parse("*").expect("event"),
                filter: filter(i).map(|f| Filter::parse(&f).expect("filter")),
            });
        }
        Setup {
            index,
            _connections: connections,
            receivers,
            rls,
            table,
        }
    }

    /// Match + decide + fan-out of one change, as the dispatcher does; returns frames queued.
    fn deliver(&self, tx: &Transaction, change: &Change) -> usize {
        let matches = self.index.recipients(
            "public",
            self.table,
            RowOp::Insert,
            change.record.as_ref().map(RowRef::plain),
        );
        if matches.is_empty() {
            return 0;
        }
        // Distinct contexts by fingerprint, one slot per connection run (one sub each here).
        let mut contexts: Vec<Arc<AuthContext>> = Vec::new();
        let mut index: HashMap<u64, usize> = HashMap::with_capacity(matches.len());
        let slots: Vec<usize> = matches
            .iter()
            .map(|sub| {
                *index.entry(sub.conn.fingerprint()).or_insert_with(|| {
                    contexts.push(sub.conn.context());
                    contexts.len() - 1
                })
            })
            .collect();
        let row = change.record.as_ref().expect("insert has a row");
        let allowed: Vec<bool> = match &self.rls {
            Rls::Off => {
                // Once per distinct role.
                let mut roles: Vec<(Role, bool)> = Vec::new();
                contexts
                    .iter()
                    .map(|ctx| match roles.iter().find(|(r, _)| r == ctx.role()) {
                        Some((_, allowed)) => *allowed,
                        None => {
                            roles.push((ctx.role().clone(), true));
                            true
                        }
                    })
                    .collect()
            }
            Rls::Compiled(table, access) => contexts
                .iter()
                .map(|ctx| table.evaluate(access, RowRef::plain(row), ctx) == Verdict::Allow)
                .collect(),
        };
        let full = body(tx, change);
        let mut sent = 0;
        for (sub, slot) in matches.iter().zip(slots) {
            if !allowed[slot] {
                continue;
            }
            let frame = Outbound::Change {
                sub: sub.clone(),
                body: full.clone(),
            };
            if sub.conn.push(frame) == PushOutcome::Queued {
                sent += 1;
            }
        }
        sent
    }

    /// Empties every queue (the socket tasks' job); returns the frames taken.
    fn drain(&mut self) -> usize {
        let mut n = 0;
        for rx in &mut self.receivers {
            while rx.try_recv().is_ok() {
                n += 1;
            }
        }
        n
    }
}

/// The change's body in the native format, as the dispatcher encodes it once per change.
fn body(tx: &Transaction, change: &Change) -> Arc<str> {
    NATIVE.change_body(&ChangeView::new(tx, change, Detail::Full).expect("a row change"))
}

/// An INSERT into `public.<table>` of a row owned by user 2,500, tenant t0, room 7, public.
fn change(table: &str) -> (Transaction, Change) {
    let record: Map<String, Value> = json!({
        "id": 123_456,
        "owner": uid(2_500),
        "tenant": "t0",
        "room": 7,
        "is_public": true,
        "body": "a realistic message body of about sixty-four bytes, give or take",
    })
    .as_object()
    .expect("object")
    .clone();
    let columns: Vec<Column> = [
        ("id", "int8"),
        ("owner", "uuid"),
        ("tenant", "text"),
        ("room", "int4"),
        ("is_public", "bool"),
        ("body", "text"),
    ]
    .iter()
    .map(|(name, ty)| Column {
        name: (*name).into(),
        type_name: (*ty).into(),
    })
    .collect();
    let change = Change {
        op: Op::Insert,
        schema: Arc::from("public"),
        table: Arc::from(table),
        relation_id: TABLE_OID,
        columns: Arc::from(columns),
        primary_key: Some(json!({"id": 123_456}).as_object().expect("object").clone()),
        record: Some(record),
        old_record: None,
        unchanged_toast: Vec::new(),
        json_nulls: Vec::new(),
        old_json_nulls: Vec::new(),
        message: None,
    };
    let tx = Transaction {
        xid: 1,
        begin_lsn: Lsn(0x100),
        commit_lsn: Lsn(0x200),
        end_lsn: Lsn(0x208),
        commit_timestamp: Timestamp::from_pg_micros(817_000_000_000_000),
        changes: Vec::new(),
    };
    (tx, change)
}

/// Times `deliver` only; queues are drained after each change, untimed.
fn bench_case(c: &mut Criterion, name: &str, mut setup: Setup, expect: usize) {
    let (tx, change) = change(setup.table);
    assert_eq!(setup.deliver(&tx, &change), expect, "{name}: recipients");
    assert_eq!(setup.drain(), expect);
    let mut group = c.benchmark_group("fanout_5000_subs");
    group.throughput(Throughput::Elements(expect as u64));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                black_box(setup.deliver(&tx, &change));
                total += start.elapsed();
                setup.drain();
            }
            total
        })
    });
    group.finish();
}

fn fanout(c: &mut Criterion) {
    // (a) a table without RLS, 5,000 subscribers: 5,000 frames.
    let setup = Setup::new("public_feed", Rls::Off, None, |_| None);
    bench_case(c, "a_public_no_rls_5000_recipients", setup, SUBSCRIBERS);

    // (a') the same with a compiled policy, decided for 5,000 distinct contexts.
    let (policies, access) = table_policies(
        "public_docs",
        &[("public_or_owner", "(is_public OR (owner = auth.uid()))")],
    );
    let setup = Setup::new("public_docs", Rls::Compiled(policies, access), None, |_| {
        None
    });
    bench_case(
        c,
        "a_rls_compiled_5000_contexts_5000_recipients",
        setup,
        SUBSCRIBERS,
    );

    // (b) owner-only policy: owner routing picks the one owner, one decision.
    let (policies, access) = table_policies("owned", &[("owner_only", "(owner = auth.uid())")]);
    let route = OwnerRoute {
        index: policies
            .owner_index
            .clone()
            .expect("owner-only policies are routed"),
        roles: vec![Role::Anon, Role::Authenticated],
    };
    assert_eq!(route.index, OwnerIndex::new("owner".into()));
    let setup = Setup::new(
        "owned",
        Rls::Compiled(policies, access),
        Some(route),
        |_| None,
    );
    bench_case(c, "b_owner_routed_1_recipient", setup, 1);

    // (c) `room=eq.N` filters over 100 rooms: the index yields the 50 of room 7.
    let setup = Setup::new("messages", Rls::Off, None, |i| {
        Some(format!("room=eq.{}", i % ROOMS))
    });
    bench_case(c, "c_eq_filtered_50_recipients", setup, SUBSCRIBERS / ROOMS);

    // The socket side: one recipient's frame from its envelope and the shared body.
    let (tx, change) = change("public_feed");
    let setup = Setup::new("public_feed", Rls::Off, None, |_| None);
    let sub = setup
        .index
        .recipients(
            "public",
            "public_feed",
            RowOp::Insert,
            change.record.as_ref().map(RowRef::plain),
        )
        .remove(0);
    let body = body(&tx, &change);
    let mut codec = Native;
    let mut group = c.benchmark_group("socket_side");
    group.throughput(Throughput::Elements(1));
    group.bench_function("codec_change_frame", |b| {
        b.iter(|| black_box(codec.change(std::slice::from_ref(&sub), &body)))
    });
    group.bench_function("native_change_body", |b| {
        b.iter(|| {
            black_box(
                NATIVE.change_body(&ChangeView::new(&tx, &change, Detail::Full).expect("row")),
            )
        })
    });
    group.finish();
}

/// Compiled policy evaluation alone, for 5,000 distinct contexts on one row.
fn rls_eval(c: &mut Criterion) {
    let (_, change) = change("t");
    let row = change.record.expect("row");
    let contexts: Vec<AuthContext> = (0..SUBSCRIBERS).map(user).collect();
    let mut group = c.benchmark_group("rls_compiled_5000_contexts");
    group.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    for (name, qual) in [
        ("owner", "(owner = auth.uid())"),
        ("public_or_owner", "(is_public OR (owner = auth.uid()))"),
        ("tenant_claim", "((auth.jwt() ->> 'tenant'::text) = tenant)"),
    ] {
        let (policies, access) = table_policies("t", &[(name, qual)]);
        group.bench_function(name, |b| {
            b.iter(|| {
                contexts
                    .iter()
                    .filter(|ctx| {
                        policies.evaluate(&access, RowRef::plain(&row), ctx) == Verdict::Allow
                    })
                    .count()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = fanout, rls_eval
}
criterion_main!(benches);
