//! Webhook rules (`jobs.webhooks`): their CRUD, checked against the catalog.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use super::Jobs;
use super::error::JobError;
use super::http::{check_headers, check_url};
use super::job::{Caller, rfc3339};
use crate::realtime::filter::Filter;

/// Schemas whose changes never fire webhooks: the server's own (a rule on `jobs` would feed
/// itself forever) and the catalogs.
const REFUSED_SCHEMAS: &[&str] = &["jobs", "pg_catalog", "information_schema", "_fluxbase"];

/// One row of `jobs.webhooks`.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookRule {
    /// Rule id.
    pub id: Uuid,
    /// Unique name; the jobs it submits are named `webhook:<name>`.
    pub name: String,
    /// Schema of the table.
    pub schema: String,
    /// The table.
    pub table: String,
    /// `INSERT`, `UPDATE`, `DELETE`.
    pub events: Vec<String>,
    /// A realtime filter (`col=op.value`) the row must pass.
    pub filter: Option<String>,
    /// Where the change is POSTed.
    pub url: String,
    /// Extra request headers.
    pub headers: Value,
    /// `max_attempts` of its jobs.
    pub max_attempts: i32,
    /// Firing at all.
    pub enabled: bool,
    /// Who made it.
    pub created_by: Option<String>,
    /// Created at.
    #[serde(with = "rfc3339")]
    pub created_at: SystemTime,
    /// Last changed.
    #[serde(with = "rfc3339")]
    pub updated_at: SystemTime,
}

const RULE_COLUMNS: &str = "id, name, schema_name, table_name, events, filter, url, headers, \
     max_attempts, enabled, created_by, created_at, updated_at";

impl WebhookRule {
    fn from_row(row: &Row) -> Result<WebhookRule, JobError> {
        Ok(WebhookRule {
            id: row.try_get(0)?,
            name: row.try_get(1)?,
            schema: row.try_get(2)?,
            table: row.try_get(3)?,
            events: row.try_get(4)?,
            filter: row.try_get(5)?,
            url: row.try_get(6)?,
            headers: row.try_get(7)?,
            max_attempts: row.try_get(8)?,
            enabled: row.try_get(9)?,
            created_by: row.try_get(10)?,
            created_at: row.try_get(11)?,
            updated_at: row.try_get(12)?,
        })
    }
}

/// A new rule, or a rule's new state (`PUT`). Unknown fields are refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWebhookRule {
    /// Unique name (1–255 characters).
    pub name: String,
    /// Schema (default `public`).
    #[serde(default)]
    pub schema: Option<String>,
    /// The table.
    pub table: String,
    /// Some of `INSERT`, `UPDATE`, `DELETE` (case-insensitive; `*` for all).
    pub events: Vec<String>,
    /// A realtime filter on the row.
    #[serde(default)]
    pub filter: Option<String>,
    /// http(s) URL.
    pub url: String,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `max_attempts` of its jobs (default 3).
    #[serde(default)]
    pub max_attempts: Option<i64>,
    /// Firing (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A rule checked: what is stored.
struct Checked {
    schema: String,
    events: Vec<String>,
    headers: Value,
    max_attempts: i32,
}

