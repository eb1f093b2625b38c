//! Recurring schedules (`jobs.schedules`): cron patterns read in a time zone, their CRUD,
//! and when their next tick is.

use std::str::FromStr;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use super::Jobs;
use super::error::JobError;
use super::job::{Caller, rfc3339};

/// A cron pattern in a time zone.
#[derive(Debug, Clone)]
pub struct CronSpec {
    cron: Cron,
    zone: chrono_tz::Tz,
}

impl CronSpec {
    /// Parses a 5-field (`min hour dom month dow`) or 6-field (`sec min …`) pattern, with
    /// Vixie-cron day-of-week numbering (0 and 7 are Sunday), names (`MON`, `JAN`) and
    /// nicknames (`@hourly`), and an IANA zone. Errors name the field (`cron`, `timezone`).
    pub fn parse(pattern: &str, zone: &str) -> Result<CronSpec, JobError> {
        let fields = pattern.split_whitespace().count();
        if !pattern.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
            return Err(JobError::invalid(
                "cron",
                format!(
                    "needs 5 fields (minute hour day month weekday) or 6 (second first), got {fields}"
                ),
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(pattern)
            .map_err(|err| {
                JobError::invalid(
                    "cron",
                    format!("{pattern:?} is not a valid cron pattern: {err}"),
                )
            })?;
        let zone = chrono_tz::Tz::from_str(zone).map_err(|_| {
            JobError::invalid(
                "timezone",
                format!("{zone:?} is not an IANA time zone (e.g. UTC, Europe/Paris)"),
            )
        })?;
        let spec = CronSpec { cron, zone };
        if spec.next_after(SystemTime::now()).is_none() {
            return Err(JobError::invalid(
                "cron",
                format!("{pattern:?} never fires"),
            ));
        }
        Ok(spec)
    }

    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: SystemTime) -> Option<SystemTime> {
        let local = DateTime::<Utc>::from(t).with_timezone(&self.zone);
        let next = self.cron.find_next_occurrence(&local, false).ok()?;
        Some(next.with_timezone(&Utc).into())
    }
}

/// One row of `jobs.schedules`.
#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    /// Schedule id.
    pub id: Uuid,
    /// Unique name; also the name of the jobs it submits.
    pub name: String,
    /// The cron pattern.
    pub cron: String,
    /// The zone the pattern is read in.
    pub timezone: String,
    /// Kind of the jobs it submits.
    pub kind: String,
    /// Payload of the jobs it submits.
    pub payload: Value,
    /// `max_attempts` of the jobs it submits.
    pub max_attempts: i32,
    /// Priority of the jobs it submits.
    pub priority: i32,
    /// Firing at all.
    pub enabled: bool,
    /// The next tick.
    #[serde(with = "rfc3339::option")]
    pub next_run_at: Option<SystemTime>,
    /// The last tick fired.
    #[serde(with = "rfc3339::option")]
    pub last_run_at: Option<SystemTime>,
    /// The job the last tick submitted.
    pub last_job_id: Option<Uuid>,
    /// Who made it.
    pub created_by: Option<String>,
    /// Created at.
    #[serde(with = "rfc3339")]
    pub created_at: SystemTime,
    /// Last changed.
    #[serde(with = "rfc3339")]
    pub updated_at: SystemTime,
}

const SCHEDULE_COLUMNS: &str = "id, name, cron, timezone, kind, payload, max_attempts, \
     priority, enabled, next_run_at, last_run_at, last_job_id, created_by, created_at, updated_at";

impl Schedule {
    fn from_row(row: &Row) -> Result<Schedule, JobError> {
        Ok(Schedule {
            id: row.try_get(0)?,
            name: row.try_get(1)?,
            cron: row.try_get(2)?,
            timezone: row.try_get(3)?,
            kind: row.try_get(4)?,
            payload: row.try_get(5)?,
            max_attempts: row.try_get(6)?,
            priority: row.try_get(7)?,
            enabled: row.try_get(8)?,
            next_run_at: row.try_get(9)?,
            last_run_at: row.try_get(10)?,
            last_job_id: row.try_get(11)?,
            created_by: row.try_get(12)?,
            created_at: row.try_get(13)?,
            updated_at: row.try_get(14)?,
        })
    }
}

