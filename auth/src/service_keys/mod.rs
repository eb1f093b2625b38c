//! Service keys: long random secrets (`sk_…`) that let a server act as `service_role`
//! without a JWT. Shown once at creation or rotation; only their SHA-256 and a short
//! display prefix are stored. A rotated key keeps working for
//! `auth.service_key_rotation_grace`. A key never manages keys (nor creates dashboard
//! admins): one that could would outlive its own revocation.

mod store;

pub use store::NewKey;

use crate::sessions::{hash_secret, random_base64url};

/// Every service key starts with this, so headers and logs can tell one from a JWT.
pub const KEY_PREFIX: &str = "sk_";

/// Random bytes in a key (256 bits).
pub const KEY_BYTES: usize = 32;

/// Characters of the key kept in clear (`sk_` + 8) to tell keys apart in listings.
const DISPLAY_PREFIX_LEN: usize = KEY_PREFIX.len() + 8;

/// A newly generated key.
#[derive(Clone)]
pub struct NewServiceKey {
    /// The key, handed to the caller once; never stored or logged.
    pub key: String,
    /// `auth.service_keys.key_hash`.
    pub hash: String,
    /// `auth.service_keys.key_prefix`: the first characters, for listings.
    pub prefix: String,
}

impl std::fmt::Debug for NewServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewServiceKey")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl NewServiceKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let key = format!("{KEY_PREFIX}{}", random_base64url(KEY_BYTES));
        NewServiceKey {
            hash: hash_secret(&key),
            prefix: key[..DISPLAY_PREFIX_LEN].to_string(),
            key,
        }
    }
}

/// Whether a credential is meant as a service key (by its prefix).
pub fn is_service_key(credential: &str) -> bool {
    credential.starts_with(KEY_PREFIX)
}

/// The lookup hash of a presented key, or `None` when it cannot be one of ours (wrong
/// length or alphabet), so garbage costs no database round trip.
pub fn lookup_hash(presented: &str) -> Option<String> {
    let body = presented.strip_prefix(KEY_PREFIX)?;
    let ok = (43..=128).contains(&body.len())
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| hash_secret(presented))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_hashed() {
        let a = NewServiceKey::generate();
        let b = NewServiceKey::generate();
        assert_ne!(a.key, b.key);
        assert!(a.key.starts_with("sk_"));
        assert_eq!(a.key.len(), 3 + 43);
        assert_eq!(a.prefix.len(), 11);
        assert!(a.key.starts_with(&a.prefix));
        assert_eq!(lookup_hash(&a.key), Some(a.hash.clone()));
        assert!(!a.hash.contains(&a.key[3..]));
        assert!(!format!("{a:?}").contains(&a.key));
        assert!(is_service_key(&a.key));
        for bad in [
            "sk_",
            "sk_short",
            "eyJhbGciOi",
            "sk_' OR 1=1 --aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert_eq!(lookup_hash(bad), None, "{bad}");
        }
    }
}