impl Jobs {
    /// Checks a rule against the catalog and the URL policy, naming the bad field.
    async fn check_rule(&self, rule: &NewWebhookRule) -> Result<Checked, JobError> {
        super::check_name(&rule.name, "name")?;
        let schema = rule.schema.clone().unwrap_or_else(|| "public".into());
        if REFUSED_SCHEMAS.contains(&schema.as_str()) {
            return Err(JobError::invalid(
                "schema",
                format!("changes of schema {schema:?} cannot fire webhooks"),
            ));
        }
        let mut events = Vec::new();
        for event in &rule.events {
            let upper = event.to_ascii_uppercase();
            match upper.as_str() {
                "*" => events.extend(["INSERT", "UPDATE", "DELETE"].map(String::from)),
                "INSERT" | "UPDATE" | "DELETE" => events.push(upper),
                _ => {
                    return Err(JobError::invalid(
                        "events",
                        format!("unknown event {event:?}: use INSERT, UPDATE, DELETE or *"),
                    ));
                }
            }
        }
        events.sort();
        events.dedup();
        if events.is_empty() {
            return Err(JobError::invalid("events", "name at least one event"));
        }
        let columns: Vec<String> = self
            .shared
            .db
            .query(
                "SELECT a.attname::text FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid \
                 WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p') \
                   AND a.attnum > 0 AND NOT a.attisdropped",
                &[&schema, &rule.table],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if columns.is_empty() {
            return Err(JobError::invalid(
                "table",
                format!("no table {schema}.{}", rule.table),
            ));
        }
        if let Some(text) = &rule.filter {
            let filter =
                Filter::parse(text).map_err(|err| JobError::invalid("filter", err.to_string()))?;
            if !columns.contains(&filter.column) {
                return Err(JobError::invalid(
                    "filter",
                    format!("{schema}.{} has no column {:?}", rule.table, filter.column),
                ));
            }
        }
        check_url(&rule.url, self.shared.settings.allow_private_urls, "url")?;
        check_headers(&rule.headers, "headers")?;
        let max_attempts = super::check_max_attempts(rule.max_attempts)?;
        let headers = serde_json::to_value(&rule.headers).expect("a map of strings");
        Ok(Checked {
            schema,
            events,
            headers,
            max_attempts,
        })
    }

    /// Creates a webhook rule.
    pub async fn create_webhook(
        &self,
        caller: &Caller,
        rule: NewWebhookRule,
    ) -> Result<WebhookRule, JobError> {
        caller.require_all()?;
        let checked = self.check_rule(&rule).await?;
        let rows = self
            .shared
            .db
            .query(
                &format!(
                    "INSERT INTO jobs.webhooks (name, schema_name, table_name, events, filter, url, \
                       headers, max_attempts, enabled, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {RULE_COLUMNS}"
                ),
                &[
                    &rule.name,
                    &checked.schema,
                    &rule.table,
                    &checked.events,
                    &rule.filter,
                    &rule.url,
                    &checked.headers,
                    &checked.max_attempts,
                    &rule.enabled.unwrap_or(true),
                    &caller.label(),
                ],
            )
            .await
            .map_err(|err| name_taken(err.into(), &rule.name))?;
        self.shared.webhooks.invalidate();
        WebhookRule::from_row(&rows[0])
    }

    /// Every rule, by name.
    pub async fn list_webhooks(&self, caller: &Caller) -> Result<Vec<WebhookRule>, JobError> {
        caller.require_all()?;
        let rows = self
            .shared
            .db
            .query(
                &format!("SELECT {RULE_COLUMNS} FROM jobs.webhooks ORDER BY name"),
                &[],
            )
            .await?;
        rows.iter().map(WebhookRule::from_row).collect()
    }

    /// One rule.
    pub async fn get_webhook(&self, caller: &Caller, id: Uuid) -> Result<WebhookRule, JobError> {
        caller.require_all()?;
        let rows = self
            .shared
            .db
            .query(
                &format!("SELECT {RULE_COLUMNS} FROM jobs.webhooks WHERE id = $1"),
                &[&id],
            )
            .await?;
        rows.first()
            .map(WebhookRule::from_row)
            .unwrap_or_else(|| Err(JobError::not_found("webhook", id)))
    }

    /// Replaces a rule (`PUT`: every field as for a new rule).
    pub async fn update_webhook(
        &self,
        caller: &Caller,
        id: Uuid,
        rule: NewWebhookRule,
    ) -> Result<WebhookRule, JobError> {
        caller.require_all()?;
        let checked = self.check_rule(&rule).await?;
        let rows = self
            .shared
            .db
            .query(
                &format!(
                    "UPDATE jobs.webhooks SET name = $2, schema_name = $3, table_name = $4, \
                       events = $5, filter = $6, url = $7, headers = $8, max_attempts = $9, \
                       enabled = $10, updated_at = now() \
                     WHERE id = $1 RETURNING {RULE_COLUMNS}"
                ),
                &[
                    &id,
                    &rule.name,
                    &checked.schema,
                    &rule.table,
                    &checked.events,
                    &rule.filter,
                    &rule.url,
                    &checked.headers,
                    &checked.max_attempts,
                    &rule.enabled.unwrap_or(true),
                ],
            )
            .await
            .map_err(|err| name_taken(err.into(), &rule.name))?;
        self.shared.webhooks.invalidate();
        rows.first()
            .map(WebhookRule::from_row)
            .unwrap_or_else(|| Err(JobError::not_found("webhook", id)))
    }

    /// Deletes a rule (jobs it submitted stay).
    pub async fn delete_webhook(&self, caller: &Caller, id: Uuid) -> Result<(), JobError> {
        caller.require_all()?;
        let rows = self
            .shared
            .db
            .query(
                "DELETE FROM jobs.webhooks WHERE id = $1 RETURNING 1",
                &[&id],
            )
            .await?;
        self.shared.webhooks.invalidate();
        if rows.is_empty() {
            return Err(JobError::not_found("webhook", id));
        }
        Ok(())
    }
}

/// A unique-name violation as a conflict naming the name.
fn name_taken(err: JobError, name: &str) -> JobError {
    match &err {
        JobError::Db(db) if db.kind() == fluxbase_migrations::DbErrorKind::UniqueViolation => {
            JobError::Conflict(format!("name: a webhook named {name:?} exists"))
        }
        _ => err,
    }
}
