//! The REST service: one call per HTTP request, whatever path it came by.
//!
//! ```ignore
//! let rest = RestService::new(schema_cache, db, RestSettings::default());
//! let response = rest
//!     .handle(RestCall { method, resource, query, headers, body }, &auth, Flavour::PostgRest)
//!     .await;
//! ```
//!
//! [`RestService::handle`] parses the request, checks its body, builds its statement
//! against the current schema snapshot, runs it as the caller ([`AuthContext`]: role,
//! claims, the role's statement timeout) and answers with a [`RestResponse`] — success or
//! error, in the shape of the [`Flavour`] the route asked for. The HTTP layer only maps
//! its routes to a [`RestCall`]: `/api/v1/tables/{table}`, `/api/v1/tables/{schema}/{table}
//! [/{key}]` and `/api/v1/rpc/{fn}` as [`Flavour::Fluxbase`]; `/rest/v1/{table}` and
//! `/rest/v1/rpc/{fn}` as [`Flavour::PostgRest`]; `GET /rest/v1/` is
//! [`RestService::openapi`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use fluxbase_auth::{AuthContext, Role};
use fluxbase_migrations::{Db, Schema, SchemaCache};
use tokio::sync::OnceCell;

use super::build::{BuildSettings, build};
use super::error::RestError;
use super::exec::{Caller, Executor, SessionIds};
use super::failure::Failure;
use super::limits::Limits;
use super::payload::Payload;
use super::prefer::{Handling, TxEnd};
use super::request::{ApiRequest, Headers, ParserConfig, RequestParts, parse_request};
use super::response::{Context, RestResponse, respond};
use super::statements::{DEFAULT_STATEMENTS_PER_CONNECTION, PreparedStatements};
use super::target::{Resource, Target, is_never_exposed};

/// `rest.statement_timeout` when not configured.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request naming a table the catalog has and the cache not yet waits for the
/// cache to load it.
const CACHE_CATCH_UP: Duration = Duration::from_secs(5);

/// The `rest.*` settings.
#[derive(Debug, Clone)]
pub struct RestSettings {
    /// `rest.schemas`: the schemas requests may reach, the first being the default.
    /// `auth`, `dashboard`, `storage`, `jobs`, `realtime` and `pg_*` are never reachable,
    /// whatever this lists.
    pub schemas: Vec<String>,
    /// `rest.max_rows`: the most rows any read returns, at every level of embedding.
    pub max_rows: Option<u64>,
    /// `rest.statement_timeout`: how long a request's statements may run.
    pub statement_timeout: Duration,
    /// Per-role overrides of `statement_timeout` (`rest.statement_timeout_per_role`).
    pub role_statement_timeouts: Vec<(String, Duration)>,
    /// Bounds of the request parser.
    pub limits: Limits,
    /// Prepared statements kept per pooled connection.
    pub statements_per_connection: usize,
}

impl Default for RestSettings {
    fn default() -> Self {
        RestSettings {
            schemas: vec!["public".to_owned()],
            max_rows: None,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            role_statement_timeouts: Vec::new(),
            limits: Limits::default(),
            statements_per_connection: DEFAULT_STATEMENTS_PER_CONNECTION,
        }
    }
}

impl RestSettings {
    /// The statement timeout of `role`.
    pub fn statement_timeout_for(&self, role: &str) -> Duration {
        self.role_statement_timeouts
            .iter()
            .find(|(r, _)| r == role)
            .map_or(self.statement_timeout, |(_, t)| *t)
    }
}

/// Which API a request came through: decides the error shape and `Location` paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// `/api/v1/tables`, `/api/v1/rpc`: `{"error":{"code","message"}}`; a row key in the
    /// path answers with that row as an object, 404 without it.
    Fluxbase,
    /// `/rest/v1`: PostgREST's `{code, details, hint, message}` and statuses.
    PostgRest,
}

/// How the liveness of the caller's session is established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCheck {
    /// Already checked (or the credential names no session): nothing more to assert.
    Done,
    /// An application user's verified token (`sub`, `session_id` uuids) whose session the
    /// request's transaction asserts in its role switch — no extra round trip. An ended
    /// session fails the request with 401 `session_not_found` before its statement runs.
    InTransaction,
}

/// The parts of an HTTP request the service reads.
#[derive(Debug, Clone)]
pub struct RestCall<'a> {
    /// The method, as sent (`GET`).
    pub method: &'a str,
    /// The table or function the path names (percent-decoded).
    pub resource: Resource<'a>,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// `Prefer`, `Range`, `Range-Unit`, `Accept`, `Accept-Profile`, `Content-Profile`,
    /// `Content-Type`.
    pub headers: Headers<'a>,
    /// The body (empty when there is none).
    pub body: &'a [u8],
}

