//! The text of each email and the RFC 5322 message around it: plain text in UTF-8, the body
//! base64-encoded (no line is ever too long or starts with a dot), headers only from
//! addresses the email policy accepted and subjects of our own.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::OutgoingEmail;
use crate::one_time::Purpose;
use crate::sessions::random_base64url;

/// Subject and body of an email of `purpose`.
fn content(purpose: Purpose, link: &str, code: &str, ttl: Duration) -> (&'static str, String) {
    let minutes = ttl.as_secs().div_ceil(60).max(1);
    let (subject, intro) = match purpose {
        Purpose::Confirmation => (
            "Confirm your signup",
            "Follow this link to confirm your email address:",
        ),
        Purpose::MagicLink => ("Your sign-in link", "Follow this link to sign in:"),
        Purpose::Recovery => (
            "Reset your password",
            "Follow this link to sign in and choose a new password:",
        ),
        Purpose::EmailChange => (
            "Confirm your new email address",
            "Follow this link to confirm this address as your new one:",
        ),
        Purpose::Invite => (
            "You have been invited",
            "Follow this link to accept the invitation:",
        ),
    };
    let body = format!(
        "{intro}\r\n\r\n{link}\r\n\r\nOr enter this code: {code}\r\n\r\n\
         The link and the code work once, for {minutes} minutes. If you did not ask for \
         this email, ignore it.\r\n"
    );
    (subject, body)
}

/// The domain of an address (for the `Message-ID`).
fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("localhost", |(_, d)| d)
}

/// The whole message, CRLF line endings, ready for `DATA`.
pub(crate) fn compose(from: &str, email: &OutgoingEmail) -> String {
    let (subject, body) = content(email.purpose, &email.link, &email.code, email.ttl);
    let encoded = STANDARD.encode(body.as_bytes());
    let mut lines = String::with_capacity(encoded.len() + encoded.len() / 76 * 2 + 2);
    for chunk in encoded.as_bytes().chunks(76) {
        lines.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        lines.push_str("\r\n");
    }
    let date = chrono::Utc::now().to_rfc2822();
    let id = random_base64url(18);
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n\
         Message-ID: <{id}@{domain}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\
         X-Fluxbase-Email: {kind}\r\n\r\n{lines}",
        to = email.to,
        domain = domain_of(from),
        kind = email.purpose.as_str(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn the_message_carries_the_link_and_code_in_a_plain_text_body() {
        let email = OutgoingEmail {
            purpose: Purpose::Recovery,
            to: "ada@example.com".into(),
            user_id: Uuid::nil(),
            link: "https://api.example.com/auth/v1/verify?token=abc&type=recovery".into(),
            code: "012345".into(),
            ttl: Duration::from_secs(3600),
        };
        let text = compose("noreply@example.com", &email);
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("Subject: Reset your password\r\n"), "{head}");
        assert!(head.contains("To: ada@example.com\r\n"));
        assert!(head.contains("@example.com>\r\n"));
        assert!(head.lines().all(|l| l.len() < 998));
        assert!(body.lines().all(|l| l.len() <= 76 && !l.starts_with('.')));
        let decoded = STANDARD.decode(body.replace("\r\n", "")).unwrap();
        let decoded = String::from_utf8(decoded).unwrap();
        assert!(
            decoded.contains(&email.link) && decoded.contains("012345"),
            "{decoded}"
        );
        assert!(decoded.contains("60 minutes"), "{decoded}");
    }
}
