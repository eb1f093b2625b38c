//! `auth.*` and `dashboard.*`: token signing and lifetimes, password rules and hashing
//! bounds, the email flow (`auth.email_*`, `auth.otp_ttl`, `auth.site_url`,
//! `auth.redirect_urls`, `auth.smtp.*`), the dashboard lockout; and the auth service's
//! settings built from them.

use serde::{Deserialize, Serialize};

use super::Dur;

/// Default `auth.access_token_ttl`: one hour, as Supabase.
pub const DEFAULT_ACCESS_TOKEN_TTL: Dur = Dur::secs(3600);
/// Default `auth.refresh_token_ttl`: 30 days of inactivity ends a session.
pub const DEFAULT_REFRESH_TOKEN_TTL: Dur = Dur::secs(30 * 24 * 3600);
/// Default `auth.password_min_length`.
pub const DEFAULT_PASSWORD_MIN_LENGTH: u32 = 8;
/// Default `auth.service_key_rotation_grace`: a rotated key stops at once.
pub const DEFAULT_SERVICE_KEY_ROTATION_GRACE: Dur = Dur::secs(0);
/// Default `auth.jwt_leeway`: clock skew tolerated on a token's `nbf`.
pub const DEFAULT_JWT_LEEWAY: Dur = Dur::secs(5);
/// Default `auth.password_hash_queue`: hashes waiting for a slot before new ones are shed.
pub const DEFAULT_PASSWORD_HASH_QUEUE: u32 = 8;
/// Default `auth.otp_ttl`: how long an emailed link or code works (GoTrue's 1 hour).
pub const DEFAULT_OTP_TTL: Dur = Dur::secs(3600);
/// Longest `auth.otp_ttl` accepted.
pub const MAX_OTP_TTL: Dur = Dur::secs(24 * 3600);
/// Default `auth.email_min_interval`: one email of a purpose per account per minute.
pub const DEFAULT_EMAIL_MIN_INTERVAL: Dur = Dur::secs(60);
/// Default `auth.smtp.port`: submission with STARTTLS.
pub const DEFAULT_SMTP_PORT: u16 = 587;
/// Default `auth.smtp.timeout`.
pub const DEFAULT_SMTP_TIMEOUT: Dur = Dur::secs(10);

/// `auth.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 secret (`FLUXBASE_JWT_SECRET`). Required with a real database; generated and
    /// kept in `.fluxbase/jwt-secret` in embedded mode.
    pub jwt_secret: Option<String>,
    /// Lifetime of application-user access tokens.
    pub access_token_ttl: Dur,
    /// A refresh token unused for this long no longer refreshes (each use issues a new one).
    pub refresh_token_ttl: Dur,
    /// Shortest password accepted at signup and password change (in characters).
    pub password_min_length: u32,
    /// How long a service key keeps working after it is rotated.
    pub service_key_rotation_grace: Dur,
    /// How far in the future a token's `nbf` may be and still count as valid (clock skew
    /// of other issuers); `exp` gets no leeway.
    pub jwt_leeway: Dur,
    /// Password hashes (argon2id, 19 MiB each) running at once; 0: the number of cores.
    pub password_hash_concurrency: u32,
    /// Hashes waiting for a slot; beyond, sign-ins and sign-ups get 503 `overloaded` with
    /// `Retry-After`.
    pub password_hash_queue: u32,
    /// A new address must be confirmed (link or code by email) before it signs in with a
    /// password, and an email change waits for the new address; off, addresses count as
    /// confirmed at once (GoTrue's `MAILER_AUTOCONFIRM=true`, `supabase start`'s default).
    pub email_confirmation: bool,
    /// How long an emailed link or code works.
    pub otp_ttl: Dur,
    /// Shortest time between two emails of one purpose to one account (429
    /// `over_email_send_rate_limit` on `/auth/v1`).
    pub email_min_interval: Dur,
    /// Without `auth.smtp.host`, log each email's link and code so a developer can follow
    /// them. Never in production: they sign in as the account.
    pub email_log_links: bool,
    /// Where verified links land by default (GoTrue's `SITE_URL`); a `redirect_to` under its
    /// origin is allowed.
    pub site_url: Option<String>,
    /// Other allowed `redirect_to` prefixes (GoTrue's `URI_ALLOW_LIST`; a trailing `*` is
    /// ignored).
    pub redirect_urls: Vec<String>,
    /// The SMTP server emails leave through; unset, each email is a log line.
    pub smtp: SmtpConfig,
}