impl<'a> RestCall<'a> {
    /// The call an actix request makes on `resource` (the route's percent-decoded path
    /// parameters) with its `body`. Header values that are not visible ASCII are ignored.
    pub fn from_http(req: &'a HttpRequest, resource: Resource<'a>, body: &'a [u8]) -> Self {
        let map = req.headers();
        let header = |name: &str| map.get(name).and_then(|v| v.to_str().ok());
        RestCall {
            method: req.method().as_str(),
            resource,
            query: req.query_string(),
            headers: Headers {
                prefer: map
                    .get_all("prefer")
                    .filter_map(|v| v.to_str().ok())
                    .collect(),
                range: header("range"),
                range_unit: header("range-unit"),
                accept: header("accept"),
                accept_profile: header("accept-profile"),
                content_profile: header("content-profile"),
                content_type: header("content-type"),
            },
            body,
        }
    }
}

/// The REST service; cheap to clone.
#[derive(Clone)]
pub struct RestService {
    inner: Arc<Inner>,
}

/// What the clones share.
struct Inner {
    /// The schema cache.
    cache: SchemaCache,
    /// The settings.
    settings: RestSettings,
    /// The exposed schemas (never-exposed ones removed), the first the default.
    exposed: Vec<String>,
    /// The parser's configuration.
    parser: ParserConfig,
    /// The pool and its prepared statements.
    executor: Executor,
    /// `pg_timezone_names`, read once on the first `Prefer: timezone=`.
    timezones: OnceCell<HashSet<String>>,
}

impl std::fmt::Debug for RestService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestService")
            .field("schemas", &self.inner.exposed)
            .finish()
    }
}

