//! Reads: select lists, every filter operator (with `not.`, `any`/`all`, logic trees),
//! order, ranges and `Range`, counts and `Content-Range`, media types, HEAD, profiles and
//! `rest.max_rows`.

use serde_json::{Value, json};

use super::harness::*;

/// The ids of films matching `query` (as anon), ordered by id.
async fn film_ids(rest: &Rest, query: &str) -> Vec<i64> {
    let query = format!("select=id&order=id&{query}");
    let r = rest.table("GET", "films").query(&query).send().await;
    ids(&ok_json(&r, 200))
}

#[tokio::test]
async fn select_lists_alias_cast_and_json_paths() {
    let rest = Rest::new().await;
    let r = rest
        .table("GET", "films")
        .query(
            "select=id,name:title,year::text,lang:meta->>lang,meta->tags->0,first_tag:meta->tags->>0,\
             runtime:meta->runtime::int8&id=eq.1",
        )
        .send()
        .await;
    let body = ok_json(&r, 200);
    assert_eq!(
        body,
        json!([{
            "id": 1,
            "name": "Cléo from 5 to 7",
            "year": "1962",
            "lang": "fr",
            "tags": "paris",
            "first_tag": "paris",
            "runtime": 90
        }])
    );
    // `*` is every column, in order.
    let r = rest
        .table("GET", "directors")
        .query("order=id&limit=1")
        .send()
        .await;
    assert_eq!(ok_json(&r, 200), json!([{"id": 1, "name": "Agnès Varda"}]));
    assert_eq!(
        r.header("Content-Type"),
        Some("application/json; charset=utf-8")
    );
}

#[tokio::test]
async fn every_comparison_operator() {
    let rest = Rest::new().await;
    let cases: &[(&str, &[i64])] = &[
        ("year=eq.1975", &[2]),
        ("year=neq.1975", &[1, 3, 4]),
        ("year=gt.1975", &[3, 4]),
        ("year=gte.1975", &[2, 3, 4]),
        ("year=lt.1975", &[1]),
        ("year=lte.1975", &[1, 2]),
        ("title=like.*from*", &[1, 3]),
        ("title=ilike.*FROM*", &[1, 3]),
        ("title=match.^[JV]", &[2, 4]),
        ("title=imatch.^[jv]", &[2, 4]),
        ("rating=is.null", &[3, 5]),
        ("rating=is.not_null", &[1, 2, 4]),
        ("year=isdistinct.1975", &[1, 3, 4, 5]),
        ("id=in.(1,3,5)", &[1, 3, 5]),
        ("id=in.()", &[]),
        ("title=in.(\"Cléo from 5 to 7\",Vagabond)", &[1, 4]),
        ("meta=cs.{\"lang\":\"fr\"}", &[1, 2]),
        ("meta=cd.{\"lang\":\"en\",\"x\":1}", &[3]),
        ("showing=ov.[8,12)", &[1, 2]),
        ("showing=sl.[25,26)", &[1, 2]),
        ("showing=sr.[25,26)", &[3]),
        ("showing=nxr.[1,15)", &[1]),
        ("showing=nxl.[5,100)", &[2, 3]),
        ("showing=adj.[20,30)", &[2, 3]),
        ("tsv=fts.widow", &[2]),
        ("tsv=fts(english).singer%20%26%20results", &[1]),
        ("tsv=plfts.letters%20mother", &[3]),
        ("tsv=phfts(english).found%20frozen", &[4]),
        ("tsv=wfts(english).drifter%20or%20widow", &[2, 4]),
        ("title=fts.routine", &[]),
        ("year=eq(any).{1962,1985}", &[1, 4]),
        ("title=like(all).{*a*,*e*}", &[2]),
        ("title=ilike(any).{c*,v*}", &[1, 4]),
        ("year=gt(all).{1960,1970}", &[2, 3, 4]),
    ];
    for (query, expected) in cases {
        assert_eq!(&film_ids(&rest, query).await, expected, "{query}");
    }
}

