//! `rest.*`: the REST API over the tables (`/api/v1/tables`, `/api/v1/rpc`, `/rest/v1`) —
//! which schemas it exposes, how many rows a response may hold, how long a request's
//! statements may run (per role), how large a body may be; and the service's settings
//! built from them.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use super::types::parse_duration;
use super::{ByteSize, Config, Dur};
use crate::rest::{RestSettings, is_never_exposed};

/// Default `rest.statement_timeout`.
pub const DEFAULT_REST_STATEMENT_TIMEOUT: Dur = Dur::secs(10);
/// Default `rest.body_limit`: 16 MiB, room for a bulk insert of 10,000 rows of ~1.6 KB.
pub const DEFAULT_REST_BODY_LIMIT: u64 = 16 << 20;
/// Default `rest.statements_per_connection`.
pub const DEFAULT_REST_STATEMENTS_PER_CONNECTION: u32 = 256;

/// `rest.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestConfig {
    /// Schemas requests may reach, the first being the default (`Accept-Profile` and
    /// `Content-Profile` choose among them). `auth`, `dashboard`, `storage`, `jobs`,
    /// `realtime` and `pg_*` are refused here.
    pub schemas: Vec<String>,
    /// Most rows any read returns, at every level of embedding; 0: no cap.
    pub max_rows: u64,
    /// How long a request's statements may run (`statement_timeout`); 504 beyond.
    pub statement_timeout: Dur,
    /// Per-role overrides of `statement_timeout`, each `role=duration`
    /// (`FLUXBASE_REST_ROLE_STATEMENT_TIMEOUTS=anon=2s,authenticated=5s`).
    pub role_statement_timeouts: Vec<RoleTimeout>,
    /// Largest request body, in bytes (at most `server.body_limit`); 413 beyond.
    pub body_limit: ByteSize,
    /// Prepared statements kept per pooled connection (one per query shape).
    pub statements_per_connection: u32,
}

impl Default for RestConfig {
    fn default() -> Self {
        RestConfig {
            schemas: vec!["public".into()],
            max_rows: 0,
            statement_timeout: DEFAULT_REST_STATEMENT_TIMEOUT,
            role_statement_timeouts: Vec::new(),
            body_limit: ByteSize(DEFAULT_REST_BODY_LIMIT),
            statements_per_connection: DEFAULT_REST_STATEMENTS_PER_CONNECTION,
        }
    }
}

/// One `role=duration` of `rest.role_statement_timeouts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleTimeout {
    /// The database role.
    pub role: String,
    /// Its statement timeout.
    pub timeout: Dur,
}

impl fmt::Display for RoleTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.role, self.timeout)
    }
}

impl std::str::FromStr for RoleTimeout {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (role, timeout) = text
            .split_once('=')
            .ok_or_else(|| format!("expected role=duration (e.g. anon=2s), got {text:?}"))?;
        let role = role.trim();
        if role.is_empty() {
            return Err(format!("no role before '=' in {text:?}"));
        }
        let timeout = parse_duration(timeout)?;
        Ok(RoleTimeout {
            role: role.to_owned(),
            timeout: Dur(timeout),
        })
    }
}

impl Serialize for RoleTimeout {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for RoleTimeout {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

impl Config {
    /// The REST service's settings from `rest.*`.
    pub fn rest_settings(&self) -> RestSettings {
        let rest = &self.rest;
        RestSettings {
            schemas: rest.schemas.clone(),
            max_rows: (rest.max_rows > 0).then_some(rest.max_rows),
            statement_timeout: rest.statement_timeout.get(),
            role_statement_timeouts: rest
                .role_statement_timeouts
                .iter()
                .map(|r| (r.role.clone(), r.timeout.get()))
                .collect(),
            statements_per_connection: rest.statements_per_connection as usize,
            ..RestSettings::default()
        }
    }

    /// The largest REST request body: `rest.body_limit`, at most `server.body_limit`.
    pub fn rest_body_limit(&self) -> u64 {
        self.rest.body_limit.0.min(self.server.body_limit.0)
    }

    /// The rules of `rest.*`, each naming its key.
    pub(super) fn validate_rest(&self, check: &mut impl FnMut(bool, &str, String)) {
        let rest = &self.rest;
        check(
            !rest.schemas.is_empty(),
            "rest.schemas",
            "must list at least one schema".into(),
        );
        for schema in &rest.schemas {
            check(
                !is_never_exposed(schema),
                "rest.schemas",
                format!(
                    "{schema:?} is never exposed (auth, dashboard, storage, jobs, realtime, \
                     pg_* and information_schema hold Fluxbase's and PostgreSQL's own data)"
                ),
            );
            check(
                !schema.is_empty() && schema.len() <= 63 && !schema.contains('\0'),
                "rest.schemas",
                format!("{schema:?} is not a schema name (1-63 bytes)"),
            );
        }
        let positive = |d: Dur| d.get() > Duration::ZERO;
        check(
            positive(rest.statement_timeout),
            "rest.statement_timeout",
            "must be more than 0s".into(),
        );
        for r in &rest.role_statement_timeouts {
            check(
                positive(r.timeout),
                "rest.role_statement_timeouts",
                format!("{r}: the timeout must be more than 0s"),
            );
        }
        check(
            rest.body_limit.0 >= 1024,
            "rest.body_limit",
            "must be at least 1KB".into(),
        );
        check(
            rest.statements_per_connection >= 1,
            "rest.statements_per_connection",
            "must be at least 1".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_timeouts_parse_and_print() {
        let r: RoleTimeout = "anon=2s".parse().unwrap();
        assert_eq!(r.role, "anon");
        assert_eq!(r.timeout, Dur::secs(2));
        assert_eq!(r.to_string(), "anon=2s");
        assert!("anon".parse::<RoleTimeout>().is_err());
        assert!("=2s".parse::<RoleTimeout>().is_err());
        assert!("anon=soon".parse::<RoleTimeout>().is_err());
    }

    #[test]
    fn settings_map_every_key() {
        let mut config = Config::default();
        config.rest.schemas = vec!["api".into(), "public".into()];
        config.rest.max_rows = 100;
        config.rest.statement_timeout = Dur::secs(3);
        config.rest.role_statement_timeouts = vec!["anon=1s".parse().unwrap()];
        config.rest.statements_per_connection = 9;
        let settings = config.rest_settings();
        assert_eq!(settings.schemas, ["api", "public"]);
        assert_eq!(settings.max_rows, Some(100));
        assert_eq!(
            settings.statement_timeout_for("anon"),
            Duration::from_secs(1)
        );
        assert_eq!(
            settings.statement_timeout_for("authenticated"),
            Duration::from_secs(3)
        );
        assert_eq!(settings.statements_per_connection, 9);
        config.rest.max_rows = 0;
        assert_eq!(config.rest_settings().max_rows, None);
    }

    #[test]
    fn the_body_limit_is_capped_by_the_server_limit() {
        let mut config = Config::default();
        assert_eq!(config.rest_body_limit(), DEFAULT_REST_BODY_LIMIT);
        config.server.body_limit = ByteSize(4096);
        assert_eq!(config.rest_body_limit(), 4096);
    }
}
