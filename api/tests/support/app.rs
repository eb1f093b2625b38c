//! [`TestApp`]: the application of [`build_app`] in-process (actix's test service, as
//! meilisearch tests theirs), over a fresh database, with the test secret and — unless a
//! test turns them on — without rate limits.

use std::rc::Rc;

use actix_http::Request;
use actix_web::body::BoxBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::HeaderMap;
use actix_web::test::{TestRequest, init_service, read_body};
use fluxbase_api::config::{Config, Dur};
use fluxbase_api::http::{AppState, build_app};
use fluxbase_migrations::Db;
use fluxbase_migrations::test_utils::TestDb;
use futures_util::future::LocalBoxFuture;
use serde_json::Value;

use super::TEST_SECRET;

type Call = Rc<dyn Fn(Request) -> LocalBoxFuture<'static, ServiceResponse<BoxBody>>>;

/// The app over a test database.
pub struct TestApp {
    /// The database (none when the app runs on a URL of the test's own cluster).
    pub db: Option<TestDb>,
    /// The state the app was built with (its pool, auth service, limiters).
    pub state: AppState,
    call: Call,
}

/// A response: status, headers, and the body as JSON (`Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl PartialEq for Reply {
    fn eq(&self, other: &Self) -> bool {
        self.status == other.status && self.body == other.body
    }
}

impl Reply {
    /// A string field of the body (fails the test when absent).
    pub fn str(&self, key: &str) -> String {
        self.body[key]
            .as_str()
            .unwrap_or_else(|| panic!("no string `{key}` in {}", self.body))
            .to_string()
    }
}

impl TestApp {
    /// The app over a fresh database with the default test configuration.
    pub async fn new() -> TestApp {
        TestApp::with(|_| {}).await
    }

    /// The app over a fresh database, configuration adjusted by `tweak`.
    pub async fn with(tweak: impl FnOnce(&mut Config)) -> TestApp {
        let db = TestDb::new().await;
        let mut app = TestApp::on_url(&db.url(), tweak).await;
        app.db = Some(db);
        app
    }

    /// The app over the database at `url`.
    pub async fn on_url(url: &str, tweak: impl FnOnce(&mut Config)) -> TestApp {
        TestApp::on_url_with(url, tweak, |state| state).await
    }

    /// The app over a fresh database, configuration adjusted by `tweak` and the state by
    /// `extend` (services a surface needs, e.g. storage) before the app is built.
    pub async fn with_state(
        tweak: impl FnOnce(&mut Config),
        extend: impl FnOnce(AppState) -> AppState,
    ) -> TestApp {
        let db = TestDb::new().await;
        let mut app = TestApp::on_url_with(&db.url(), tweak, extend).await;
        app.db = Some(db);
        app
    }

    /// [`TestApp::on_url`] with the state extended by `extend`.
    async fn on_url_with(
        url: &str,
        tweak: impl FnOnce(&mut Config),
        extend: impl FnOnce(AppState) -> AppState,
    ) -> TestApp {
        let mut config = Config::default();
        config.database.url = Some(url.to_string());
        config.database.connect_timeout = Dur::secs(2);
        config.auth.jwt_secret = Some(TEST_SECRET.into());
        config.security.rate_limit.enabled = false;
        tweak(&mut config);
        let db = Db::new(
            fluxbase_migrations::pool::parse_url(url).unwrap(),
            config.database.pool_settings(),
        );
        let state = extend(AppState::new(config, db));
        let service = Rc::new(init_service(build_app(state.clone())).await);
        let call: Call = Rc::new(move |req| {
            let service = service.clone();
            Box::pin(async move {
                match service.call(req).await {
                    Ok(res) => res.map_into_boxed_body(),
                    Err(err) => panic!("the app returned an error instead of a response: {err}"),
                }
            })
        });
        TestApp {
            db: None,
            state,
            call,
        }
    }

    /// The test database.
    pub fn db(&self) -> &TestDb {
        self.db.as_ref().expect("this app has no TestDb")
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

    /// `GET uri`.
    pub async fn get(&self, uri: &str) -> Reply {
        self.call(TestRequest::get().uri(uri)).await
    }

    /// `POST uri` with a JSON body (no `Content-Type`, as `curl -d` sends it).
    pub async fn post(&self, uri: &str, body: Value) -> Reply {
        self.call(post(uri, body)).await
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        match self.get("/metrics").await.body {
            Value::String(text) => text,
            other => panic!("metrics are not text: {other}"),
        }
    }

    /// Signs an application user up; returns the session answer.
    pub async fn sign_up(&self, email: &str, password: &str) -> Reply {
        let reply = self
            .post(
                "/api/v1/auth/signup",
                serde_json::json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply
    }
}

/// `POST uri` with a JSON body and no `Content-Type`.
pub fn post(uri: &str, body: Value) -> TestRequest {
    TestRequest::post().uri(uri).set_payload(body.to_string())
}

/// A request with a raw body.
pub fn raw(method: Method, uri: &str, body: &str) -> TestRequest {
    TestRequest::default()
        .method(method)
        .uri(uri)
        .set_payload(body.to_string())
}

/// Adds `Authorization: Bearer token`.
pub fn bearer(req: TestRequest, token: &str) -> TestRequest {
    req.insert_header(("Authorization", format!("Bearer {token}")))
}

/// Asserts an error answer: the status, the code, a message mentioning `needle`, and
/// nothing but `{"error":{"code","message"}}`.
#[track_caller]
pub fn assert_error(got: &Reply, status: u16, code: &str, needle: &str) {
    assert_eq!(got.status, status, "{}", got.body);
    assert_eq!(got.body["error"]["code"], code, "{}", got.body);
    let message = got.body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message: {}", got.body));
    assert!(message.contains(needle), "{needle:?} not in {message:?}");
    assert_eq!(got.body.as_object().unwrap().len(), 1, "{}", got.body);
    assert_eq!(
        got.body["error"].as_object().unwrap().len(),
        2,
        "{}",
        got.body
    );
}