/// A new schedule. Unknown fields are refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    /// Unique name (1–255 characters).
    pub name: String,
    /// 5 or 6 cron fields.
    pub cron: String,
    /// IANA zone (default `UTC`).
    #[serde(default)]
    pub timezone: Option<String>,
    /// A registered kind.
    pub kind: String,
    /// The jobs' payload (default `{}`).
    #[serde(default)]
    pub payload: Option<Value>,
    /// The jobs' `max_attempts` (default 3).
    #[serde(default)]
    pub max_attempts: Option<i64>,
    /// The jobs' priority (default 0).
    #[serde(default)]
    pub priority: Option<i32>,
    /// Firing (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// Changes to a schedule; absent fields stay.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulePatch {
    /// New pattern.
    #[serde(default)]
    pub cron: Option<String>,
    /// New zone.
    #[serde(default)]
    pub timezone: Option<String>,
    /// New kind.
    #[serde(default)]
    pub kind: Option<String>,
    /// New payload.
    #[serde(default)]
    pub payload: Option<Value>,
    /// New `max_attempts`.
    #[serde(default)]
    pub max_attempts: Option<i64>,
    /// New priority.
    #[serde(default)]
    pub priority: Option<i32>,
    /// Turn firing on or off.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A unique-name violation as a conflict naming the name.
fn name_taken(err: JobError, name: &str) -> JobError {
    match &err {
        JobError::Db(db) if db.kind() == fluxbase_migrations::DbErrorKind::UniqueViolation => {
            JobError::Conflict(format!("name: a schedule named {name:?} exists"))
        }
        _ => err,
    }
}

impl Jobs {
    /// Creates a schedule; its first tick is the first after now.
    pub async fn create_schedule(
        &self,
        caller: &Caller,
        new: NewSchedule,
    ) -> Result<Schedule, JobError> {
        caller.require_all()?;
        super::check_name(&new.name, "name")?;
        let timezone = new.timezone.unwrap_or_else(|| "UTC".into());
        let spec = CronSpec::parse(&new.cron, &timezone)?;
        let work = self.check_work(&new.kind, new.payload, new.max_attempts, caller)?;
        let next = if new.enabled.unwrap_or(true) {
            spec.next_after(SystemTime::now())
        } else {
            None
        };
        let rows = self
            .shared
            .db
            .query(
                &format!(
                    "INSERT INTO jobs.schedules (name, cron, timezone, kind, payload, max_attempts, \
                       priority, enabled, next_run_at, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {SCHEDULE_COLUMNS}"
                ),
                &[
                    &new.name,
                    &new.cron.trim(),
                    &timezone,
                    &new.kind,
                    &work.payload,
                    &work.max_attempts,
                    &new.priority.unwrap_or(0),
                    &new.enabled.unwrap_or(true),
                    &next,
                    &caller.label(),
                ],
            )
            .await
            .map_err(|err| name_taken(err.into(), &new.name))?;
        super::runner::poke_scheduler(&self.shared);
        Schedule::from_row(&rows[0])
    }

    /// Every schedule, by name.
    pub async fn list_schedules(&self, caller: &Caller) -> Result<Vec<Schedule>, JobError> {
        caller.require_all()?;
        let rows = self
            .shared
            .db
            .query(
                &format!("SELECT {SCHEDULE_COLUMNS} FROM jobs.schedules ORDER BY name"),
                &[],
            )
            .await?;
        rows.iter().map(Schedule::from_row).collect()
    }

    /// One schedule.
    pub async fn get_schedule(&self, caller: &Caller, id: Uuid) -> Result<Schedule, JobError> {
        caller.require_all()?;
        let rows = self
            .shared
            .db
            .query(
                &format!("SELECT {SCHEDULE_COLUMNS} FROM jobs.schedules WHERE id = $1"),
                &[&id],
            )
            .await?;
        rows.first()
            .map(Schedule::from_row)
            .unwrap_or_else(|| Err(JobError::not_found("schedule", id)))
    }