#[tokio::test]
async fn not_on_every_kind_of_filter_and_is_keywords() {
    let rest = Rest::new().await;
    let cases: &[(&str, &[i64])] = &[
        ("year=not.eq.1975", &[1, 3, 4]),
        ("id=not.in.(1,2)", &[3, 4, 5]),
        ("rating=not.is.null", &[1, 2, 4]),
        ("title=not.like.*a*", &[1, 3, 5]),
        ("tsv=not.fts.widow", &[1, 3, 4]),
        ("year=not.eq(any).{1962,1985}", &[2, 3]),
        ("meta=not.cs.{\"lang\":\"fr\"}", &[3]),
        ("year=not.isdistinct.1975", &[2]),
    ];
    for (query, expected) in cases {
        assert_eq!(&film_ids(&rest, query).await, expected, "{query}");
    }
    // IS TRUE / FALSE / UNKNOWN on a boolean.
    rest.sql(
        "CREATE TABLE public.flags (id int PRIMARY KEY, on_ boolean); \
              INSERT INTO public.flags VALUES (1, true), (2, false), (3, NULL); \
              GRANT SELECT ON public.flags TO anon;",
    )
    .await;
    rest.cache
        .wait_for(|s| s.relation("public", "flags").is_some())
        .await;
    for (query, expected) in [
        ("on_=is.true", vec![1]),
        ("on_=is.false", vec![2]),
        ("on_=is.unknown", vec![3]),
        ("on_=not.is.true", vec![2, 3]),
    ] {
        let r = rest
            .table("GET", "flags")
            .query(&format!("select=id&order=id&{query}"))
            .send()
            .await;
        assert_eq!(ids(&ok_json(&r, 200)), expected, "{query}");
    }
}

#[tokio::test]
async fn logic_trees_nest() {
    let rest = Rest::new().await;
    let cases: &[(&str, &[i64])] = &[
        ("or=(year.eq.1962,year.eq.1985)", &[1, 4]),
        ("and=(year.gte.1970,rating.not.is.null)", &[2, 4]),
        ("or=(id.eq.5,and(year.gt.1970,year.lt.1980))", &[2, 3, 5]),
        ("not.or=(year.is.null,year.lt.1980)", &[4]),
        (
            "or=(title.ilike.*news*,not.and(year.lt.1980,rating.gt.8))&id=lt.4",
            &[2, 3],
        ),
        ("or=(meta->>lang.eq.en,id.in.(4,5))", &[3, 4, 5]),
        (
            "or=(title.eq.\"Cléo from 5 to 7\",title.like.Jeanne*)",
            &[1, 2],
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(&film_ids(&rest, query).await, expected, "{query}");
    }
}

#[tokio::test]
async fn order_with_directions_nulls_and_json_paths() {
    let rest = Rest::new().await;
    let order = |q: &'static str| {
        let rest = &rest;
        async move {
            let r = rest
                .table("GET", "films")
                .query(&format!("select=id&{q}"))
                .send()
                .await;
            ids(&ok_json(&r, 200))
        }
    };
    assert_eq!(
        order("order=year.desc.nullslast").await,
        vec![4, 3, 2, 1, 5]
    );
    assert_eq!(
        order("order=year.desc.nullsfirst").await,
        vec![5, 4, 3, 2, 1]
    );
    assert_eq!(
        order("order=year.asc.nullsfirst").await,
        vec![5, 1, 2, 3, 4]
    );
    assert_eq!(
        order("order=director_id.asc.nullslast,year.desc").await,
        vec![4, 1, 3, 2, 5]
    );
    assert_eq!(
        order("order=meta->>lang.desc.nullslast,id").await,
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        order("order=meta->runtime.desc.nullslast,id&limit=2").await,
        vec![2, 1]
    );
}

