//! The two kinds of user. They live in their own schemas (`auth` for application users,
//! `dashboard` for administrators) but share one session semantics: the tables below have
//! the same shape, so the session code is written once and told which realm it serves.

/// Application users or dashboard administrators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Realm {
    /// `auth.users`, `auth.sessions`, `auth.refresh_tokens`, `auth.audit_log_entries`.
    App,
    /// `dashboard.users`, `dashboard.sessions`, `dashboard.refresh_tokens`,
    /// `dashboard.activity_log`.
    Dashboard,
}

impl Realm {
    /// `app` or `dashboard` (the `scope` of audit log lines).
    pub fn as_str(self) -> &'static str {
        match self {
            Realm::App => "app",
            Realm::Dashboard => "dashboard",
        }
    }

    /// The sessions table (a constant of this crate, never client text).
    pub(crate) fn sessions(self) -> &'static str {
        match self {
            Realm::App => "auth.sessions",
            Realm::Dashboard => "dashboard.sessions",
        }
    }

    /// The refresh tokens table.
    pub(crate) fn refresh_tokens(self) -> &'static str {
        match self {
            Realm::App => "auth.refresh_tokens",
            Realm::Dashboard => "dashboard.refresh_tokens",
        }
    }

    /// The session column a refresh touches (the tables predate their sharing).
    pub(crate) fn touched_column(self) -> &'static str {
        match self {
            Realm::App => "updated_at",
            Realm::Dashboard => "last_used_at",
        }
    }
}
