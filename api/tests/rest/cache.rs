//! The schema cache followed without a restart: a table created while the service runs
//! is reachable from the next request (the cache reloads first when the catalog has a
//! table it lacks, before the DDL event trigger's notice arrives), and a changed table is
//! read with fresh statements.

use serde_json::json;
use tokio::time::timeout;

use super::harness::*;

#[tokio::test]
async fn a_table_created_while_running_is_reachable_from_the_next_request() {
    let rest = Rest::new().await;
    let r = rest.table("GET", "fresh").send().await;
    assert_eq!(ok_json(&r, 404)["code"], "PGRST205");
    let before = rest.cache.version();
    rest.sql(
        "CREATE TABLE public.fresh (id int PRIMARY KEY, v text);
         INSERT INTO public.fresh VALUES (1, 'new');
         GRANT SELECT ON public.fresh TO anon;",
    )
    .await;
    // The very next request, whether or not the DDL notice has reached the cache yet: a
    // table the catalog has and the cache not makes the cache reload first.
    let r = rest.table("GET", "fresh").send().await;
    assert_eq!(ok_json(&r, 200), json!([{"id": 1, "v": "new"}]));
    assert!(rest.cache.version() > before, "the cache reloaded");
    // A name the catalog lacks still answers 404, hostile names included (the catalog is
    // asked with bound parameters); a name over the bound is refused before any lookup.
    for name in [
        "never_created",
        "fresh'; DROP TABLE public.fresh; --",
        "fresh\"",
    ] {
        let r = rest.table("GET", name).send().await;
        assert_eq!(ok_json(&r, 404)["code"], "PGRST205", "{name}");
    }
    let r = rest.table("GET", &"x".repeat(2_000)).send().await;
    assert_eq!(ok_json(&r, 404)["code"], "PGRST125");
    // Nothing was touched.
    let r = rest.table("GET", "fresh").send().await;
    assert_eq!(ok_json(&r, 200), json!([{"id": 1, "v": "new"}]));
}

#[tokio::test]
async fn a_changed_table_is_read_with_fresh_statements() {
    let rest = Rest::new().await;
    let get = || rest.table("GET", "directors").query("id=eq.1").send();
    assert_eq!(
        ok_json(&get().await, 200),
        json!([{"id": 1, "name": "Agnès Varda"}])
    );
    let before = rest.cache.version();
    rest.sql("ALTER TABLE public.directors ADD COLUMN born int DEFAULT 1928")
        .await;
    timeout(
        DEADLINE,
        rest.cache.wait_for(|s| {
            s.relation("public", "directors")
                .is_some_and(|r| r.column("born").is_some())
        }),
    )
    .await
    .expect("the schema cache never saw the new column");
    assert!(rest.cache.version() > before);
    assert_eq!(
        ok_json(&get().await, 200),
        json!([{"id": 1, "name": "Agnès Varda", "born": 1928}])
    );
    rest.sql("ALTER TABLE public.directors DROP COLUMN born, ALTER COLUMN name TYPE varchar(80)")
        .await;
    timeout(
        DEADLINE,
        rest.cache.wait_for(|s| {
            s.relation("public", "directors")
                .is_some_and(|r| r.column("born").is_none())
        }),
    )
    .await
    .expect("the schema cache never saw the dropped column");
    assert_eq!(
        ok_json(&get().await, 200),
        json!([{"id": 1, "name": "Agnès Varda"}])
    );
}
