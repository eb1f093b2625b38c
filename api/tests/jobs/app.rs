//! [`JobsApp`]: the application in-process over a fresh database, as [`TestApp`] builds it,
//! plus the job system the server builds (`fluxbase_api::jobs`), started when a test needs
//! workers; and waiting for a condition with a deadline.
//!
//! [`TestApp`]: crate::support::TestApp

use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_http::Request;
use actix_web::body::BoxBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::Method;
use actix_web::test::{TestRequest, init_service, read_body};
use fluxbase_api::config::{ByteSize, Config, Dur};
use fluxbase_api::http::{AppState, build_app};
use fluxbase_engine::jobs::Jobs;
use fluxbase_migrations::Db;
use fluxbase_migrations::test_utils::TestDb;
use futures_util::future::LocalBoxFuture;
use serde_json::{Value, json};

use crate::support::{EVENT_TIMEOUT, Reply, TEST_SECRET, bearer, token};

type Call = Rc<dyn Fn(Request) -> LocalBoxFuture<'static, ServiceResponse<BoxBody>>>;

/// The signing secret of the tests' job systems.
pub const SIGNING_SECRET: &str = "jobs-http-test-signing-secret-0123";

/// The test configuration of `jobs.*`: local receivers allowed, short leases and backoff,
/// and a safety-net poll longer than any test waits (a job picked up in time was woken by
/// NOTIFY).
pub fn tune(config: &mut Config) {
    let j = &mut config.jobs;
    j.allow_private_urls = true;
    j.lease = Dur::secs(2);
    j.heartbeat_interval = Dur(Duration::from_millis(250));
    j.poll_interval = Dur::secs(120);
    j.backoff_base = Dur(Duration::from_millis(100));
    j.backoff_max = Dur::secs(1);
    j.http_timeout = Dur::secs(5);
    j.shutdown_timeout = Dur::secs(5);
    j.max_payload_size = ByteSize(16 * 1024);
    j.signing_secret = Some(SIGNING_SECRET.into());
}

/// The app and its job system over a test database.
pub struct JobsApp {
    pub db: TestDb,
    pub jobs: Jobs,
    pub config: Config,
    call: Call,
}

impl JobsApp {
    /// The app over a fresh database; its job system built but not started (jobs stay
    /// pending: for the shapes of the routes).
    pub async fn new() -> JobsApp {
        let db = TestDb::new().await;
        let mut config = Config::default();
        config.database.url = Some(db.url());
        config.auth.jwt_secret = Some(TEST_SECRET.into());
        config.security.rate_limit.enabled = false;
        tune(&mut config);
        let pool = Db::new(db.config(), config.database.pool_settings());
        let jobs =
            fluxbase_api::jobs::build(&config, db.config(), pool.clone(), SIGNING_SECRET.into())
                .expect("valid jobs settings");
        let state = AppState::new(config.clone(), pool).with_jobs(jobs.clone());
        let service = Rc::new(init_service(build_app(state)).await);
        let call: Call = Rc::new(move |req| {
            let service = service.clone();
            Box::pin(async move {
                match service.call(req).await {
                    Ok(res) => res.map_into_boxed_body(),
                    Err(err) => panic!("the app returned an error instead of a response: {err}"),
                }
            })
        });
        JobsApp {
            db,
            jobs,
            config,
            call,
        }
    }

    /// The same, with the job system started as the server starts it (workers, heartbeat,
    /// scheduler, housekeeping schedules). Needs an actix system (`#[actix_web::test]`).
    pub async fn started() -> JobsApp {
        let app = JobsApp::new().await;
        fluxbase_api::jobs::start(&app.jobs, &app.config)
            .await
            .expect("the job system starts");
        app
    }

    /// Sends `req`.
    pub async fn call(&self, req: TestRequest) -> Reply {
        let res = (self.call)(req.to_request()).await;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = read_body(res).await;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `method uri` with `body` (none when `Null`) as `token`'s bearer (none when empty).
    pub async fn send(&self, method: &str, uri: &str, token: &str, body: Value) -> Reply {
        let method = Method::from_bytes(method.as_bytes()).expect("a method");
        let mut req = TestRequest::default().method(method).uri(uri);
        if !body.is_null() {
            // No Content-Type, as `curl -d` sends it.
            req = req.set_payload(body.to_string());
        }
        if !token.is_empty() {
            req = bearer(req, token);
        }
        self.call(req).await
    }

    /// Signs a user up → (user id, access token).
    pub async fn user(&self, email: &str) -> (String, String) {
        let reply = self
            .send(
                "POST",
                "/api/v1/auth/signup",
                "",
                json!({"email": email, "password": "a-passw0rd-for-jobs"}),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        (
            reply.body["user"]["id"].as_str().unwrap().to_string(),
            reply.str("access_token"),
        )
    }

    /// The first dashboard admin, signed up and logged in → its access token.
    pub async fn admin(&self) -> String {
        let creds = json!({"email": "ops@example.com", "password": "Jobs-Admin-Passw0rd!"});
        let reply = self
            .send("POST", "/dashboard/auth/signup", "", creds.clone())
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        let reply = self.send("POST", "/dashboard/auth/login", "", creds).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.str("access_token")
    }

    /// Waits until job `id` has `status` (asked through the API as `service_role`).
    pub async fn await_status(&self, id: &str, status: &str) -> Value {
        let service = service_token();
        eventually(&format!("job {id} to be {status}"), || async {
            let reply = self
                .send("GET", &format!("/api/v1/jobs/{id}"), &service, Value::Null)
                .await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            (reply.body["status"] == status).then_some(reply.body)
        })
        .await
    }
}

/// A `service_role` token.
pub fn service_token() -> String {
    token(json!({"role": "service_role"}))
}

/// Polls `check` until it yields a value, failing after [`EVENT_TIMEOUT`]. The poll
/// interval is short; the deadline is what proves nothing (a condition never met fails).
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + EVENT_TIMEOUT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
