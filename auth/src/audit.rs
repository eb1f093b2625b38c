//! The security events written to `auth.audit_log_entries` and logged with
//! `log_type=audit`: their names are stable, since operators query them.

/// One kind of audited event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// A user signed up.
    Signup,
    /// A sign-in succeeded.
    Login,
    /// A sign-in failed (the payload says why).
    LoginFailed,
    /// A session ended by sign-out.
    Logout,
    /// A refresh token was rotated.
    TokenRefreshed,
    /// A refresh was refused (expired, unknown, revoked session).
    TokenRefreshFailed,
    /// An already-rotated refresh token was presented: its session was revoked.
    TokenReuseDetected,
    /// A user changed their email, password or metadata.
    UserUpdated,
    /// A service key was created.
    ServiceKeyCreated,
    /// A service key was revoked.
    ServiceKeyRevoked,
    /// A service key was rotated (regenerated).
    ServiceKeyRotated,
    /// A service key was deleted.
    ServiceKeyDeleted,
}

impl AuditAction {
    /// The `action` column and the log field.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Signup => "user_signedup",
            AuditAction::Login => "login",
            AuditAction::LoginFailed => "login_failed",
            AuditAction::Logout => "logout",
            AuditAction::TokenRefreshed => "token_refreshed",
            AuditAction::TokenRefreshFailed => "token_refresh_failed",
            AuditAction::TokenReuseDetected => "token_reuse_detected",
            AuditAction::UserUpdated => "user_modified",
            AuditAction::ServiceKeyCreated => "service_key_created",
            AuditAction::ServiceKeyRevoked => "service_key_revoked",
            AuditAction::ServiceKeyRotated => "service_key_rotated",
            AuditAction::ServiceKeyDeleted => "service_key_deleted",
        }
    }

    /// Whether the event is a success (the `success` field of the log line).
    pub fn success(self) -> bool {
        !matches!(
            self,
            AuditAction::LoginFailed
                | AuditAction::TokenRefreshFailed
                | AuditAction::TokenReuseDetected
        )
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
