//! The email sender of the auth service: the confirmation, magic-link, recovery, email-change
//! and invitation emails of [`crate::verification`].
//!
//! With `auth.smtp.host` set, each email is delivered by the small SMTP client of [`smtp`]
//! on a task of its own (a request never waits for the mail server, and an unknown address
//! answers as fast as a known one); at most [`MAX_IN_FLIGHT`] deliveries run at once and the
//! rest are dropped with an error line. Without SMTP, each email is a log line: with
//! `auth.email_log_links` (development only) it carries the link and the code, otherwise
//! neither is ever logged. Every email is counted in
//! `fluxbase_auth_emails_total{kind,result}`.

mod message;
mod settings;
pub mod smtp;

pub use settings::{EmailSettings, SenderSettings, SmtpSettings, SmtpTls};

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_rustls::rustls::ClientConfig;
use uuid::Uuid;

use crate::one_time::{Purpose, Secrets};
use crate::verification::Links;

/// Deliveries in flight at most; more are dropped (and logged), never queued without bound.
pub const MAX_IN_FLIGHT: usize = 64;

/// One email to send.
#[derive(Clone)]
pub struct OutgoingEmail {
    /// What it is for.
    pub purpose: Purpose,
    /// The recipient.
    pub to: String,
    /// The account it concerns (logged instead of the address).
    pub user_id: Uuid,
    /// The link to follow (carries the link token).
    pub link: String,
    /// The code to type in.
    pub code: String,
    /// How long both work.
    pub ttl: Duration,
}

impl std::fmt::Debug for OutgoingEmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingEmail")
            .field("purpose", &self.purpose)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl OutgoingEmail {
    /// The email of a token of `purpose` sent to `to`.
    pub(crate) fn new(
        purpose: Purpose,
        to: &str,
        user_id: Uuid,
        links: &Links,
        secrets: &Secrets,
        ttl: Duration,
    ) -> OutgoingEmail {
        OutgoingEmail {
            purpose,
            to: to.to_string(),
            user_id,
            link: links.action_link(purpose, &secrets.link_token),
            code: secrets.code.clone(),
            ttl,
        }
    }
}

/// Counts one email in `fluxbase_auth_emails_total`.
fn count(purpose: Purpose, result: &'static str) {
    metrics::counter!("fluxbase_auth_emails_total", "kind" => purpose.as_str(), "result" => result)
        .increment(1);
}

/// Sends emails as configured; cheap to share (the service holds one).
pub(crate) struct Mailer {
    sender: SenderSettings,
    /// The TLS client configuration, built on first use (system roots and `ca_file`).
    tls: OnceLock<Result<Arc<ClientConfig>, String>>,
    /// Delivery slots.
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer sending through `sender`.
    pub(crate) fn new(sender: SenderSettings) -> Mailer {
        if sender == (SenderSettings::Log { reveal_links: true }) {
            tracing::warn!(
                "auth.email_log_links is on: the sign-in links and codes of emails are written to the log (development only)"
            );
        }
        Mailer {
            sender,
            tls: OnceLock::new(),
            slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Sends `email` (logs it without SMTP). Never waits for the mail server: delivery runs
    /// on its own task and its failure is logged and counted.
    pub(crate) fn send(&self, email: OutgoingEmail) {
        let kind = email.purpose.as_str();
        let settings = match &self.sender {
            SenderSettings::Log { reveal_links } => {
                if *reveal_links {
                    tracing::warn!(
                        email_kind = kind,
                        user_id = %email.user_id,
                        link = %email.link,
                        code = %email.code,
                        "email not sent (no auth.smtp.host); auth.email_log_links is on, so its link and code are logged"
                    );
                } else {
                    tracing::info!(
                        email_kind = kind,
                        user_id = %email.user_id,
                        "email not sent: no SMTP server is configured (auth.smtp.host)"
                    );
                }
                count(email.purpose, "logged");
                return;
            }
            SenderSettings::Smtp(settings) => settings.clone(),
        };
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            tracing::error!(email_kind = kind, user_id = %email.user_id, "email dropped: too many deliveries in flight");
            count(email.purpose, "dropped");
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(email_kind = kind, user_id = %email.user_id, "email dropped: no runtime to deliver it on");
            count(email.purpose, "dropped");
            return;
        };
        let tls = match settings.tls {
            SmtpTls::None => None,
            SmtpTls::StartTls | SmtpTls::Implicit => match self.tls_config(&settings) {
                Ok(config) => Some(config),
                Err(err) => {
                    tracing::error!(error = %err, email_kind = kind, "email not sent: no TLS configuration");
                    count(email.purpose, "failed");
                    return;
                }
            },
        };
        runtime.spawn(async move {
            let _permit = permit;
            let message = message::compose(&settings.from, &email);
            match smtp::deliver(&settings, tls, &email.to, &message).await {
                Ok(()) => {
                    tracing::info!(email_kind = kind, user_id = %email.user_id, "email sent");
                    count(email.purpose, "sent");
                }
                Err(err) => {
                    tracing::error!(error = %err, email_kind = kind, user_id = %email.user_id, "email could not be sent");
                    count(email.purpose, "failed");
                }
            }
        });
    }

    /// The TLS client configuration, built once.
    fn tls_config(&self, settings: &SmtpSettings) -> Result<Arc<ClientConfig>, String> {
        self.tls
            .get_or_init(|| {
                smtp::client_config(settings.ca_file.as_deref()).map_err(|e| e.to_string())
            })
            .clone()
    }
}