/// `auth.smtp.tls`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTlsMode {
    /// Plain text (a relay on the same host or network).
    None,
    /// `STARTTLS` after the greeting (port 587); refused when not offered.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// `auth.smtp.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Server host; setting it turns SMTP on.
    pub host: Option<String>,
    /// Server port.
    pub port: u16,
    /// `AUTH` user name.
    pub user: Option<String>,
    /// `AUTH` password (secret).
    pub password: Option<String>,
    /// Sender address.
    pub from: Option<String>,
    /// `none`, `starttls` or `tls`.
    pub tls: SmtpTlsMode,
    /// A PEM file of extra trusted root certificates (a private CA).
    pub ca_file: Option<String>,
    /// Limit on connecting and on each answer of the server.
    pub timeout: Dur,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: None,
            port: DEFAULT_SMTP_PORT,
            user: None,
            password: None,
            from: None,
            tls: SmtpTlsMode::Starttls,
            ca_file: None,
            timeout: DEFAULT_SMTP_TIMEOUT,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: None,
            access_token_ttl: DEFAULT_ACCESS_TOKEN_TTL,
            refresh_token_ttl: DEFAULT_REFRESH_TOKEN_TTL,
            password_min_length: DEFAULT_PASSWORD_MIN_LENGTH,
            service_key_rotation_grace: DEFAULT_SERVICE_KEY_ROTATION_GRACE,
            jwt_leeway: DEFAULT_JWT_LEEWAY,
            password_hash_concurrency: 0,
            password_hash_queue: DEFAULT_PASSWORD_HASH_QUEUE,
            email_confirmation: false,
            otp_ttl: DEFAULT_OTP_TTL,
            email_min_interval: DEFAULT_EMAIL_MIN_INTERVAL,
            email_log_links: false,
            site_url: None,
            redirect_urls: Vec::new(),
            smtp: SmtpConfig::default(),
        }
    }
}

/// Default `dashboard.max_failed_logins`: consecutive failures that lock an account.
pub const DEFAULT_MAX_FAILED_LOGINS: u32 = 5;
/// Default `dashboard.lockout_duration`.
pub const DEFAULT_LOCKOUT_DURATION: Dur = Dur::secs(15 * 60);
/// Default `dashboard.access_token_ttl`: admin tokens are short-lived, refreshed often.
pub const DEFAULT_DASHBOARD_ACCESS_TOKEN_TTL: Dur = Dur::secs(15 * 60);
/// Default `dashboard.refresh_token_ttl`: an admin unseen for a day logs in again.
pub const DEFAULT_DASHBOARD_REFRESH_TOKEN_TTL: Dur = Dur::secs(24 * 3600);
/// Default `dashboard.password_min_length`: stricter than application users.
pub const DEFAULT_DASHBOARD_PASSWORD_MIN_LENGTH: u32 = 12;

/// `dashboard.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// Consecutive failed logins (password or 2FA code) that lock an account.
    pub max_failed_logins: u32,
    /// How long a locked account refuses every login, even with the right password.
    pub lockout_duration: Dur,
    /// Lifetime of admin access tokens.
    pub access_token_ttl: Dur,
    /// A refresh token older than this no longer refreshes (each use issues a new one).
    pub refresh_token_ttl: Dur,
    /// Shortest admin password accepted (in characters).
    pub password_min_length: u32,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            max_failed_logins: DEFAULT_MAX_FAILED_LOGINS,
            lockout_duration: DEFAULT_LOCKOUT_DURATION,
            access_token_ttl: DEFAULT_DASHBOARD_ACCESS_TOKEN_TTL,
            refresh_token_ttl: DEFAULT_DASHBOARD_REFRESH_TOKEN_TTL,
            password_min_length: DEFAULT_DASHBOARD_PASSWORD_MIN_LENGTH,
        }
    }
}

impl super::Config {
    /// The auth service's settings from `auth.*` and `dashboard.*`.
    pub fn auth_settings(&self) -> fluxbase_auth::AuthSettings {
        let (auth, dash) = (&self.auth, &self.dashboard);
        fluxbase_auth::AuthSettings {
            app: fluxbase_auth::RealmSettings {
                access_token_ttl: auth.access_token_ttl.get(),
                refresh_token_ttl: auth.refresh_token_ttl.get(),
                password_min_length: auth.password_min_length as usize,
            },
            dashboard: fluxbase_auth::RealmSettings {
                access_token_ttl: dash.access_token_ttl.get(),
                refresh_token_ttl: dash.refresh_token_ttl.get(),
                password_min_length: dash.password_min_length as usize,
            },
            lockout: fluxbase_auth::LockoutSettings {
                max_failed_logins: dash.max_failed_logins,
                duration: dash.lockout_duration.get(),
            },
            service_key_rotation_grace: auth.service_key_rotation_grace.get(),
            jwt_leeway: auth.jwt_leeway.get(),
            hashing: fluxbase_auth::password::HashingSettings {
                concurrency: auth.password_hash_concurrency as usize,
                queue: auth.password_hash_queue as usize,
            },
            email: self.email_settings(),
        }
    }

