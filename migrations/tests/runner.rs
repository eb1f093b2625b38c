//! The runner: idempotence, concurrency, checksums, and what the foundation migration creates.

use fluxbase_migrations::test_utils::TestDb;
use fluxbase_migrations::{MIGRATIONS, MigrateError, Migration, run, runner::run_list};

#[tokio::test]
async fn template_is_migrated_and_rerun_applies_nothing() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    let report = run(&mut client).await.expect("second run");
    assert!(
        report.applied.is_empty(),
        "re-applied: {:?}",
        report.applied
    );
    let expected: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(report.already_applied, expected);
    let count: i64 = client
        .query_one("SELECT count(*) FROM _fluxbase.schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, MIGRATIONS.len() as i64);
}

#[tokio::test]
async fn foundation_objects_exist() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let schemas: Vec<String> = client
        .query(
            "SELECT nspname::text FROM pg_namespace
             WHERE nspname IN ('auth','dashboard','storage','jobs','realtime') ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        schemas,
        ["auth", "dashboard", "jobs", "realtime", "storage"]
    );
    let extensions: Vec<String> = client
        .query(
            "SELECT extname::text FROM pg_extension
             WHERE extname IN ('pgcrypto','uuid-ossp','pg_trgm') ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(extensions, ["pg_trgm", "pgcrypto", "uuid-ossp"]);
    let roles: Vec<(String, bool)> = client
        .query(
            "SELECT rolname::text, rolcanlogin FROM pg_roles
             WHERE rolname IN ('anon','authenticated','service_role') ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        roles,
        [
            ("anon".to_string(), false),
            ("authenticated".to_string(), false),
            ("service_role".to_string(), false)
        ]
    );
    // The server's login role may switch to each API role.
    for role in ["anon", "authenticated", "service_role"] {
        let member: bool = client
            .query_one("SELECT pg_has_role(current_user, $1, 'MEMBER')", &[&role])
            .await
            .unwrap()
            .get(0);
        assert!(member, "login role is not a member of {role}");
    }
}

#[tokio::test]
async fn auth_functions_read_request_claims() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    let none = client
        .query_one("SELECT auth.uid(), auth.role(), auth.jwt()", &[])
        .await
        .unwrap();
    assert_eq!(none.get::<_, Option<String>>(1), None);
    assert_eq!(none.get::<_, serde_json_like::Json>(2).0, "{}");

    let tx = client.transaction().await.unwrap();
    tx.execute(
        "SELECT set_config('request.jwt.claims', $1, true)",
        &[&r#"{"sub":"6f1c2a3e-1111-4222-8333-944455556666","role":"authenticated","tenant":"acme"}"#],
    )
    .await
    .unwrap();
    tx.execute("SET LOCAL ROLE authenticated", &[])
        .await
        .unwrap();
    let row = tx
        .query_one(
            "SELECT auth.uid()::text, auth.role(), auth.jwt() ->> 'tenant'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, String>(0),
        "6f1c2a3e-1111-4222-8333-944455556666"
    );
    assert_eq!(row.get::<_, String>(1), "authenticated");
    assert_eq!(row.get::<_, String>(2), "acme");
    tx.commit().await.unwrap();

    // After the transaction the setting reads '' — the functions must not fail on it.
    let after = client
        .query_one("SELECT auth.uid() IS NULL, auth.jwt()::text", &[])
        .await
        .unwrap();
    assert!(after.get::<_, bool>(0));
    assert_eq!(after.get::<_, String>(1), "{}");
}

#[tokio::test]
async fn runbook_crypt_sql_works() {
    // The runbook resets passwords with crypt(…, gen_salt('bf')): pgcrypto must be on the
    // default search path.
    let db = TestDb::new().await;
    let client = db.client().await;
    let ok: bool = client
        .query_one(
            "SELECT crypt('temporary-password', h) = h
             FROM (SELECT crypt('temporary-password', gen_salt('bf')) AS h) s",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ok);
}

#[tokio::test]
async fn concurrent_runs_apply_each_migration_once() {
    let db = TestDb::new().await;
    // Start from an empty history so both runners have real work to race over.
    let setup = db.client().await;
    setup
        .batch_execute("DROP SCHEMA _fluxbase CASCADE")
        .await
        .unwrap();
    let mut list = MIGRATIONS.to_vec();
    list.push(Migration {
        version: 9998,
        name: "counter",
        sql: "CREATE TABLE public.migration_race (n int);
                  INSERT INTO public.migration_race VALUES (1);",
    });
    let extra: &'static [Migration] = Box::leak(list.into_boxed_slice());
    let mut a = db.client().await;
    let mut b = db.client().await;
    let (ra, rb) = tokio::join!(run_list(&mut a, extra), run_list(&mut b, extra));
    let (ra, rb) = (ra.expect("runner a"), rb.expect("runner b"));
    let mut applied = [ra.applied.clone(), rb.applied.clone()].concat();
    applied.sort();
    let expected: Vec<i64> = extra.iter().map(|m| m.version).collect();
    assert_eq!(applied, expected, "a={ra:?} b={rb:?}");
    let rows: i64 = setup
        .query_one("SELECT count(*) FROM public.migration_race", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn edited_migration_is_refused() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    let mut edited = MIGRATIONS.to_vec();
    edited[0] = Migration {
        sql: "SELECT 1",
        ..MIGRATIONS[0]
    };
    let err = run_list(&mut client, &edited).await.unwrap_err();
    assert!(
        matches!(err, MigrateError::ChecksumMismatch { version: 1, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn failing_migration_rolls_back_and_is_not_recorded() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    let mut list = MIGRATIONS.to_vec();
    list.push(Migration {
        version: 9999,
        name: "broken",
        sql: "CREATE TABLE public.half_done (n int); SELECT no_such_function();",
    });
    let err = run_list(&mut client, &list).await.unwrap_err();
    assert!(
        matches!(err, MigrateError::Failed { version: 9999, .. }),
        "{err}"
    );
    let exists: bool = client
        .query_one("SELECT to_regclass('public.half_done') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!exists, "the failed migration's first statement was kept");
    let recorded: i64 = client
        .query_one(
            "SELECT count(*) FROM _fluxbase.schema_migrations WHERE version = 9999",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, 0);
    // The lock was released: another run can proceed.
    let report = run(&mut client).await.unwrap();
    assert!(report.applied.is_empty());
}

/// Reads `jsonb` as its text form without pulling serde_json into this crate's tests.
mod serde_json_like {
    use tokio_postgres::types::{FromSql, Type};

    pub struct Json(pub String);

    impl<'a> FromSql<'a> for Json {
        fn from_sql(
            _: &Type,
            raw: &'a [u8],
        ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
            // jsonb binary format: a version byte, then the text.
            Ok(Json(String::from_utf8(raw[1..].to_vec())?))
        }

        fn accepts(ty: &Type) -> bool {
            *ty == Type::JSONB
        }
    }
}
