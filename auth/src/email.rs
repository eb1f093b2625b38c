//! The one email policy of both kinds of user. A **new** address (signup, email change) is
//! a practical subset of RFC 5322: ASCII dot-atoms, a domain of at least two labels, at most
//! 254 bytes, stored lower-case. A **presented** address (sign-in) is only canonicalized
//! (trimmed, lower-cased, a plausible shape), so an account whose address was written by SQL
//! in another form still signs in; it is looked up by `lower(email)`.

use crate::AuthError;

/// Longest address (RFC 5321 path limit).
const MAX_LEN: usize = 254;
/// Longest local part.
const MAX_LOCAL: usize = 64;

/// The one refusal of an address (never echoing it).
fn invalid() -> AuthError {
    AuthError::invalid("email", "not a valid email address")
}

/// A new address, checked and lower-cased.
pub fn new_address(raw: &str) -> Result<String, AuthError> {
    let email = raw.trim().to_ascii_lowercase();
    if email.is_empty() || email.len() > MAX_LEN {
        return Err(invalid());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(invalid)?;
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&b);
    let local_ok = !local.is_empty()
        && local.len() <= MAX_LOCAL
        && local
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(atext));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if local_ok && domain_ok {
        Ok(email)
    } else {
        Err(invalid())
    }
}

/// A presented address in its lookup form: trimmed and lower-cased, one `@` with text on
/// both sides, no whitespace, control or quoting characters.
pub fn presented(raw: &str) -> Result<String, AuthError> {
    let email = raw.trim().to_lowercase();
    let ok = (3..=MAX_LEN).contains(&email.len())
        && email.split('@').count() == 2
        && email
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
        && email
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !"\"(),:;<>[\\]".contains(c));
    if ok { Ok(email) } else { Err(invalid()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_addresses() {
        assert_eq!(
            new_address("  Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        assert_eq!(
            new_address("o'brien+x@mail.example.org").unwrap(),
            "o'brien+x@mail.example.org"
        );
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@localhost",
            "a@@example.com",
            "a b@example.com",
            "admin@example.com' OR '1'='1",
            "x'; DROP TABLE auth.users; --@example.com",
            "a..b@example.com",
            ".a@example.com",
            "a@-example.com",
            "é@example.com",
            "a\0b@example.com",
        ] {
            let err = new_address(bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                "invalid field `email`: not a valid email address"
            );
        }
        assert!(new_address(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn presented_addresses_are_canonicalized_not_judged() {
        // Accounts written by SQL with a single-label domain or non-ASCII still sign in.
        assert_eq!(presented(" Admin@LocalHost ").unwrap(), "admin@localhost");
        assert_eq!(presented("Élise@example.com").unwrap(), "élise@example.com");
        for bad in [
            "",
            "a",
            "@x",
            "x@",
            "a@b@c",
            "a b@c.d",
            "' OR 1=1 --",
            "x\"@y.z",
            "a\0@b.c",
        ] {
            assert!(presented(bad).is_err(), "{bad:?}");
        }
    }
}
