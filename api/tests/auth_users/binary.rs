//! The binary: `fluxbase keys`, audit log lines, the login rate limit.

use super::*;

/// `fluxbase keys` with a configured secret, and in embedded mode with the secret `serve`
/// would generate and use.
#[tokio::test]
async fn keys_command_prints_anon_and_service_role_jwts() {
    let dir = TempDir::new();
    let out = fluxbase(&dir.0)
        .arg("keys")
        .env("FLUXBASE_JWT_SECRET", TEST_SECRET)
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let now = fluxbase_auth::tokens::now_secs();
    for (line, role) in lines.iter().zip(["anon", "service_role"]) {
        let token = line
            .strip_prefix(&format!("{role} key: "))
            .unwrap_or_else(|| panic!("{line}"));
        let claims = keys().verify(token).unwrap();
        assert_eq!(claims["role"], role);
        assert_eq!(claims["iss"], "fluxbase");
        assert!(claims["exp"].as_u64().unwrap() > now + 9 * 365 * 24 * 3600);
    }

    // Embedded mode: the development secret of .fluxbase/jwt-secret (created here).
    let out = fluxbase(&dir.0).arg("keys").output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = std::fs::read_to_string(dir.0.join(".fluxbase/jwt-secret")).unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let anon = stdout
        .lines()
        .next()
        .unwrap()
        .strip_prefix("anon key: ")
        .unwrap();
    let claims = JwtKeys::hs256(secret.trim().as_bytes())
        .verify(anon)
        .unwrap();
    assert_eq!(claims["role"], "anon");
    assert!(String::from_utf8_lossy(&out.stderr).contains("development secret"));
    // The same secret again on the next run.
    let out = fluxbase(&dir.0).arg("keys").output().await.unwrap();
    let anon = String::from_utf8(out.stdout).unwrap();
    let anon = anon
        .lines()
        .next()
        .unwrap()
        .strip_prefix("anon key: ")
        .unwrap()
        .to_string();
    assert!(
        JwtKeys::hs256(secret.trim().as_bytes())
            .verify(&anon)
            .is_ok()
    );

    // A real database without a strong secret: refused, as serve refuses.
    let out = fluxbase(&dir.0)
        .arg("keys")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FLUXBASE_JWT_SECRET"));
}

/// One HTTP/1.1 POST with a JSON body over a fresh connection.
async fn post_over_tcp(addr: &str, path: &str, body: &Value) -> crate::support::Response {
    let headers = [("Content-Type", "application/json")];
    crate::support::http::request(addr, "POST", path, &headers, &body.to_string()).await
}

/// The binary as deployed: audit log lines (`log_type=audit`, `success`, the reason, never
/// the password) and the login limiter in front of the password check.
#[tokio::test]
async fn audit_log_lines_and_login_limit_in_the_binary() {
    let db = fluxbase_migrations::test_utils::TestDb::new().await;
    let dir = TempDir::new();
    let mut cmd = fluxbase(&dir.0);
    cmd.env("DATABASE_URL", db.url())
        .env("FLUXBASE_JWT_SECRET", TEST_SECRET)
        .env("FLUXBASE_REALTIME_ENABLED", "false")
        .env("FLUXBASE_SECURITY_RATE_LIMIT_LOGIN_ATTEMPTS", "3");
    let server = crate::support::Server::start(cmd).await;

    let res = post_over_tcp(
        &server.addr,
        "/api/v1/auth/signup",
        &creds("logged@example.com", "s3cret-passw0rd"),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    for _ in 0..3 {
        let res = post_over_tcp(
            &server.addr,
            "/api/v1/auth/signin",
            &creds("logged@example.com", "guess-passw0rd"),
        )
        .await;
        assert_eq!(res.status, 401, "{}", res.body);
    }
    // The fourth attempt within the window is refused before the password is checked.
    let res = post_over_tcp(
        &server.addr,
        "/api/v1/auth/signin",
        &creds("logged@example.com", "s3cret-passw0rd"),
    )
    .await;
    assert_eq!(res.status, 429, "{}", res.body);
    assert!(
        res.headers.to_ascii_lowercase().contains("retry-after:"),
        "{}",
        res.headers
    );
    assert_eq!(res.json()["error"]["code"], "rate_limited");
    // Another account from the same address is not affected.
    let res = post_over_tcp(
        &server.addr,
        "/api/v1/auth/signin",
        &creds("other@example.com", "whatever-passw0rd"),
    )
    .await;
    assert_eq!(res.status, 401, "{}", res.body);

    let (_, lines) = server.stop(libc::SIGTERM).await;
    let audit: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["log_type"] == "audit")
        .collect();
    let signup = audit
        .iter()
        .find(|v| v["action"] == "user_signedup")
        .expect("signup audit line");
    assert_eq!(signup["success"], true);
    let failures: Vec<&Value> = audit
        .iter()
        .filter(|v| v["action"] == "login_failed")
        .collect();
    assert_eq!(failures.len(), 4, "{audit:?}");
    for f in &failures {
        assert_eq!(f["success"], false);
        assert!(f["ip"].as_str().is_some_and(|ip| ip == "127.0.0.1"), "{f}");
    }
    assert!(failures.iter().any(|f| f["reason"] == "wrong_password"));
    assert!(failures.iter().any(|f| f["reason"] == "unknown_email"));
    for line in &lines {
        assert!(
            !line.contains("s3cret-passw0rd") && !line.contains("guess-passw0rd"),
            "password in log: {line}"
        );
    }
}