#[tokio::test]
async fn limits_offsets_range_headers_and_counts() {
    let rest = Rest::new().await;
    let r = rest
        .table("GET", "films")
        .query("select=id&order=id&limit=2&offset=1")
        .send()
        .await;
    assert_eq!(ids(&ok_json(&r, 200)), vec![2, 3]);
    assert_eq!(r.header("Content-Range"), Some("1-2/*"));

    let r = rest
        .table("GET", "films")
        .query("select=id&order=id")
        .header("Range", "1-3")
        .header("Range-Unit", "items")
        .prefer("count=exact")
        .send()
        .await;
    assert_eq!(ids(&ok_json(&r, 206)), vec![2, 3, 4]);
    assert_eq!(r.header("Content-Range"), Some("1-3/5"));
    assert_eq!(r.header("Preference-Applied"), Some("count=exact"));

    // Without a range, the exact count is the page's own.
    let r = rest
        .table("GET", "films")
        .query("select=id&year=gt.1970")
        .prefer("count=exact")
        .send()
        .await;
    expect_status(&r, 200);
    assert_eq!(r.header("Content-Range"), Some("0-2/3"));

    // Filters and !inner joins count; an empty page says `*`.
    let r = rest
        .table("GET", "films")
        .query("select=id,reviews!inner(id)&reviews.stars=eq.5&limit=1")
        .prefer("count=exact")
        .send()
        .await;
    expect_status(&r, 206);
    assert_eq!(r.header("Content-Range"), Some("0-0/2"));
    let r = rest
        .table("GET", "films")
        .query("select=id&id=gt.100")
        .prefer("count=exact")
        .send()
        .await;
    assert_eq!(ok_json(&r, 200), json!([]));
    assert_eq!(r.header("Content-Range"), Some("*/0"));

    // Past the end with a count: 416 naming the offset.
    let r = rest
        .table("GET", "films")
        .query("offset=10")
        .prefer("count=exact")
        .send()
        .await;
    let body = ok_json(&r, 416);
    assert_eq!(body["code"], "PGRST103");
    assert!(body["details"].as_str().unwrap().contains("only 5 rows"));

    // Planned: the planner's estimate, from EXPLAIN in the same round trip.
    rest.sql("ANALYZE public.films").await;
    let r = rest
        .table("GET", "films")
        .query("select=id&limit=1")
        .prefer("count=planned")
        .send()
        .await;
    expect_status(&r, 206);
    let total: u64 = r
        .header("Content-Range")
        .unwrap()
        .split('/')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&total), "planned total {total}");
}

#[tokio::test]
async fn estimated_counts_are_exact_under_max_rows_and_planned_above() {
    let rest = Rest::with(FIXTURE, |s| s.max_rows = Some(2)).await;
    rest.sql("ANALYZE public.films").await;
    let r = rest
        .table("GET", "films")
        .query("select=id&year=eq.1975")
        .prefer("count=estimated")
        .send()
        .await;
    assert_eq!(r.header("Content-Range"), Some("0-0/1"));
    let r = rest
        .table("GET", "films")
        .query("select=id&order=id")
        .prefer("count=estimated")
        .send()
        .await;
    // rest.max_rows caps the page at 2; the total (5 > 2) comes from the planner.
    assert_eq!(ids(&ok_json(&r, 206)), vec![1, 2]);
    let range = r.header("Content-Range").unwrap();
    assert!(range.starts_with("0-1/"), "{range}");
    let total: u64 = range.split('/').nth(1).unwrap().parse().unwrap();
    assert!(total >= 3, "{range}");
}

#[tokio::test]
async fn max_rows_caps_every_level() {
    let rest = Rest::with(FIXTURE, |s| s.max_rows = Some(2)).await;
    let r = rest
        .table("GET", "films")
        .query("select=id,reviews(id)&order=id&limit=10&reviews.order=id")
        .send()
        .await;
    let body = ok_json(&r, 200);
    assert_eq!(ids(&body), vec![1, 2]);
    assert_eq!(body[0]["reviews"], json!([{"id": 1}, {"id": 2}]));
    let r = rest
        .table("GET", "films")
        .query("select=id&limit=1")
        .send()
        .await;
    assert_eq!(ids(&ok_json(&r, 200)).len(), 1);
}

#[tokio::test]
async fn single_object_csv_stripped_nulls_and_head() {
    let rest = Rest::new().await;
    let object = "application/vnd.pgrst.object+json";
    let r = rest
        .table("GET", "films")
        .query("select=id,title&id=eq.4")
        .header("Accept", object)
        .send()
        .await;
    assert_eq!(ok_json(&r, 200), json!({"id": 4, "title": "Vagabond"}));
    assert_eq!(
        r.header("Content-Type"),
        Some("application/vnd.pgrst.object+json; charset=utf-8")
    );
    for query in ["select=id", "select=id&id=eq.99"] {
        let r = rest
            .table("GET", "films")
            .query(query)
            .header("Accept", object)
            .send()
            .await;
        let body = ok_json(&r, 406);
        assert_eq!(body["code"], "PGRST116", "{query}");
    }

    let r = rest
        .table("GET", "films")
        .query("select=id,title,year,meta->>lang&id=in.(1,3,5)&order=id")
        .header("Accept", "text/csv")
        .send()
        .await;
    expect_status(&r, 200);
    assert_eq!(r.header("Content-Type"), Some("text/csv; charset=utf-8"));
    assert_eq!(
        String::from_utf8(r.body.to_vec()).unwrap(),
        "id,title,year,lang\n1,Cléo from 5 to 7,1962,fr\n3,News from Home,1976,en\n5,Untitled,,"
    );
    let r = rest
        .table("GET", "reviews")
        .query("select=body&id=eq.1")
        .header("Accept", "text/csv")
        .send()
        .await;
    assert_eq!(&r.body[..], b"body\ntimeless");

    let r = rest
        .table("GET", "films")
        .query("select=id,year,rating&id=in.(3,5)&order=id")
        .header("Accept", "application/vnd.pgrst.array+json;nulls=stripped")
        .send()
        .await;
    assert_eq!(
        ok_json(&r, 200),
        json!([{"id": 3, "year": 1976}, {"id": 5}])
    );

    let r = rest
        .table("HEAD", "films")
        .query("year=gt.1970")
        .prefer("count=exact")
        .send()
        .await;
    expect_status(&r, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("Content-Range"), Some("0-2/3"));
}

