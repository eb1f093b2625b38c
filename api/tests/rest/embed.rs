//! Embedding through foreign keys: many-to-one, one-to-many, one-to-one, many-to-many,
//! self references; aliases, hints, `!inner`, nesting, counts, filters, order and limits
//! inside embeds, filters on embeds, related order, spreads; and the errors.

use serde_json::json;

use super::harness::*;

#[tokio::test]
async fn every_cardinality() {
    let rest = Rest::new().await;
    let r = rest
        .table("GET", "films")
        .query(
            "select=title,directors(name),reviews(stars),actors(name),posters(url)\
             &id=in.(1,5)&order=id&reviews.order=stars.desc",
        )
        .send()
        .await;
    assert_eq!(
        ok_json(&r, 200),
        json!([
            {
                "title": "Cléo from 5 to 7",
                "directors": {"name": "Agnès Varda"},
                "reviews": [{"stars": 5}, {"stars": 4}],
                "actors": [{"name": "Corinne Marchand"}],
                "posters": {"url": "https://x/cleo.jpg"}
            },
            {
                "title": "Untitled",
                "directors": null,
                "reviews": [],
                "actors": [],
                "posters": null
            }
        ])
    );
    // The other way round: a director's films (one-to-many).
    let r = rest
        .table("GET", "directors")
        .query("select=name,films(id)&id=eq.2&films.order=id")
        .send()
        .await;
    assert_eq!(
        ok_json(&r, 200),
        json!([{"name": "Chantal Akerman", "films": [{"id": 2}, {"id": 3}]}])
    );
}

#[tokio::test]
async fn nested_levels_aliases_and_star() {
    let rest = Rest::new().await;
    let r = rest
        .table("GET", "directors")
        .query(
            "select=name,work:films(title,reviews(stars,film:films(title)))&id=eq.1\
             &work.order=id&work.reviews.order=stars",
        )
        .send()
        .await;
    assert_eq!(
        ok_json(&r, 200),
        json!([{
            "name": "Agnès Varda",
            "work": [
                {"title": "Cléo from 5 to 7", "reviews": [
                    {"stars": 4, "film": {"title": "Cléo from 5 to 7"}},
                    {"stars": 5, "film": {"title": "Cléo from 5 to 7"}}
                ]},
                {"title": "Vagabond", "reviews": [
                    {"stars": 3, "film": {"title": "Vagabond"}}
                ]}
            ]
        }])
    );
    let r = rest
        .table("GET", "posters")
        .query("select=*,films(*)")
        .send()
        .await;
    let body = ok_json(&r, 200);
    assert_eq!(body[0]["url"], "https://x/cleo.jpg");
    assert_eq!(body[0]["films"]["title"], "Cléo from 5 to 7");
    assert_eq!(body[0]["films"]["meta"]["lang"], "fr");
}

#[tokio::test]
async fn inner_joins_filters_limits_and_counts_inside_embeds() {
    let rest = Rest::new().await;
    // Embed filters narrow the embed; !inner drops parents without a match.
    let r = rest
        .table("GET", "films")
        .query("select=id,reviews(stars)&reviews.stars=eq.5&order=id&id=lt.5")
        .send()
        .await;
    assert_eq!(
        ok_json(&r, 200),
        json!([
            {"id": 1, "reviews": [{"stars": 5}]},
            {"id": 2, "reviews": [{"stars": 5}]},
            {"id": 3, "reviews": []},
            {"id": 4, "reviews": []}
        ])
    );
    let r = rest
        .table("GET", "films")
        .query("select=id,reviews!inner(stars)&reviews.stars=eq.5&order=id")
        .send()
        .await;
    assert_eq!(ids(&ok_json(&r, 200)), vec![1, 2]);
    // Limit, offset and or= inside an embed.
    let r = rest
        .table("GET", "films")
        .query(
            "select=id,reviews(id)&id=eq.1&reviews.order=id.desc&reviews.limit=1&reviews.offset=1",
        )
        .send()
        .await;
    assert_eq!(ok_json(&r, 200), json!([{"id": 1, "reviews": [{"id": 1}]}]));
    let r = rest
        .table("GET", "films")
        .query("select=id,reviews(id)&id=eq.1&reviews.or=(stars.eq.4,body.is.null)")
        .send()
        .await;
    assert_eq!(ok_json(&r, 200), json!([{"id": 1, "reviews": [{"id": 2}]}]));
    // count() in an embed, and supabase-js' `reviews(count)`.
    for select in ["id,reviews(count())", "id,reviews(count)"] {
        let r = rest
            .table("GET", "films")
            .query(&format!("select={select}&order=id&limit=3"))
            .send()
            .await;
        assert_eq!(
            ok_json(&r, 200),
            json!([
                {"id": 1, "reviews": [{"count": 2}]},
                {"id": 2, "reviews": [{"count": 1}]},
                {"id": 3, "reviews": [{"count": 0}]}
            ]),
            "{select}"
        );
    }
    // Empty embeds filter without appearing.
    let r = rest
        .table("GET", "films")
        .query("select=id,actors!inner()&actors.name=like.*Seyrig")
        .send()
        .await;
    assert_eq!(ok_json(&r, 200), json!([{"id": 2}]));
}

