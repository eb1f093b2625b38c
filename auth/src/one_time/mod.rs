//! One-time tokens of the email flow (`auth.one_time_tokens`): what they are for
//! ([`Purpose`]), which a client's verification `type` accepts ([`VerifyType`]), and their
//! secrets ([`Secrets`]).
//!
//! Each token has two secrets: a **link token** (256 random bits, the `token` of the link in
//! the email and the `token_hash` clients verify with) and a six-digit **code** (typed in by
//! hand, verified with the address). Only their SHA-256 is stored; the code's hash covers
//! the address, so a code is only good for the address it was sent to. A code can be
//! guessed, so every wrong one counts against the tokens of its address and
//! [`MAX_CODE_ATTEMPTS`] wrong ones void them.

mod store;

pub(crate) use store::{Consumed, TokenStore};

use rand::Rng;

use crate::sessions::{hash_secret, random_base64url};

/// Wrong codes after which the outstanding tokens of an address stop working.
pub const MAX_CODE_ATTEMPTS: i32 = 5;

/// Digits of a code.
pub const CODE_DIGITS: usize = 6;

/// What a token was sent for (`auth.one_time_tokens.token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Confirms a new account's address (signup, or a first passwordless sign-in).
    Confirmation,
    /// Signs an account in without a password.
    MagicLink,
    /// Signs an account in to set a new password.
    Recovery,
    /// Confirms a new address (the token is sent to it).
    EmailChange,
    /// Accepts an invitation by an administrator.
    Invite,
}

impl Purpose {
    /// The `token_type` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Confirmation => "confirmation",
            Purpose::MagicLink => "magiclink",
            Purpose::Recovery => "recovery",
            Purpose::EmailChange => "email_change",
            Purpose::Invite => "invite",
        }
    }

    /// The verification `type` a link of this purpose carries (GoTrue's names).
    pub fn verify_type(self) -> VerifyType {
        match self {
            Purpose::Confirmation => VerifyType::Signup,
            Purpose::MagicLink => VerifyType::MagicLink,
            Purpose::Recovery => VerifyType::Recovery,
            Purpose::EmailChange => VerifyType::EmailChange,
            Purpose::Invite => VerifyType::Invite,
        }
    }
}

/// The `type` a client verifies with, and the purposes each accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyType {
    /// `signup`: a confirmation.
    Signup,
    /// `invite`: an invitation.
    Invite,
    /// `magiclink`: a magic link (or the confirmation a first passwordless sign-in sends).
    MagicLink,
    /// `recovery`: a password recovery.
    Recovery,
    /// `email_change`: a new address.
    EmailChange,
    /// `email`: any email sign-in code — confirmation, magic link or invitation.
    Email,
}

impl VerifyType {
    /// `signup`, `invite`, `magiclink`, `recovery`, `email_change`, `email`.
    pub fn parse(text: &str) -> Option<VerifyType> {
        Some(match text {
            "signup" => VerifyType::Signup,
            "invite" => VerifyType::Invite,
            "magiclink" => VerifyType::MagicLink,
            "recovery" => VerifyType::Recovery,
            "email_change" => VerifyType::EmailChange,
            "email" => VerifyType::Email,
            _ => return None,
        })
    }

    /// The client's name of this type.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyType::Signup => "signup",
            VerifyType::Invite => "invite",
            VerifyType::MagicLink => "magiclink",
            VerifyType::Recovery => "recovery",
            VerifyType::EmailChange => "email_change",
            VerifyType::Email => "email",
        }
    }

    /// The purposes whose tokens this type accepts.
    pub fn purposes(self) -> &'static [Purpose] {
        match self {
            VerifyType::Signup => &[Purpose::Confirmation],
            VerifyType::Invite => &[Purpose::Invite],
            VerifyType::MagicLink => &[Purpose::MagicLink, Purpose::Confirmation],
            VerifyType::Recovery => &[Purpose::Recovery],
            VerifyType::EmailChange => &[Purpose::EmailChange],
            VerifyType::Email => &[Purpose::Confirmation, Purpose::MagicLink, Purpose::Invite],
        }
    }
}

/// The two secrets of a new token, handed out once (in the email, or to an administrator).
#[derive(Clone)]
pub struct Secrets {
    /// The link token (base64url, 43 characters).
    pub link_token: String,
    /// The six-digit code.
    pub code: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

impl Secrets {
    /// Fresh secrets from the thread CSPRNG.
    pub fn generate() -> Secrets {
        let n: u32 = rand::rng().random_range(0..10u32.pow(CODE_DIGITS as u32));
        Secrets {
            link_token: random_base64url(32),
            code: format!("{n:0width$}", width = CODE_DIGITS),
        }
    }
}

/// The stored hash of a link token.
pub fn link_hash(link_token: &str) -> String {
    hash_secret(link_token)
}

/// The stored hash of a code sent to `address` (lower case).
pub fn code_hash(address: &str, code: &str) -> String {
    hash_secret(&format!("{address}:{code}"))
}

/// Whether `text` could be a code (so garbage costs no database round trip).
pub fn is_code(text: &str) -> bool {
    text.len() == CODE_DIGITS && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_only_their_hashes_are_kept() {
        let a = Secrets::generate();
        let b = Secrets::generate();
        assert_ne!(a.link_token, b.link_token);
        assert_eq!(a.link_token.len(), 43);
        assert!(
            is_code(&a.code) && is_code(&b.code),
            "{} {}",
            a.code,
            b.code
        );
        assert_eq!(link_hash(&a.link_token).len(), 64);
        assert_ne!(
            code_hash("a@example.com", &a.code),
            code_hash("b@example.com", &a.code),
            "a code is bound to its address"
        );
        assert!(!format!("{a:?}").contains(&a.code));
        for bad in ["", "12345", "1234567", "12a456", "١٢٣٤٥٦"] {
            assert!(!is_code(bad), "{bad}");
        }
    }

    #[test]
    fn verification_types_accept_their_purposes() {
        for (text, purpose) in [
            ("signup", Purpose::Confirmation),
            ("magiclink", Purpose::MagicLink),
            ("recovery", Purpose::Recovery),
            ("email_change", Purpose::EmailChange),
            ("invite", Purpose::Invite),
        ] {
            let t = VerifyType::parse(text).unwrap();
            assert_eq!(t.as_str(), text);
            assert!(t.purposes().contains(&purpose));
            assert_eq!(purpose.verify_type(), t);
        }
        assert!(!VerifyType::Email.purposes().contains(&Purpose::Recovery));
        assert!(
            !VerifyType::Recovery
                .purposes()
                .contains(&Purpose::MagicLink)
        );
        assert_eq!(VerifyType::parse("sms"), None);
    }
}
