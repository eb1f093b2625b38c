//! Both error shapes over HTTP: PostgREST's `{code, details, hint, message}` with its
//! statuses on `/rest/v1`, `{"error":{"code","message"}}` on `/api/v1` with the PostgREST
//! code or the SQLSTATE in the message — for request errors, database errors and refused
//! credentials.

use serde_json::json;

use super::*;
use crate::support::now;

/// One failing request, sent to both mounts.
struct Case {
    /// Its `/rest/v1` path.
    rest: &'static str,
    /// Its `/api/v1` path.
    api: &'static str,
    method: &'static str,
    body: &'static str,
    /// The status on both.
    status: u16,
    /// PostgREST's code (or the SQLSTATE).
    pgrst: &'static str,
    /// Fluxbase's code.
    code: &'static str,
    /// Part of the message on both.
    needle: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_database_errors_in_both_shapes() {
    let api = Api::start(&[]).await;
    let service = format!("Bearer {}", service_token());
    let case = |rest, api, method, body, status, pgrst, code, needle| Case {
        rest,
        api,
        method,
        body,
        status,
        pgrst,
        code,
        needle,
    };
    let dup = r#"{"id": 1, "name": "again"}"#;
    let bad_fk = r#"{"id": 50, "title": "x", "director_id": 99}"#;
    let cases = [
        case(
            "/rest/v1/nope",
            "/api/v1/tables/nope",
            "GET",
            "",
            404,
            "PGRST205",
            "not_found",
            "nope",
        ),
        case(
            "/rest/v1/films?select=nope",
            "/api/v1/tables/films?select=nope",
            "GET",
            "",
            400,
            "42703",
            "bad_request",
            "nope",
        ),
        case(
            "/rest/v1/films?id=eq.abc",
            "/api/v1/tables/films?id=eq.abc",
            "GET",
            "",
            400,
            "22P02",
            "bad_request",
            "abc",
        ),
        case(
            "/rest/v1/films?id=zz.1",
            "/api/v1/tables/films?id=zz.1",
            "GET",
            "",
            400,
            "PGRST100",
            "bad_request",
            "zz",
        ),
        case(
            "/rest/v1/films?or=(id.eq.1",
            "/api/v1/tables/films?or=(id.eq.1",
            "GET",
            "",
            400,
            "PGRST100",
            "bad_request",
            "",
        ),
        case(
            "/rest/v1/rpc/nope",
            "/api/v1/rpc/nope",
            "POST",
            "{}",
            404,
            "PGRST202",
            "not_found",
            "nope",
        ),
        case(
            "/rest/v1/directors",
            "/api/v1/tables/directors",
            "POST",
            dup,
            409,
            "23505",
            "conflict",
            "directors_pkey",
        ),
        case(
            "/rest/v1/films",
            "/api/v1/tables/films",
            "POST",
            bad_fk,
            409,
            "23503",
            "conflict",
            "films_director_id_fkey",
        ),
        case(
            "/rest/v1/directors",
            "/api/v1/tables/directors",
            "POST",
            r#"{"id": 60}"#,
            400,
            "23502",
            "bad_request",
            "name",
        ),
        case(
            "/rest/v1/directors",
            "/api/v1/tables/directors",
            "POST",
            r#"{"id": 61, "#,
            400,
            "PGRST102",
            "bad_request",
            "",
        ),
        case(
            "/rest/v1/rpc/fail",
            "/api/v1/rpc/fail",
            "POST",
            r#"{"msg": "it broke"}"#,
            400,
            "P0001",
            "bad_request",
            "it broke",
        ),
    ];
    for Case {
        rest,
        api: flux,
        method,
        body,
        status,
        pgrst,
        code,
        needle,
    } in cases
    {
        let headers = [
            ("Content-Type", "application/json"),
            ("Authorization", service.as_str()),
        ];
        let got = api.req(method, rest, &headers, body).await;
        assert_postgrest_error(&got, status, pgrst, needle);
        let got = api.req(method, flux, &headers, body).await;
        assert_fluxbase_error(&got, status, code, needle);
        let message = got.json()["error"]["message"].as_str().unwrap().to_owned();
        let suffix = if pgrst.starts_with("PGRST") {
            format!("({pgrst})")
        } else {
            format!("(SQLSTATE {pgrst})")
        };
        assert!(message.ends_with(&suffix), "{flux}: {message}");
    }
    // The RAISE's hint reaches PostgREST's `hint`.
    let got = api
        .json("POST", "/rest/v1/rpc/fail", &[], json!({"msg": "m"}))
        .await;
    assert_eq!(got.json()["hint"], "a hint", "{}", got.body);
    // Nothing was written by the refused inserts.
    assert_eq!(api.count("SELECT count(*) FROM public.directors").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_in_both_shapes() {
    let api = Api::start(&[]).await;
    let expired = token(json!({"role": "authenticated", "sub": "x", "exp": now() - 10}));
    let wrong_secret =
        fluxbase_auth::JwtKeys::hs256(b"another-secret-that-is-long-enough-for-hs256!!").sign(
            json!({"role": "service_role", "exp": now() + 60})
                .as_object()
                .unwrap(),
        );
    // (credential header, value, PostgREST code, Fluxbase code)
    let cases = [
        (
            "Authorization",
            format!("Bearer {expired}"),
            "PGRST303",
            "token_expired",
        ),
        ("apikey", expired.clone(), "PGRST303", "token_expired"),
        (
            "Authorization",
            format!("Bearer {wrong_secret}"),
            "PGRST301",
            "invalid_token",
        ),
        (
            "Authorization",
            "Bearer not.a.jwt".to_owned(),
            "PGRST301",
            "invalid_token",
        ),
        (
            "X-Service-Key",
            "sk_unknown".to_owned(),
            "PGRST301",
            "unauthorized",
        ),
    ];
    for (header, value, pgrst, code) in &cases {
        let credential = [(*header, value.as_str())];
        let got = api.get("/rest/v1/films", &credential).await;
        assert_postgrest_error(&got, 401, pgrst, "");
        assert_eq!(got.json()["details"], *code, "{}", got.body);
        assert_eq!(got.header("www-authenticate"), Some("Bearer"));
        let got = api.get("/api/v1/tables/films", &credential).await;
        assert_fluxbase_error(&got, 401, code, "");
        let got = api.get("/rest/v1/", &credential).await;
        assert_postgrest_error(&got, 401, pgrst, "");
    }
    // Grants and RLS: 401 for anon, 403 for a signed-in user.
    let got = api.get("/rest/v1/todos", &[]).await;
    assert_postgrest_error(&got, 401, "42501", "permission denied");
    let user = api.sign_up("refused@example.com").await;
    let got = api
        .get(
            "/rest/v1/actors?select=id",
            &[("Authorization", &user.bearer())],
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let got = api
        .json(
            "POST",
            "/rest/v1/actors",
            &[("Authorization", &user.bearer())],
            json!({"id": 9, "name": "x"}),
        )
        .await;
    assert_postgrest_error(&got, 403, "42501", "permission denied");
    let got = api
        .json(
            "POST",
            "/api/v1/tables/actors",
            &[("Authorization", &user.bearer())],
            json!({"id": 9, "name": "x"}),
        )
        .await;
    assert_fluxbase_error(&got, 403, "forbidden", "SQLSTATE 42501");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_a_clear_4xx_never_a_5xx() {
    // A thousand requests from one address: the rate limits are another test's subject.
    let api = Api::start(&[("FLUXBASE_SECURITY_RATE_LIMIT_ENABLED", "false")]).await;
    let user = api.sign_up("hostile@example.com").await;
    let auth = user.bearer();
    let bodies = [
        "",
        "null",
        "[]",
        "[[]]",
        "{}",
        "\"text\"",
        "123456789012345678901234567890",
        "1e999",
        r#"{"title": "\u0000"}"#,
        r#"{"title": "\ud800"}"#,
        r#"{"title": 1e999}"#,
        r#"{"id": "abc", "title": "x"}"#,
        r#"{"title": "x", "nope": 1}"#,
        r#"[{"title": "a"}, {"done": true}]"#,
        r#"{"title": "'; DROP TABLE public.todos; --"}"#,
        &format!("{}1{}", "[".repeat(200), "]".repeat(200)),
        "\u{feff}{}",
        "{\"title\": \"x\"",
        "\x00\x01\x02",
    ];
    let queries = [
        "",
        "select=*,(",
        // (Raw spaces and quotes make no HTTP request line at all: refused before routing.)
        "select=id;DROP%20TABLE%20x",
        "id=eq.1&id=in.(",
        "or=(((((((((((id.eq.1)))))))))))",
        "order=id.sideways",
        "limit=-1",
        "limit=99999999999999999999",
        "title=like.%00",
        "columns=title,%22",
        "on_conflict=nope",
        "select=auth.users(*)",
        "select=id::pg_catalog.text",
    ];
    for (path, method) in [
        ("/rest/v1/todos", "POST"),
        ("/rest/v1/todos", "PATCH"),
        ("/api/v1/tables/todos", "POST"),
        ("/rest/v1/rpc/echo", "POST"),
        ("/api/v1/rpc/shout", "POST"),
    ] {
        for body in &bodies {
            for query in &queries {
                let uri = if query.is_empty() {
                    path.to_owned()
                } else {
                    format!("{path}?{query}")
                };
                let headers = [
                    ("Authorization", auth.as_str()),
                    ("Content-Type", "application/json"),
                    ("Prefer", "return=representation"),
                ];
                let got = api.req(method, &uri, &headers, body).await;
                assert!(
                    got.status < 500 && got.status >= 200,
                    "{method} {uri} {body:?}: {} {}",
                    got.status,
                    got.body
                );
                if got.status >= 400 {
                    let err = got.json();
                    let message = if path.starts_with("/rest/v1") {
                        &err["message"]
                    } else {
                        &err["error"]["message"]
                    };
                    assert!(
                        message.as_str().is_some_and(|m| !m.is_empty()),
                        "{method} {uri} {body:?}: {err}"
                    );
                }
            }
        }
    }
    // Nothing but well-formed rows got in, each the user's own.
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM public.todos WHERE user_id <> '{}'",
            user.id
        ))
        .await,
        0
    );
}