#[tokio::test]
async fn profiles_choose_among_exposed_schemas() {
    let rest = Rest::with(FIXTURE, |s| {
        s.schemas = vec!["public".into(), "api".into(), "auth".into()]
    })
    .await;
    let r = rest
        .table("GET", "notes")
        .header("Accept-Profile", "api")
        .send()
        .await;
    assert_eq!(ok_json(&r, 200), json!([{"id": 1, "body": "in api"}]));
    assert_eq!(r.header("Content-Profile"), Some("api"));
    // `auth` is never exposed, whatever rest.schemas says.
    let r = rest
        .table("GET", "users")
        .header("Accept-Profile", "auth")
        .send()
        .await;
    let body = ok_json(&r, 406);
    assert_eq!(body["code"], "PGRST106");
    assert_eq!(
        body["hint"],
        "Only the following schemas are exposed: public, api"
    );
    // A table of another schema is not found in the default one.
    let r = rest.table("GET", "notes").send().await;
    assert_eq!(ok_json(&r, 404)["code"], "PGRST205");
}

#[tokio::test]
async fn aggregates_group_by_the_other_columns() {
    let rest = Rest::new().await;
    let r = rest
        .table("GET", "reviews")
        .query("select=film_id,count(),stars.avg()::int,best:stars.max()&order=film_id")
        .send()
        .await;
    let body: Value = ok_json(&r, 200);
    assert_eq!(
        body,
        json!([
            {"film_id": 1, "count": 2, "avg": 5, "best": 5},
            {"film_id": 2, "count": 1, "avg": 5, "best": 5},
            {"film_id": 4, "count": 1, "avg": 3, "best": 3}
        ])
    );
    let r = rest
        .table("GET", "films")
        .query("select=lang:meta->>lang,count()&order=meta->>lang")
        .send()
        .await;
    assert_eq!(
        ok_json(&r, 200),
        json!([
            {"lang": "en", "count": 1},
            {"lang": "fr", "count": 2},
            {"lang": null, "count": 2}
        ])
    );
}

#[tokio::test]
async fn objects_of_more_than_fifty_keys_keep_their_order() {
    let rest = Rest::new().await;
    let columns: Vec<String> = (1..=120).map(|i| format!("c{i:03}")).collect();
    let ddl = format!(
        "CREATE TABLE public.wide (id int PRIMARY KEY, {});
         INSERT INTO public.wide (id, {}) VALUES (1, {});
         GRANT SELECT ON public.wide TO anon;",
        columns
            .iter()
            .map(|c| format!("{c} int"))
            .collect::<Vec<_>>()
            .join(", "),
        columns.join(", "),
        (1..=120)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    );
    rest.sql(&ddl).await;
    rest.cache
        .wait_for(|s| s.relation("public", "wide").is_some())
        .await;
    let select: Vec<String> = columns.iter().rev().cloned().collect();
    let r = rest
        .table("GET", "wide")
        .query(&format!("select={}", select.join(",")))
        .send()
        .await;
    expect_status(&r, 200);
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    let object = body[0].as_object().unwrap();
    assert_eq!(object.len(), 120);
    assert_eq!(object["c001"], 1);
    assert_eq!(object["c120"], 120);
    // Keys come in select order, across the spliced objects.
    let positions: Vec<usize> = select
        .iter()
        .map(|k| text.find(&format!("\"{k}\"")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
}
