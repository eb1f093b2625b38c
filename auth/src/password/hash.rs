//! Password hashes: argon2id (PHC strings) for every new hash; bcrypt hashes (written by
//! the runbook's `crypt(…, gen_salt('bf'))`) still verify and are reported for upgrade.
//!
//! argon2 needs `m_cost` KiB of working memory per hash (19 MiB with the defaults). The
//! functions here take that memory from the caller, so [`super::pool`] can hand each
//! worker one reused buffer instead of allocating and freeing 19 MiB per request (which,
//! with many threads and glibc's per-thread arenas, grew the process by gigabytes and never
//! gave it back).

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;

/// The parameters of every new hash: the crate's defaults (argon2id v1.3, 19 MiB, t=2, p=1,
/// OWASP's first recommendation).
pub const PARAMS: Params = Params::DEFAULT;

/// Bytes of random salt in a new hash.
const SALT_LEN: usize = 16;

/// The largest `m_cost` (KiB) a stored hash may ask for: a hash written by hand with
/// absurd parameters must not make one sign-in allocate gigabytes.
const MAX_VERIFY_M_COST: u32 = 64 * 1024;

/// Why hashing or verifying failed (never the password itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// The stored hash is not a format (or parameter set) we accept.
    #[error("unsupported password hash format")]
    UnknownFormat,
    /// The hasher failed (e.g. parameters).
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// Wrong password.
    No,
    /// Right password, modern hash.
    Yes,
    /// Right password, legacy (bcrypt) hash: store a new argon2id hash.
    YesRehash,
}

/// Blocks of working memory one hash with [`PARAMS`] needs.
pub fn block_count() -> usize {
    PARAMS.block_count()
}

/// A working-memory buffer for [`hash_with`] and [`verify_with`].
pub fn new_memory() -> Vec<Block> {
    vec![Block::default(); block_count()]
}

/// A hashing library error, as text (its types are not ours to expose).
fn hash_err(err: impl std::fmt::Display) -> PasswordError {
    PasswordError::Hash(err.to_string())
}

/// Hashes with argon2id into a PHC string, using `memory` as working memory.
pub fn hash_with(password: &str, memory: &mut [Block]) -> Result<String, PasswordError> {
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill_bytes(&mut salt);
    let salt_text = SaltString::encode_b64(&salt).map_err(hash_err)?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, PARAMS);
    let len = PARAMS.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = Output::init_with(len, |out| {
        argon2
            .hash_password_into_with_memory(password.as_bytes(), &salt, out, &mut *memory)
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(hash_err)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&PARAMS).map_err(hash_err)?,
        salt: Some(salt_text.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Verifies against an argon2 PHC string or a bcrypt `$2a$/$2b$/$2y$` hash, using `memory`
/// as working memory when it is large enough (a stored hash with a larger `m_cost`, up to
/// 64 MiB, gets a buffer of its own).
pub fn verify_with(
    password: &str,
    stored: &str,
    memory: &mut [Block],
) -> Result<Verified, PasswordError> {
    if stored.starts_with("$2") {
        return match bcrypt::verify(password, stored) {
            Ok(true) => Ok(Verified::YesRehash),
            Ok(false) => Ok(Verified::No),
            Err(_) => Err(PasswordError::UnknownFormat),
        };
    }
    let parsed = PasswordHash::new(stored).map_err(|_| PasswordError::UnknownFormat)?;
    let algorithm =
        Algorithm::try_from(parsed.algorithm).map_err(|_| PasswordError::UnknownFormat)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|_| PasswordError::UnknownFormat)?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(|_| PasswordError::UnknownFormat)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(PasswordError::UnknownFormat);
    };
    if params.m_cost() > MAX_VERIFY_M_COST {
        return Err(PasswordError::UnknownFormat);
    }
    let mut salt_buf = [0u8; 64];
    let salt = salt
        .decode_b64(&mut salt_buf)
        .map_err(|_| PasswordError::UnknownFormat)?;
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut own;
    let blocks: &mut [Block] = if params.block_count() <= memory.len() {
        memory
    } else {
        own = vec![Block::default(); params.block_count()];
        &mut own
    };
    let computed = Output::init_with(expected.len(), |out| {
        argon2
            .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut *blocks)
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(|_| PasswordError::UnknownFormat)?;
    // Output's equality is constant-time.
    Ok(if computed == expected {
        Verified::Yes
    } else {
        Verified::No
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordVerifier;

    #[test]
    fn argon2id_round_trip_and_compatibility_with_the_crate() {
        let mut memory = new_memory();
        let h = hash_with("correct horse", &mut memory).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert_eq!(
            verify_with("correct horse", &h, &mut memory),
            Ok(Verified::Yes)
        );
        assert_eq!(verify_with("wrong", &h, &mut memory), Ok(Verified::No));
        assert_ne!(
            hash_with("correct horse", &mut memory).unwrap(),
            h,
            "salts differ"
        );
        // The crate's own verifier agrees (hashes written before this change still verify).
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        let theirs = {
            use argon2::password_hash::PasswordHasher;
            let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
            Argon2::default()
                .hash_password(b"older hash", &salt)
                .unwrap()
                .to_string()
        };
        assert_eq!(
            verify_with("older hash", &theirs, &mut memory),
            Ok(Verified::Yes)
        );
    }

    #[test]
    fn other_parameters_verify_with_their_own_memory_up_to_a_bound() {
        use argon2::password_hash::PasswordHasher;
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let bigger = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(32 * 1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw", &salt)
        .unwrap()
        .to_string();
        let mut small = vec![Block::default(); 8];
        assert_eq!(verify_with("pw", &bigger, &mut small), Ok(Verified::Yes));
        let absurd = bigger.replace("m=32768", "m=4000000");
        assert_eq!(
            verify_with("pw", &absurd, &mut small),
            Err(PasswordError::UnknownFormat)
        );
    }

    #[test]
    fn bcrypt_verifies_and_asks_for_rehash() {
        // As written by crypt('temporary-password', gen_salt('bf')) (pgcrypto uses $2a$).
        let h = bcrypt::hash("temporary-password", 4)
            .unwrap()
            .replacen("$2b$", "$2a$", 1);
        let mut memory = new_memory();
        assert_eq!(
            verify_with("temporary-password", &h, &mut memory),
            Ok(Verified::YesRehash)
        );
        assert_eq!(verify_with("nope", &h, &mut memory), Ok(Verified::No));
    }

    #[test]
    fn garbage_hashes_are_errors_not_panics() {
        let mut memory = new_memory();
        for stored in ["", "plain", "$2a$", "$unknown$x", "$argon2id$v=19$broken"] {
            assert!(
                !matches!(
                    verify_with("x", stored, &mut memory),
                    Ok(Verified::Yes | Verified::YesRehash)
                ),
                "{stored}"
            );
        }
    }
}