impl RestService {
    /// A service over `cache` and `db` with `settings`.
    pub fn new(cache: SchemaCache, db: Db, settings: RestSettings) -> Self {
        let exposed: Vec<String> = settings
            .schemas
            .iter()
            .filter(|s| !is_never_exposed(s))
            .cloned()
            .collect();
        let parser = ParserConfig {
            schemas: exposed.clone(),
            limits: settings.limits.clone(),
        };
        let executor = Executor {
            db,
            statements: PreparedStatements::new(settings.statements_per_connection),
        };
        RestService {
            inner: Arc::new(Inner {
                cache,
                settings,
                exposed,
                parser,
                executor,
                timezones: OnceCell::new(),
            }),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &RestSettings {
        &self.inner.settings
    }

    /// The schema cache it reads.
    pub fn schema_cache(&self) -> &SchemaCache {
        &self.inner.cache
    }

    /// The exposed schemas, the default first.
    pub fn schemas(&self) -> &[String] {
        &self.inner.exposed
    }

    /// Prepared statements cached for the connection `client` (tests, diagnostics).
    pub fn cached_statements(&self, client: &deadpool_postgres::ClientWrapper) -> usize {
        self.inner.executor.statements.len(client)
    }

    /// Answers one request as `auth`, whose credentials were fully checked.
    pub async fn handle(
        &self,
        call: RestCall<'_>,
        auth: &AuthContext,
        flavour: Flavour,
    ) -> RestResponse {
        self.handle_checked(call, auth, SessionCheck::Done, flavour)
            .await
    }

    /// Answers one request as `auth`, asserting its session as `session` says.
    pub async fn handle_checked(
        &self,
        call: RestCall<'_>,
        auth: &AuthContext,
        session: SessionCheck,
        flavour: Flavour,
    ) -> RestResponse {
        match self.serve(call, auth, session, flavour).await {
            Ok(response) => response,
            Err(failure) => failure.response(flavour),
        }
    }

    /// `GET /rest/v1/`: the OpenAPI (Swagger 2.0) description of the schema
    /// `accept_profile` names (the first exposed one without it), for an API mounted at
    /// `base_path`. An unexposed schema is PGRST106, in `flavour`'s shape.
    pub fn openapi(
        &self,
        accept_profile: Option<&str>,
        base_path: &str,
        flavour: Flavour,
    ) -> RestResponse {
        let exposed = &self.inner.exposed;
        let profile = accept_profile.map(str::trim).filter(|p| !p.is_empty());
        let schema = match profile {
            Some(p) if exposed.iter().any(|s| s == p) => p,
            None if !exposed.is_empty() => exposed[0].as_str(),
            other => {
                let err = RestError::UnacceptableSchema {
                    schema: super::snippet(other.unwrap_or_default()),
                    exposed: exposed.clone(),
                };
                return Failure::Request(err).response(flavour);
            }
        };
        let document = super::openapi::document(&self.inner.cache.snapshot(), schema, base_path);
        let mut headers = vec![(
            "Content-Type",
            "application/openapi+json; charset=utf-8".to_owned(),
        )];
        if exposed.len() > 1 {
            headers.push(("Content-Profile", schema.to_owned()));
        }
        RestResponse {
            status: actix_web::http::StatusCode::OK,
            headers,
            body: actix_web::web::Bytes::from(document.to_string()),
        }
    }

    /// [`RestService::handle`] with the failure unrendered.
    async fn serve(
        &self,
        call: RestCall<'_>,
        auth: &AuthContext,
        session: SessionCheck,
        flavour: Flavour,
    ) -> Result<RestResponse, Failure> {
        let inner = &*self.inner;
        let parts = RequestParts {
            method: call.method,
            resource: call.resource,
            query: call.query,
            headers: call.headers,
        };
        let request = parse_request(&parts, &inner.parser)?;
        let payload = if request.action.has_body() {
            Some(Payload::parse(&request, call.body, &inner.settings.limits)?)
        } else {
            None
        };
        let authed = *auth.role() != Role::Anon;
        let timezone = self.timezone(&request, authed).await?;
        let snapshot = self.snapshot_for(&request).await;
        let settings = BuildSettings {
            schemas: &inner.exposed,
            max_rows: inner.settings.max_rows,
        };
        let plan = build(&request, payload, &snapshot, &settings)?;
        let role = auth.role();
        let session = match session {
            SessionCheck::Done => None,
            SessionCheck::InTransaction => Some(session_ids(auth)?),
        };
        let caller = Caller {
            role: role.as_str(),
            custom: matches!(role, Role::Custom(_)),
            claims: auth.claims_json(),
            timeout_ms: inner
                .settings
                .statement_timeout_for(role.as_str())
                .as_millis() as u64,
            timezone,
            authed,
            session,
        };
        if caller.session.is_some() && caller.custom {
            // Application users' tokens have the role `authenticated` (the HTTP layer only
            // defers their check): a custom role's switch has no session probe, so refuse
            // rather than run unchecked.
            return Err(Failure::Auth(fluxbase_auth::AuthError::Unauthenticated(
                "an application user's token must have the role authenticated".to_owned(),
            )));
        }
        let decide = plan.needs_decision(&request);
        let (outcome, tx) = inner
            .executor
            .run(&plan, &caller, snapshot.version(), decide)
            .await?;
        let ctx = Context {
            flavour,
            schema: &request.schema,
            profile: inner.exposed.len() > 1,
            timezone_applied: timezone.is_some(),
        };
        let result = respond(&plan, &request, &outcome, &ctx);
        if let Some(tx) = tx {
            let commit = result.is_ok() && request.preferences.tx != Some(TxEnd::Rollback);
            tx.finish(commit, authed).await?;
        }
        Ok(result?)
    }

    /// The `timezone=` preference if it names a zone PostgreSQL knows; an unknown zone is
    /// ignored, or refused under `handling=strict`.
    /// The cache's snapshot for `request`: when the table it names is not in the cache but
    /// is in the catalog (created a moment ago, before the DDL notice reached the cache),
    /// the cache reloads first, so a table is reachable from the first request after its
    /// `CREATE TABLE` commits. A name the catalog lacks costs one probe and no reload.
    async fn snapshot_for(&self, request: &ApiRequest) -> Arc<Schema> {
        let cache = &self.inner.cache;
        let snapshot = cache.snapshot();
        let Target::Table { name, .. } = &request.target else {
            return snapshot;
        };
        let schema = request.schema.as_str();
        if snapshot.relation(schema, name).is_some() {
            return snapshot;
        }
        // A probe that fails (pool exhausted, database down) leaves the request to the
        // snapshot at hand: it then fails as it would have.
        let exists = match self.inner.executor.db.conn().await {
            Ok(client) => SchemaCache::catalog_has(&client, schema, name)
                .await
                .unwrap_or(false),
            Err(_) => false,
        };
        if !exists {
            return snapshot;
        }
        cache
            .load_relation(schema, name, CACHE_CATCH_UP)
            .await
            .unwrap_or(snapshot)
    }

    async fn timezone<'r>(
        &self,
        request: &'r ApiRequest,
        authed: bool,
    ) -> Result<Option<&'r str>, Failure> {
        let Some(tz) = request.preferences.timezone.as_deref() else {
            return Ok(None);
        };
        let db = &self.inner.executor.db;
        let names = self
            .inner
            .timezones
            .get_or_try_init(|| async {
                let rows = db
                    .query("SELECT name FROM pg_catalog.pg_timezone_names", &[])
                    .await?;
                Ok::<_, fluxbase_migrations::DbError>(
                    rows.iter().map(|r| r.get::<_, String>(0)).collect(),
                )
            })
            .await
            .map_err(|error| Failure::Database { error, authed })?;
        if names.contains(tz) {
            Ok(Some(tz))
        } else if request.preferences.handling == Some(Handling::Strict) {
            Err(RestError::InvalidPreferences {
                prefs: vec![super::snippet(&format!("timezone={tz}"))],
            }
            .into())
        } else {
            Ok(None)
        }
    }
}

/// The session an application user's token names (`session_id`, `sub`), both uuids: what
/// the request's transaction asserts. A token without them names no session that could be
/// live, and is refused as one that ended (401), as the probe itself would refuse it.
fn session_ids(auth: &AuthContext) -> Result<SessionIds<'_>, Failure> {
    let uuid = |name: &str| {
        auth.claim(name)
            .and_then(|v| v.as_str())
            .filter(|s| uuid::Uuid::parse_str(s).is_ok())
    };
    match (uuid("session_id"), uuid("sub")) {
        (Some(session_id), Some(user_id)) => Ok(SessionIds {
            session_id,
            user_id,
        }),
        _ => Err(Failure::Auth(fluxbase_auth::AuthError::SessionEnded)),
    }
}