    /// Changes a schedule; a new pattern, zone or `enabled` recomputes the next tick.
    pub async fn update_schedule(
        &self,
        caller: &Caller,
        id: Uuid,
        patch: SchedulePatch,
    ) -> Result<Schedule, JobError> {
        let current = self.get_schedule(caller, id).await?;
        let cron = patch.cron.unwrap_or(current.cron);
        let timezone = patch.timezone.unwrap_or(current.timezone);
        let spec = CronSpec::parse(&cron, &timezone)?;
        let kind = patch.kind.unwrap_or(current.kind);
        let payload = Some(patch.payload.unwrap_or(current.payload));
        let max_attempts = Some(patch.max_attempts.unwrap_or(current.max_attempts.into()));
        let work = self.check_work(&kind, payload, max_attempts, caller)?;
        let enabled = patch.enabled.unwrap_or(current.enabled);
        let next = if enabled {
            spec.next_after(SystemTime::now())
        } else {
            None
        };
        let rows = self
            .shared
            .db
            .query(
                &format!(
                    "UPDATE jobs.schedules SET cron = $2, timezone = $3, kind = $4, payload = $5, \
                       max_attempts = $6, priority = $7, enabled = $8, next_run_at = $9, \
                       updated_at = now() \
                     WHERE id = $1 RETURNING {SCHEDULE_COLUMNS}"
                ),
                &[
                    &id,
                    &cron.trim(),
                    &timezone,
                    &kind,
                    &work.payload,
                    &work.max_attempts,
                    &patch.priority.unwrap_or(current.priority),
                    &enabled,
                    &next,
                ],
            )
            .await?;
        super::runner::poke_scheduler(&self.shared);
        rows.first()
            .map(Schedule::from_row)
            .unwrap_or_else(|| Err(JobError::not_found("schedule", id)))
    }

    /// Deletes a schedule (the jobs it submitted stay).
    pub async fn delete_schedule(&self, caller: &Caller, id: Uuid) -> Result<(), JobError> {
        caller.require_all()?;
        let rows = self
            .shared
            .db
            .query(
                "DELETE FROM jobs.schedules WHERE id = $1 RETURNING 1",
                &[&id],
            )
            .await?;
        if rows.is_empty() {
            return Err(JobError::not_found("schedule", id));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(text: &str) -> SystemTime {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
            .into()
    }

    #[test]
    fn five_and_six_fields_in_a_zone() {
        let daily = CronSpec::parse("0 9 * * *", "Europe/Paris").unwrap();
        // 09:00 in Paris is 08:00Z in winter (CET) and 07:00Z in summer (CEST).
        assert_eq!(
            daily.next_after(at("2024-01-15T12:00:00Z")),
            Some(at("2024-01-16T08:00:00Z"))
        );
        assert_eq!(
            daily.next_after(at("2024-07-15T12:00:00Z")),
            Some(at("2024-07-16T07:00:00Z"))
        );
        let every_second = CronSpec::parse("* * * * * *", "UTC").unwrap();
        let t = at("2024-01-01T00:00:00.5Z");
        assert_eq!(every_second.next_after(t), Some(at("2024-01-01T00:00:01Z")));
        // Strictly after: a tick at exactly t is not "next".
        let t = at("2024-01-01T00:00:01Z");
        assert_eq!(every_second.next_after(t), Some(t + Duration::from_secs(1)));
        // Monday is 1, as in Vixie cron (not Quartz's Sunday-is-1).
        let monday = CronSpec::parse("0 0 * * 1", "UTC").unwrap();
        assert_eq!(
            monday.next_after(at("2024-01-01T00:00:00Z")), // a Monday
            Some(at("2024-01-08T00:00:00Z"))
        );
    }

    #[test]
    fn bad_patterns_and_zones_name_their_field() {
        for bad in [
            "",
            "* * * *",
            "* * * * * * *",
            "61 * * * *",
            "* * * * FOO",
            "nonsense",
        ] {
            assert_eq!(
                CronSpec::parse(bad, "UTC").unwrap_err().field(),
                Some("cron"),
                "{bad:?}"
            );
        }
        assert_eq!(
            CronSpec::parse("* * * * *", "Mars/Olympus")
                .unwrap_err()
                .field(),
            Some("timezone")
        );
    }
}
