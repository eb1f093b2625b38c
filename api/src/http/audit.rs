//! Audit trail: every security event becomes a row in `auth.audit_log_entries` and a log
//! line with `log_type="audit"` and `success`, so both `SELECT … FROM auth.audit_log_entries`
//! and `jq 'select(.log_type=="audit")'` find it. Payloads never hold a password or token.

use std::net::IpAddr;

use fluxbase_auth::audit::AuditAction;
use serde_json::Value;
use uuid::Uuid;

use super::AppState;

/// Records one event. A failed insert is logged, not returned: the request's outcome does
/// not depend on the audit table, and the log line is written either way.
pub async fn record(
    state: &AppState,
    action: AuditAction,
    actor: Option<Uuid>,
    ip: IpAddr,
    payload: Value,
) {
    let success = action.success();
    let actor_text = actor.map(|a| a.to_string());
    if success {
        tracing::info!(
            log_type = "audit",
            action = action.as_str(),
            success,
            actor_id = actor_text.as_deref(),
            ip = %ip,
            payload = %payload,
            "audit event"
        );
    } else {
        tracing::warn!(
            log_type = "audit",
            action = action.as_str(),
            success,
            actor_id = actor_text.as_deref(),
            ip = %ip,
            payload = %payload,
            "audit event"
        );
    }
    let result = state
        .db
        .query(
            "INSERT INTO auth.audit_log_entries (actor_id, action, ip, payload) VALUES ($1, $2, $3, $4)",
            &[&actor, &action.as_str(), &ip, &payload],
        )
        .await;
    if let Err(err) = result {
        tracing::error!(error = %err, action = action.as_str(), "could not write the audit log entry");
    }
}

/// Counts one authentication attempt in `fluxbase_auth_attempts_total{result,reason}`.
pub fn count_attempt(success: bool, reason: &'static str) {
    let result = if success { "success" } else { "failure" };
    metrics::counter!("fluxbase_auth_attempts_total", "result" => result, "reason" => reason)
        .increment(1);
}
