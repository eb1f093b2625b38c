//! What the email flow is configured with (`auth.email_*`, `auth.otp_ttl`, `auth.site_url`,
//! `auth.redirect_urls`, `auth.smtp.*`; the binary fills it).

use std::path::PathBuf;
use std::time::Duration;

/// The email flow of application users: confirmation, recovery, magic links, email change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSettings {
    /// `auth.email_confirmation`: a new address must be confirmed by a link or code before it
    /// signs in with a password (and an email change waits for the new address to confirm).
    /// Off: addresses count as confirmed at once (GoTrue's `MAILER_AUTOCONFIRM`).
    pub confirmation_required: bool,
    /// `auth.otp_ttl`: how long a link or code works.
    pub otp_ttl: Duration,
    /// `auth.email_min_interval`: the shortest time between two emails of one purpose to one
    /// account.
    pub min_interval: Duration,
    /// The public URL of `/auth/v1/verify` that links point to (from `server.base_url`); the
    /// HTTP layer supplies one from the request when unset.
    pub verify_url: Option<String>,
    /// `auth.site_url`: where a verified link lands when the client names no (allowed)
    /// `redirect_to`.
    pub site_url: Option<String>,
    /// `auth.redirect_urls`: the other allowed `redirect_to` targets (prefixes).
    pub redirect_urls: Vec<String>,
    /// How emails leave.
    pub sender: SenderSettings,
}

impl Default for EmailSettings {
    fn default() -> Self {
        EmailSettings {
            confirmation_required: false,
            otp_ttl: Duration::from_secs(3600),
            min_interval: Duration::from_secs(60),
            verify_url: None,
            site_url: None,
            redirect_urls: Vec::new(),
            sender: SenderSettings::Log {
                reveal_links: false,
            },
        }
    }
}

/// How emails leave the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderSettings {
    /// No SMTP server: each email becomes a log line. With `reveal_links`
    /// (`auth.email_log_links`, for development) the line carries the link and the code, so
    /// an operator can complete the flow; otherwise neither is ever logged.
    Log {
        /// Whether the link and code are logged.
        reveal_links: bool,
    },
    /// An SMTP server (`auth.smtp.*`).
    Smtp(SmtpSettings),
}

/// How the SMTP connection is protected (`auth.smtp.tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text (a relay on the same host or network).
    None,
    /// `STARTTLS` after the greeting (port 587); refused if the server does not offer it.
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
}

/// `auth.smtp.*`
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    /// Server host name (also the name its certificate must carry).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// `AUTH` user name, if the server needs one.
    pub username: Option<String>,
    /// `AUTH` password; never logged.
    pub password: Option<String>,
    /// The sender address (`From:` and `MAIL FROM`).
    pub from: String,
    /// Transport protection.
    pub tls: SmtpTls,
    /// Extra trusted root certificates (PEM), beside the system's.
    pub ca_file: Option<PathBuf>,
    /// Limit on connecting and on each command's answer.
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("from", &self.from)
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smtp_password_never_shows_in_debug() {
        let s = SmtpSettings {
            host: "smtp.example.com".into(),
            port: 587,
            username: Some("mailer".into()),
            password: Some("hunter2-secret".into()),
            from: "noreply@example.com".into(),
            tls: SmtpTls::StartTls,
            ca_file: None,
            timeout: Duration::from_secs(10),
        };
        let text = format!(
            "{:?}",
            EmailSettings {
                sender: SenderSettings::Smtp(s),
                ..EmailSettings::default()
            }
        );
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("smtp.example.com") && text.contains("***"),
            "{text}"
        );
    }
}