    /// The email flow's settings from `auth.*` and `server.base_url`.
    fn email_settings(&self) -> fluxbase_auth::EmailSettings {
        let auth = &self.auth;
        let smtp = &auth.smtp;
        let sender = match (&smtp.host, &smtp.from) {
            (Some(host), Some(from)) => {
                fluxbase_auth::SenderSettings::Smtp(fluxbase_auth::SmtpSettings {
                    host: host.clone(),
                    port: smtp.port,
                    username: smtp.user.clone(),
                    password: smtp.password.clone(),
                    from: from.clone(),
                    tls: match smtp.tls {
                        SmtpTlsMode::None => fluxbase_auth::SmtpTls::None,
                        SmtpTlsMode::Starttls => fluxbase_auth::SmtpTls::StartTls,
                        SmtpTlsMode::Tls => fluxbase_auth::SmtpTls::Implicit,
                    },
                    ca_file: smtp.ca_file.as_ref().map(std::path::PathBuf::from),
                    timeout: smtp.timeout.get(),
                })
            }
            _ => fluxbase_auth::SenderSettings::Log {
                reveal_links: auth.email_log_links,
            },
        };
        fluxbase_auth::EmailSettings {
            confirmation_required: auth.email_confirmation,
            otp_ttl: auth.otp_ttl.get(),
            min_interval: auth.email_min_interval.get(),
            verify_url: self
                .server
                .base_url
                .as_deref()
                .map(|base| format!("{}/auth/v1/verify", base.trim_end_matches('/'))),
            site_url: auth.site_url.clone(),
            redirect_urls: auth.redirect_urls.clone(),
            sender,
        }
    }

