//! Rate limits, security headers, CORS and CSRF, in-process over a real database.

use actix_web::test::TestRequest;
use fluxbase_api::config::Config;

use crate::support::{TestApp, token};

/// The app with the rate limits on (as in production), then `tweak`.
async fn app(tweak: impl FnOnce(&mut Config)) -> TestApp {
    TestApp::with(|c| {
        c.security.rate_limit.enabled = true;
        tweak(c);
    })
    .await
}

fn peer(ip: &str) -> std::net::SocketAddr {
    format!("{ip}:40000").parse().unwrap()
}

#[actix_web::test]
async fn security_headers_on_every_response() {
    let app = app(|_| {}).await;
    for uri in ["/health", "/nope"] {
        let res = app.call(TestRequest::get().uri(uri)).await;
        let h = res.headers;
        assert_eq!(h.get("x-frame-options").unwrap(), "DENY", "{uri}");
        assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
        assert!(
            h.get("content-security-policy")
                .unwrap()
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        assert!(h.contains_key("referrer-policy"));
        assert!(
            !h.contains_key("strict-transport-security"),
            "HSTS over plain HTTP"
        );
    }
}

#[actix_web::test]
async fn refusals_on_supabase_paths_take_the_surface_shape() {
    let app = app(|c| c.security.rate_limit.requests_per_minute = 2).await;
    let get = |uri: &str, ip: &str| TestRequest::get().uri(uri).peer_addr(peer(ip));
    for (uri, ip) in [
        ("/rest/v1/todos", "10.2.1.1"),
        ("/storage/v1/bucket", "10.2.1.2"),
        ("/api/v1/tables/todos", "10.2.1.3"),
    ] {
        // Spend the budget (whatever the answer: no schema cache or storage in this app).
        for _ in 0..2 {
            let res = app.call(get(uri, ip)).await;
            assert_ne!(res.status, 429, "{uri}");
        }
        let res = app.call(get(uri, ip)).await;
        assert_eq!(res.status, 429, "{uri}");
        assert!(res.headers.contains_key("retry-after"), "{uri}");
        match uri {
            // postgrest-js reads `code` and `message` at the top level.
            "/rest/v1/todos" => {
                assert_eq!(res.body["code"], "rate_limited", "{}", res.body);
                assert_eq!(res.body["details"], "rate_limited");
                assert!(res.body["message"].as_str().unwrap().contains("too many"));
                assert!(res.body.get("error").is_none());
            }
            // storage-js reads `statusCode`, `error` and `message`.
            "/storage/v1/bucket" => {
                assert_eq!(res.body["statusCode"], "429", "{}", res.body);
                assert_eq!(res.body["error"], "SlowDown");
                assert!(res.body["message"].as_str().unwrap().contains("too many"));
            }
            // Fluxbase's own paths keep Fluxbase's shape.
            _ => assert_eq!(res.body["error"]["code"], "rate_limited", "{}", res.body),
        }
    }
    // An unknown method on a PostgREST path is PostgREST-shaped too.
    let res = app
        .call(
            TestRequest::with_uri("/rest/v1/")
                .method(actix_web::http::Method::PUT)
                .peer_addr(peer("10.2.1.4")),
        )
        .await;
    assert!(res.status >= 400, "{}", res.status);
    assert!(res.body["message"].is_string(), "{}", res.body);
    assert!(res.body.get("error").is_none(), "{}", res.body);
}

#[actix_web::test]
async fn per_ip_limit_answers_429_with_retry_after_and_exempts_probes() {
    let app = app(|c| c.security.rate_limit.requests_per_minute = 3).await;
    let get = |uri: &str, ip: &str| TestRequest::get().uri(uri).peer_addr(peer(ip));
    for _ in 0..3 {
        let res = app
            .call(get("/api/v1/monitoring/metrics", "10.1.1.1"))
            .await;
        assert_eq!(res.status, 200);
    }
    let res = app
        .call(get("/api/v1/monitoring/metrics", "10.1.1.1"))
        .await;
    assert_eq!(res.status, 429);
    let retry: u64 = res
        .headers
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_eq!(res.body["error"]["code"], "rate_limited");
    // Another address has its own budget; probes are never limited.
    let res = app
        .call(get("/api/v1/monitoring/metrics", "10.1.1.2"))
        .await;
    assert_eq!(res.status, 200);
    for _ in 0..5 {
        let res = app.call(get("/health", "10.1.1.1")).await;
        assert_eq!(res.status, 200);
    }
    let res = app.call(get("/metrics", "10.1.1.1")).await;
    let text = res.body.as_str().unwrap();
    assert!(
        text.contains(r#"fluxbase_rate_limit_hits_total{scope="ip"}"#),
        "{text}"
    );
}

#[actix_web::test]
async fn per_user_limit_follows_the_verified_token_and_proxies_are_trusted_only_when_listed() {
    let app = app(|c| {
        c.security.rate_limit.per_user_per_minute = 2;
        c.security.rate_limit.requests_per_minute = 1000;
        c.server.trusted_proxies = vec!["10.0.0.1".into()];
    })
    .await;
    let t = token(
        serde_json::json!({"sub": "6f1c2a3e-1111-4222-8333-944455556666", "role": "authenticated"}),
    );
    let mut statuses = Vec::new();
    for i in 0..3 {
        // Different client addresses through the trusted proxy: the user budget still binds.
        let res = app
            .call(
                TestRequest::get()
                    .uri("/api/v1/monitoring/metrics")
                    .peer_addr(peer("10.0.0.1"))
                    .insert_header(("X-Forwarded-For", format!("203.0.113.{i}")))
                    .insert_header(("Authorization", format!("Bearer {t}"))),
            )
            .await;
        statuses.push(res.status);
    }
    assert_eq!(statuses, [200, 200, 429]);

    // HSTS when the trusted proxy says the client used HTTPS.
    let res = app
        .call(
            TestRequest::get()
                .uri("/health")
                .peer_addr(peer("10.0.0.1"))
                .insert_header(("X-Forwarded-Proto", "https")),
        )
        .await;
    assert!(res.headers.contains_key("strict-transport-security"));
    // An untrusted peer cannot claim HTTPS.
    let res = app
        .call(
            TestRequest::get()
                .uri("/health")
                .peer_addr(peer("10.9.9.9"))
                .insert_header(("X-Forwarded-Proto", "https")),
        )
        .await;
    assert!(!res.headers.contains_key("strict-transport-security"));
}

#[actix_web::test]
async fn login_limiter_allows_five_per_account_and_address() {
    let limiters = app(|_| {}).await.state.limiters.clone();
    let ip: std::net::IpAddr = "10.2.2.2".parse().unwrap();
    for _ in 0..5 {
        limiters.check_login(ip, "Ada@example.com").unwrap();
    }
    let err = limiters.check_login(ip, "ada@example.com").unwrap_err();
    assert_eq!(err.code.as_str(), "rate_limited");
    assert!(err.retry_after.unwrap() > 60, "15 minutes for 5 attempts");
    // Another account from the same address is not affected.
    limiters.check_login(ip, "grace@example.com").unwrap();
}

#[actix_web::test]
async fn cors_preflight_and_simple_requests() {
    let app = app(|c| {
        c.security.cors.allowed_origins = vec!["https://app.example.com".into()];
    })
    .await;
    let preflight = |origin: &str| {
        TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/api/v1/realtime/broadcast")
            .insert_header(("Origin", origin))
            .insert_header(("Access-Control-Request-Method", "POST"))
    };
    let res = app.call(preflight("https://app.example.com")).await;
    assert_eq!(res.status, 204);
    assert_eq!(
        res.headers.get("access-control-allow-origin").unwrap(),
        "https://app.example.com"
    );
    assert!(
        res.headers
            .get("access-control-allow-methods")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let res = app.call(preflight("https://evil.example.net")).await;
    assert_eq!(res.status, 403);
    assert!(!res.headers.contains_key("access-control-allow-origin"));

    let res = app
        .call(
            TestRequest::get()
                .uri("/health")
                .insert_header(("Origin", "https://app.example.com")),
        )
        .await;
    assert_eq!(
        res.headers.get("access-control-allow-origin").unwrap(),
        "https://app.example.com"
    );
}

#[actix_web::test]
async fn csrf_double_submit_for_cookie_sessions() {
    let app = app(|c| c.security.csrf.enabled = true).await;
    // A GET hands out the cookie.
    let res = app.call(TestRequest::get().uri("/health")).await;
    let cookie = res
        .headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.starts_with("fluxbase_csrf=")
            && cookie.contains("Secure")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let value = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("fluxbase_csrf=")
        .to_string();

    let post = |csrf: Option<&str>| {
        let mut r = TestRequest::post()
            .uri("/api/v1/admin/realtime/restart")
            .insert_header(("Cookie", format!("fluxbase_csrf={value}; session=abc")));
        if let Some(h) = csrf {
            r = r.insert_header(("X-CSRF-Token", h.to_string()));
        }
        r
    };
    let res = app.call(post(None)).await;
    assert_eq!(res.status, 403);
    assert!(
        res.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("CSRF")
    );
    let res = app.call(post(Some("wrong"))).await;
    assert_eq!(res.status, 403);
    // The right token passes CSRF (and then meets the admin check: 401, not the CSRF 403).
    let res = app.call(post(Some(&value))).await;
    assert_eq!(res.status, 401);
    // Bearer-token requests are not cookie sessions: no CSRF token needed.
    let res = app
        .call(
            TestRequest::post()
                .uri("/api/v1/admin/realtime/restart")
                .insert_header((
                    "Authorization",
                    format!(
                        "Bearer {}",
                        token(serde_json::json!({"role": "service_role"}))
                    ),
                )),
        )
        .await;
    assert_ne!(res.status, 403);
}