#[tokio::test]
async fn filters_on_embeds_test_existence() {
    let rest = Rest::new().await;
    let with = |q: &'static str| {
        let rest = &rest;
        async move {
            let r = rest
                .table("GET", "films")
                .query(&format!("select=id,posters(url),reviews(id)&order=id&{q}"))
                .send()
                .await;
            ids(&ok_json(&r, 200))
        }
    };
    assert_eq!(with("posters=not.is.null").await, vec![1]);
    assert_eq!(with("posters=is.null").await, vec![2, 3, 4, 5]);
    assert_eq!(with("reviews=is.null").await, vec![3, 5]);
    assert_eq!(with("or=(posters.not.is.null,id.eq.5)").await, vec![1, 5]);
    let r = rest
        .table("GET", "films")
        .query("select=id,reviews(id)&reviews=eq.1")
        .send()
        .await;
    let body = ok_json(&r, 400);
    assert_eq!(body["code"], "PGRST120");
    assert_eq!(
        body["message"],
        "Bad operator on the 'reviews' embedded resource"
    );
}

#[tokio::test]
async fn related_order_and_spreads() {
    let rest = Rest::new().await;
    let r = rest
        .table("GET", "films")
        .query("select=id,directors(name)&order=directors(name).desc.nullslast,id")
        .send()
        .await;
    assert_eq!(ids(&ok_json(&r, 200)), vec![2, 3, 1, 4, 5]);
    let r = rest
        .table("GET", "films")
        .query("select=id,reviews(id)&order=reviews(id)")
        .send()
        .await;
    let body = ok_json(&r, 400);
    assert_eq!(body["code"], "PGRST118");

    let r = rest
        .table("GET", "films")
        .query("select=title,...directors(director:name)&id=in.(2,5)&order=id")
        .send()
        .await;
    assert_eq!(
        ok_json(&r, 200),
        json!([
            {"title": "Jeanne Dielman", "director": "Chantal Akerman"},
            {"title": "Untitled", "director": null}
        ])
    );
    let r = rest
        .table("GET", "directors")
        .query("select=name,...films(title)")
        .send()
        .await;
    assert_eq!(ok_json(&r, 400)["code"], "PGRST127");
}

#[tokio::test]
async fn self_references_and_hints() {
    let rest = Rest::new().await;
    // The foreign-key column names the parent; the table name the children.
    let r = rest
        .table("GET", "people")
        .query("select=name,mentor_id(name),people(name)&id=eq.2")
        .send()
        .await;
    assert_eq!(
        ok_json(&r, 200),
        json!([{"name": "child", "mentor_id": {"name": "root"}, "people": [{"name": "grandchild"}]}])
    );
    // Two foreign keys to the same table: ambiguous until a hint chooses.
    let r = rest
        .table("GET", "matches")
        .query("select=id,teams(name)")
        .send()
        .await;
    let body = ok_json(&r, 300);
    assert_eq!(body["code"], "PGRST201");
    assert_eq!(body["details"].as_array().unwrap().len(), 2);
    assert!(
        body["hint"]
            .as_str()
            .unwrap()
            .contains("'teams!matches_home_id_fkey'")
    );
    let r = rest
        .table("GET", "matches")
        .query("select=id,home:teams!matches_home_id_fkey(name),away:teams!away_id(name)")
        .send()
        .await;
    assert_eq!(
        ok_json(&r, 200),
        json!([{"id": 1, "home": {"name": "red"}, "away": {"name": "blue"}}])
    );
    // And from the other side, with the hint on the referenced table.
    let r = rest
        .table("GET", "teams")
        .query("select=name,home_games:matches!home_id(id)&id=eq.1")
        .send()
        .await;
    assert_eq!(
        ok_json(&r, 200),
        json!([{"name": "red", "home_games": [{"id": 1}]}])
    );
    // Many-to-many with the junction as hint.
    let r = rest
        .table("GET", "actors")
        .query("select=name,films!roles(title)&id=eq.3")
        .send()
        .await;
    assert_eq!(
        ok_json(&r, 200),
        json!([{"name": "Sandrine Bonnaire", "films": [{"title": "Vagabond"}]}])
    );
}

#[tokio::test]
async fn unknown_and_hidden_relationships_are_refused() {
    let rest = Rest::new().await;
    let r = rest
        .table("GET", "films")
        .query("select=id,teams(name)")
        .send()
        .await;
    let body = ok_json(&r, 400);
    assert_eq!(body["code"], "PGRST200");
    assert_eq!(
        body["message"],
        "Could not find a relationship between 'films' and 'teams' in the schema cache"
    );
    // profiles.id references auth.users: auth is never exposed, so no embedding.
    let r = rest
        .table("GET", "profiles")
        .query("select=id,users(email)")
        .send()
        .await;
    assert_eq!(ok_json(&r, 400)["code"], "PGRST200");
    // A filter on an embed select= does not name.
    let r = rest
        .table("GET", "films")
        .query("select=id&reviews.stars=eq.5")
        .send()
        .await;
    assert_eq!(ok_json(&r, 400)["code"], "PGRST108");
}