    /// The rules of the email flow's keys; each error names its key.
    pub(super) fn auth_email_rules(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, key: &str, msg: String| {
            if !ok {
                errors.push((key.to_string(), msg));
            }
        };
        let auth = &self.auth;
        let http_url = |u: &str| {
            (u.starts_with("https://") || u.starts_with("http://"))
                && u.len() > "https://".len()
                && !u.chars().any(|c| c.is_whitespace() || c.is_control())
        };
        check(
            !auth.otp_ttl.get().is_zero() && auth.otp_ttl <= MAX_OTP_TTL,
            "auth.otp_ttl",
            "must be more than 0s and at most 24h".into(),
        );
        if let Some(site) = &auth.site_url {
            check(
                http_url(site),
                "auth.site_url",
                "must be an http:// or https:// URL".into(),
            );
        }
        for url in &auth.redirect_urls {
            check(
                http_url(url),
                "auth.redirect_urls",
                format!("{url:?} is not an http:// or https:// URL"),
            );
        }
        let smtp = &auth.smtp;
        let Some(host) = &smtp.host else {
            return errors;
        };
        check(
            !host.trim().is_empty(),
            "auth.smtp.host",
            "must not be empty".into(),
        );
        check(
            smtp.from
                .as_deref()
                .is_some_and(|f| fluxbase_auth::email::new_address(f).is_ok()),
            "auth.smtp.from",
            "must be a plain email address (the sender) when auth.smtp.host is set".into(),
        );
        check(
            self.server.base_url.as_deref().is_some_and(http_url),
            "server.base_url",
            "must be set (an http:// or https:// URL) when auth.smtp.host is set: the links in \
             emails point there"
                .into(),
        );
        check(smtp.port >= 1, "auth.smtp.port", "must be 1-65535".into());
        check(
            smtp.user.is_some() == smtp.password.is_some(),
            "auth.smtp.password",
            "auth.smtp.user and auth.smtp.password go together".into(),
        );
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        check(
            !(smtp.user.is_some() && smtp.tls == SmtpTlsMode::None && !loopback),
            "auth.smtp.tls",
            "is none: the credentials would cross the network in clear text (use starttls or tls)"
                .into(),
        );
        check(
            !smtp.timeout.get().is_zero(),
            "auth.smtp.timeout",
            "must be more than 0s".into(),
        );
        if let Some(path) = &smtp.ca_file {
            check(
                std::fs::metadata(path).is_ok_and(|m| m.is_file()),
                "auth.smtp.ca_file",
                format!("{path:?} is not a readable file"),
            );
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    /// The keys named by the errors of `config`.
    fn failing(config: &Config) -> Vec<String> {
        config.validate().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn smtp_needs_a_sender_a_base_url_and_protected_credentials() {
        let mut c = Config::default();
        assert!(failing(&c).is_empty());
        c.auth.smtp.host = Some("smtp.example.com".into());
        assert_eq!(failing(&c), ["auth.smtp.from", "server.base_url"]);
        c.auth.smtp.from = Some("noreply@example.com".into());
        c.server.base_url = Some("https://api.example.com".into());
        assert!(failing(&c).is_empty());
        c.auth.smtp.user = Some("mailer".into());
        assert_eq!(failing(&c), ["auth.smtp.password"]);
        c.auth.smtp.password = Some("secret".into());
        c.auth.smtp.tls = SmtpTlsMode::None;
        assert_eq!(failing(&c), ["auth.smtp.tls"]);
        c.auth.smtp.host = Some("127.0.0.1".into());
        assert!(failing(&c).is_empty(), "credentials may stay on loopback");
        c.auth.smtp.ca_file = Some("/nonexistent/ca.pem".into());
        assert_eq!(failing(&c), ["auth.smtp.ca_file"]);
        c.auth.smtp.ca_file = None;
        c.auth.otp_ttl = Dur::secs(0);
        c.auth.site_url = Some("app.example.com".into());
        c.auth.redirect_urls = vec!["javascript:x".into()];
        assert_eq!(
            failing(&c),
            ["auth.otp_ttl", "auth.site_url", "auth.redirect_urls"]
        );
    }

    #[test]
    fn email_settings_follow_the_keys_and_hide_the_password() {
        let mut c = Config::default();
        let email = c.auth_settings().email;
        assert!(!email.confirmation_required);
        assert_eq!(
            email.sender,
            fluxbase_auth::SenderSettings::Log {
                reveal_links: false
            }
        );
        assert_eq!(email.verify_url, None);
        c.server.base_url = Some("https://api.example.com/".into());
        c.auth.email_confirmation = true;
        c.auth.smtp.host = Some("smtp.example.com".into());
        c.auth.smtp.from = Some("noreply@example.com".into());
        c.auth.smtp.user = Some("mailer".into());
        c.auth.smtp.password = Some("hunter2-smtp".into());
        c.auth.smtp.tls = SmtpTlsMode::Tls;
        let email = c.auth_settings().email;
        assert!(email.confirmation_required);
        assert_eq!(
            email.verify_url.as_deref(),
            Some("https://api.example.com/auth/v1/verify")
        );
        let fluxbase_auth::SenderSettings::Smtp(smtp) = &email.sender else {
            panic!("{email:?}")
        };
        assert_eq!(smtp.tls, fluxbase_auth::SmtpTls::Implicit);
        assert_eq!(smtp.port, DEFAULT_SMTP_PORT);
        assert_eq!(c.redacted()["auth"]["smtp"]["password"], "***");
        assert!(!format!("{:?}", c.auth_settings()).contains("hunter2"));
    }

    #[test]
    fn smtp_keys_come_from_the_environment() {
        let env = [
            ("FLUXBASE_AUTH_SMTP_HOST", "smtp.example.com"),
            ("FLUXBASE_AUTH_SMTP_PORT", "2525"),
            ("FLUXBASE_AUTH_SMTP_TLS", "none"),
            ("FLUXBASE_AUTH_SMTP_FROM", "noreply@example.com"),
            ("FLUXBASE_AUTH_EMAIL_CONFIRMATION", "true"),
            ("FLUXBASE_AUTH_OTP_TTL", "15m"),
            (
                "FLUXBASE_AUTH_REDIRECT_URLS",
                "http://localhost:3000/*, https://app.example.com",
            ),
            ("FLUXBASE_BASE_URL", "https://api.example.com"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let path =
            std::env::temp_dir().join(format!("fluxbase-smtp-config-{}.yaml", std::process::id()));
        std::fs::write(&path, "").unwrap();
        let loaded = super::super::load(Some(&path), env);
        let _ = std::fs::remove_file(&path);
        let c = loaded.unwrap().config;
        assert_eq!(c.auth.smtp.host.as_deref(), Some("smtp.example.com"));
        assert_eq!(c.auth.smtp.port, 2525);
        assert_eq!(c.auth.smtp.tls, SmtpTlsMode::None);
        assert!(c.auth.email_confirmation);
        assert_eq!(c.auth.otp_ttl, Dur::secs(900));
        assert_eq!(
            c.auth.redirect_urls,
            ["http://localhost:3000/*", "https://app.example.com"]
        );
    }
}
