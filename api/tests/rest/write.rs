//! Writes: POST (object, array, `columns=`, `missing=default`, upserts), PUT, PATCH and
//! DELETE (filters, `limit` with `order`), every `return=`, `tx=rollback`, counts,
//! `max-affected`, single objects, a bulk insert of 10,000 rows, and Fluxbase's row-key
//! paths.

use serde_json::{Value, json};

use super::harness::*;

/// The directors table's rows, by id, as the superuser sees them.
async fn directors(rest: &Rest) -> Vec<(i32, String)> {
    rest.db
        .client()
        .await
        .query("SELECT id, name FROM public.directors ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn post_objects_and_arrays_with_every_return() {
    let rest = Rest::new().await;
    // Default: return=minimal, 201 without a body.
    let r = rest
        .table("POST", "directors")
        .service()
        .json(json!({"id": 10, "name": "Claire Denis"}))
        .send()
        .await;
    expect_status(&r, 201);
    assert!(r.body.is_empty());
    assert_eq!(r.header("Content-Range"), Some("*/*"));

    let r = rest
        .table("POST", "directors")
        .service()
        .query("select=id,name,films(id)")
        .prefer("return=representation")
        .prefer("count=exact")
        .json(json!([{"id": 11, "name": "Céline Sciamma"}, {"id": 12, "name": "Mati Diop"}]))
        .send()
        .await;
    assert_eq!(
        ok_json(&r, 201),
        json!([
            {"id": 11, "name": "Céline Sciamma", "films": []},
            {"id": 12, "name": "Mati Diop", "films": []}
        ])
    );
    assert_eq!(r.header("Content-Range"), Some("*/2"));
    assert_eq!(
        r.header("Preference-Applied"),
        Some("return=representation, count=exact")
    );

    let r = rest
        .table("POST", "directors")
        .service()
        .prefer("return=headers-only")
        .json(json!({"id": 13, "name": "Lucrecia Martel"}))
        .send()
        .await;
    expect_status(&r, 201);
    assert_eq!(r.header("Location"), Some("/directors?id=eq.13"));
    assert!(r.body.is_empty());

    // columns= picks the keys; others in the objects are ignored.
    let r = rest
        .table("POST", "directors")
        .service()
        .query("columns=id,name")
        .prefer("return=representation")
        .json(json!([{"id": 14, "name": "Kelly Reichardt", "extra": 1}, {"id": 15, "name": "Ava DuVernay"}]))
        .send()
        .await;
    assert_eq!(ok_json(&r, 201).as_array().unwrap().len(), 2);
    // A CSV body, answered in CSV.
    let r = rest
        .table("POST", "directors")
        .service()
        .header("Content-Type", "text/csv")
        .header("Accept", "text/csv")
        .prefer("return=representation")
        .body("id,name\n16,\"Varda, Agnès\"\n17,NULL")
        .send()
        .await;
    assert_eq!(ok_json(&r, 400)["code"], "23502");
    let r = rest
        .table("POST", "directors")
        .service()
        .header("Content-Type", "text/csv")
        .header("Accept", "text/csv")
        .prefer("return=representation")
        .body("id,name\n16,\"Varda, Agnès\"\n17,Jane Campion")
        .send()
        .await;
    expect_status(&r, 201);
    assert_eq!(
        String::from_utf8(r.body.to_vec()).unwrap(),
        "id,name\n16,\"Varda, Agnès\"\n17,Jane Campion"
    );
    assert_eq!(directors(&rest).await.len(), 11);
}

#[tokio::test]
async fn missing_default_fills_absent_keys() {
    let rest = Rest::new().await;
    let body = json!([{"title": "a", "priority": 1}, {"title": "b"}]);
    let r = rest
        .table("POST", "todos")
        .user(ALICE)
        .query("columns=title,priority,done&select=title,priority,done,user_id")
        .prefer("return=representation")
        .prefer("missing=default")
        .json(body.clone())
        .send()
        .await;
    assert_eq!(
        ok_json(&r, 201),
        json!([
            {"title": "a", "priority": 1, "done": false, "user_id": ALICE},
            {"title": "b", "priority": null, "done": false, "user_id": ALICE}
        ])
    );
    // Without it, a listed column absent from an object is NULL (done is NOT NULL).
    let r = rest
        .table("POST", "todos")
        .user(ALICE)
        .query("columns=title,done")
        .json(body)
        .send()
        .await;
    assert_eq!(ok_json(&r, 400)["code"], "23502");
}

#[tokio::test]
async fn upserts_merge_or_ignore_duplicates() {
    let rest = Rest::new().await;
    let r = rest
        .table("POST", "directors")
        .service()
        .prefer("resolution=merge-duplicates")
        .prefer("return=representation")
        .json(json!([{"id": 1, "name": "Agnès V."}, {"id": 20, "name": "New"}]))
        .send()
        .await;
    let body = ok_json(&r, 201);
    assert_eq!(body.as_array().unwrap().len(), 2);
    assert_eq!(
        r.header("Preference-Applied"),
        Some("resolution=merge-duplicates, return=representation")
    );
    // Only updates: 200.
    let r = rest
        .table("POST", "directors")
        .service()
        .prefer("resolution=merge-duplicates")
        .json(json!({"id": 20, "name": "Renamed"}))
        .send()
        .await;
    expect_status(&r, 200);
    let r = rest
        .table("POST", "directors")
        .service()
        .prefer("resolution=ignore-duplicates")
        .prefer("return=representation")
        .json(json!([{"id": 1, "name": "ignored"}, {"id": 21, "name": "Inserted"}]))
        .send()
        .await;
    assert_eq!(ok_json(&r, 201), json!([{"id": 21, "name": "Inserted"}]));
    // on_conflict= on a unique column.
    let r = rest
        .table("POST", "teams")
        .service()
        .query("on_conflict=name")
        .prefer("resolution=merge-duplicates")
        .prefer("return=representation")
        .json(json!({"id": 1, "name": "red"}))
        .send()
        .await;
    assert_eq!(ok_json(&r, 200), json!([{"id": 1, "name": "red"}]));
    let all = directors(&rest).await;
    assert!(all.contains(&(1, "Agnès V.".to_owned())));
    assert!(all.contains(&(20, "Renamed".to_owned())));
    assert!(all.contains(&(21, "Inserted".to_owned())));
    // A conflict target that is no unique key is PostgreSQL's 42P10.
    let r = rest
        .table("POST", "directors")
        .service()
        .query("on_conflict=name")
        .prefer("resolution=merge-duplicates")
        .json(json!({"id": 30, "name": "x"}))
        .send()
        .await;
    assert_eq!(ok_json(&r, 400)["code"], "42P10");
}

#[tokio::test]
async fn put_inserts_or_replaces_one_row_by_primary_key() {
    let rest = Rest::new().await;
    let put = |query: &'static str, body: Value| {
        rest.table("PUT", "directors")
            .service()
            .query(query)
            .prefer("return=representation")
            .json(body)
            .send()
    };
    let r = put("id=eq.40", json!({"id": 40, "name": "first"})).await;
    assert_eq!(ok_json(&r, 201), json!([{"id": 40, "name": "first"}]));
    let r = put("id=eq.40", json!({"id": 40, "name": "second"})).await;
    assert_eq!(ok_json(&r, 200), json!([{"id": 40, "name": "second"}]));
    let r = put("id=eq.41", json!({"id": 40, "name": "mismatch"})).await;
    assert_eq!(ok_json(&r, 400)["code"], "PGRST115");
    let r = put("name=eq.x", json!({"id": 40, "name": "x"})).await;
    assert_eq!(ok_json(&r, 405)["code"], "PGRST105");
    let r = put("id=gt.1", json!({"id": 40, "name": "x"})).await;
    assert_eq!(ok_json(&r, 405)["code"], "PGRST105");
    assert!(directors(&rest).await.contains(&(40, "second".to_owned())));
    assert!(!directors(&rest).await.iter().any(|(_, n)| n == "mismatch"));
}

