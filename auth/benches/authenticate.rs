//! The cost of the session check every request with an app-user or admin token pays
//! (`AuthService::authenticate`: signature, `exp`, `nbf`, then one primary-key probe on a
//! prepared statement), next to the signature check alone, against a real PostgreSQL (the
//! embedded test cluster on this machine, over TCP on 127.0.0.1).
//!
//! ```text
//! cargo bench -p fluxbase-auth --bench authenticate
//! ```

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use fluxbase_auth::{AuthService, AuthSettings, Client, SignUp};
use fluxbase_migrations::test_utils::TestDb;
use fluxbase_migrations::{Db, PoolSettings};

fn authenticate(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let (service, _db, token) = rt.block_on(async {
        let db = TestDb::new().await;
        let pool = Db::new(db.config(), PoolSettings::default());
        let service = AuthService::new(
            pool,
            Some(b"a-bench-secret-that-is-long-enough-for-hs256-0123456789"),
            AuthSettings::default(),
        );
        let grant = service
            .sign_up(
                SignUp {
                    email: "bench@example.com".into(),
                    password: "bench password".into(),
                    data: None,
                },
                &Client::new(IpAddr::from([127, 0, 0, 1]), None),
            )
            .await
            .expect("sign up")
            .session()
            .expect("confirmation is off: signed in at once");
        (service, db, grant.access_token)
    });
    let keys = service.keys().expect("keys").clone();
    let mut group = c.benchmark_group("authenticate");
    group.bench_function("signature_exp_nbf_only", |b| {
        b.iter(|| keys.context(black_box(&token)).expect("valid"))
    });
    group.bench_function("with_session_check", |b| {
        b.iter(|| {
            rt.block_on(service.authenticate(Some(black_box(&token))))
                .expect("live")
        })
    });
    group.finish();
}

criterion_group!(benches, authenticate);
criterion_main!(benches);