#[tokio::test]
async fn patch_and_delete_with_filters_limits_and_representations() {
    let rest = Rest::new().await;
    let r = rest
        .table("PATCH", "films")
        .user(ALICE)
        .query("director_id=eq.2&select=id,title,directors(name)&order=id")
        .prefer("return=representation")
        .prefer("count=exact")
        .json(json!({"rating": 9}))
        .send()
        .await;
    assert_eq!(
        ok_json(&r, 200),
        json!([
            {"id": 2, "title": "Jeanne Dielman", "directors": {"name": "Chantal Akerman"}},
            {"id": 3, "title": "News from Home", "directors": {"name": "Chantal Akerman"}}
        ])
    );
    assert_eq!(r.header("Content-Range"), Some("0-1/2"));
    // Minimal: 204.
    let r = rest
        .table("PATCH", "films")
        .user(ALICE)
        .query("id=eq.5")
        .json(json!({"year": 2000, "title": "Titled"}))
        .send()
        .await;
    expect_status(&r, 204);
    // limit needs order; with it, only the first rows change.
    let r = rest
        .table("PATCH", "reviews")
        .user(ALICE)
        .query("limit=1")
        .json(json!({"body": "x"}))
        .send()
        .await;
    assert_eq!(ok_json(&r, 400)["code"], "PGRST109");
    let r = rest
        .table("PATCH", "reviews")
        .user(ALICE)
        .query("order=id.desc&limit=2&select=id")
        .prefer("return=representation")
        .json(json!({"body": "edited"}))
        .send()
        .await;
    assert_eq!(ids(&ok_json(&r, 200)).len(), 2);
    let client = rest.db.client().await;
    let edited: i64 = client
        .query_one(
            "SELECT count(*) FROM public.reviews WHERE body = 'edited'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(edited, 2);
    let max_edited: i32 = client
        .query_one(
            "SELECT min(id) FROM public.reviews WHERE body = 'edited'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(max_edited, 3);

    let r = rest
        .table("DELETE", "reviews")
        .user(ALICE)
        .query("stars=lt.5&select=id,stars")
        .prefer("return=representation")
        .send()
        .await;
    assert_eq!(
        ok_json(&r, 200),
        json!([{"id": 2, "stars": 4}, {"id": 4, "stars": 3}])
    );
    let r = rest
        .table("DELETE", "reviews")
        .user(ALICE)
        .query("order=id&limit=1")
        .prefer("count=exact")
        .send()
        .await;
    expect_status(&r, 204);
    assert_eq!(r.header("Content-Range"), Some("*/1"));
    let left: Vec<i32> = client
        .query("SELECT id FROM public.reviews ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, vec![3]);
    // An empty PATCH body changes nothing.
    let r = rest
        .table("PATCH", "films")
        .user(ALICE)
        .prefer("return=representation")
        .json(json!({}))
        .send()
        .await;
    assert_eq!(ok_json(&r, 200), json!([]));
}

#[tokio::test]
async fn rollback_max_affected_and_single_objects_keep_writes_out() {
    let rest = Rest::new().await;
    let r = rest
        .table("POST", "directors")
        .service()
        .prefer("tx=rollback")
        .prefer("return=representation")
        .json(json!({"id": 50, "name": "dry run"}))
        .send()
        .await;
    assert_eq!(ok_json(&r, 201), json!([{"id": 50, "name": "dry run"}]));
    assert_eq!(
        r.header("Preference-Applied"),
        Some("return=representation, tx=rollback")
    );
    assert!(!directors(&rest).await.iter().any(|(id, _)| *id == 50));

    let r = rest
        .table("DELETE", "films")
        .user(ALICE)
        .query("rating=is.null")
        .prefer("handling=strict")
        .prefer("max-affected=1")
        .send()
        .await;
    let body = ok_json(&r, 400);
    assert_eq!(body["code"], "PGRST124");
    assert_eq!(body["details"], "The query affects 2 rows");
    let r = rest
        .table("PATCH", "directors")
        .user(ALICE)
        .query("id=lt.3")
        .header("Accept", "application/vnd.pgrst.object+json")
        .prefer("return=representation")
        .json(json!({"name": "same"}))
        .send()
        .await;
    assert_eq!(ok_json(&r, 406)["code"], "PGRST116");
    assert_eq!(directors(&rest).await[0].1, "Agnès Varda");
    let r = rest
        .table("PATCH", "directors")
        .user(ALICE)
        .query("id=eq.3")
        .header("Accept", "application/vnd.pgrst.object+json")
        .prefer("return=representation")
        .json(json!({"name": "Somebody"}))
        .send()
        .await;
    assert_eq!(ok_json(&r, 200), json!({"id": 3, "name": "Somebody"}));
}

#[tokio::test]
async fn bulk_insert_of_ten_thousand_rows_in_one_request() {
    let rest = Rest::new().await;
    let rows: Vec<Value> = (0..10_000)
        .map(|i| json!({"film_id": 1 + i % 5, "stars": 1 + i % 5, "body": format!("review {i}")}))
        .collect();
    let r = rest
        .table("POST", "reviews")
        .user(ALICE)
        .prefer("count=exact")
        .json(Value::Array(rows))
        .send()
        .await;
    expect_status(&r, 201);
    assert_eq!(r.header("Content-Range"), Some("*/10000"));
    let count: i64 = rest
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM public.reviews WHERE body LIKE 'review %'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 10_000);
}

#[tokio::test]
async fn fluxbase_paths_name_rows_by_primary_key() {
    let rest = Rest::new().await;
    let r = rest
        .fluxbase("GET", "public", "films", Some("4"))
        .query("select=id,title")
        .send()
        .await;
    assert_eq!(ok_json(&r, 200), json!({"id": 4, "title": "Vagabond"}));
    let r = rest
        .fluxbase("GET", "public", "films", Some("99"))
        .send()
        .await;
    let body = ok_json(&r, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let r = rest
        .fluxbase("PATCH", "public", "directors", Some("3"))
        .auth(AuthContext::service_role())
        .prefer("return=representation")
        .json(json!({"name": "Renamed"}))
        .send()
        .await;
    assert_eq!(ok_json(&r, 200), json!({"id": 3, "name": "Renamed"}));
    let r = rest
        .fluxbase("DELETE", "public", "directors", Some("3"))
        .auth(AuthContext::service_role())
        .send()
        .await;
    expect_status(&r, 204);
    let r = rest
        .fluxbase("DELETE", "public", "directors", Some("3"))
        .auth(AuthContext::service_role())
        .send()
        .await;
    expect_status(&r, 404);
    let r = rest
        .fluxbase("PUT", "public", "directors", Some("60"))
        .auth(AuthContext::service_role())
        .json(json!({"id": 60, "name": "Put by key"}))
        .send()
        .await;
    expect_status(&r, 204);
    let r = rest
        .fluxbase("POST", "public", "directors", None)
        .auth(AuthContext::service_role())
        .prefer("return=headers-only")
        .json(json!({"id": 61, "name": "Located"}))
        .send()
        .await;
    expect_status(&r, 201);
    assert_eq!(
        r.header("Location"),
        Some("/api/v1/tables/public/directors/61")
    );
    // A composite key cannot be named by one path segment.
    let r = rest
        .fluxbase("GET", "public", "roles", Some("1"))
        .send()
        .await;
    let body = ok_json(&r, 404);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("composite primary key")
    );
    assert!(
        directors(&rest)
            .await
            .contains(&(60, "Put by key".to_owned()))
    );
}

use fluxbase_auth::AuthContext;
