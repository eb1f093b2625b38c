//! TOTP two-factor authentication (RFC 6238 as authenticator apps expect it: SHA-1,
//! 6 digits, 30 s steps, one step of clock skew either way), single-use backup codes, and
//! the keys that protect both at rest.
//!
//! A code is accepted once: [`check_code`] returns the time step it matched, and the caller
//! stores the last accepted step and refuses any step not after it (the library leaves
//! replay protection to its caller, RFC 6238 §5.2).

use rand::Rng;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::{hkdf, hmac};
use totp_rs::{Algorithm, Builder, Secret, Totp};

/// Digits of a code.
pub const DIGITS: usize = 6;
/// Seconds of one time step.
pub const STEP_SECS: u64 = 30;
/// Steps before and after the current one that still match (clock drift, typing time).
const SKEW: u16 = 1;
/// Bytes of a new secret: 160 bits, RFC 4226's recommendation.
const SECRET_LEN: usize = 20;
/// Backup codes handed out when 2FA is enabled.
pub const BACKUP_CODE_COUNT: usize = 10;
/// Characters of a backup code: no 0/o, 1/l/i to misread. 31 symbols × 10 ≈ 49 bits, and
/// the stored hash is keyed, so a leaked table alone cannot be brute-forced.
const BACKUP_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// Symbols of a backup code (shown as two groups of five).
const BACKUP_LEN: usize = 10;
/// Prefix of a sealed secret: the format version, so the scheme can change later.
const SEALED_PREFIX: &str = "v1:";

/// Why a 2FA operation failed. Never carries a secret or a code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    /// A sealed secret does not open with this key (corrupted, or the server secret it was
    /// sealed under has changed).
    #[error("the stored TOTP secret cannot be opened with the current server secret")]
    Unseal,
    /// The TOTP parameters were refused (a secret of the wrong size).
    #[error("invalid TOTP parameters: {0}")]
    Parameters(String),
}

/// A new random secret.
pub fn generate_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_LEN];
    rand::rng().fill(&mut secret[..]);
    secret
}

/// The secret as authenticator apps type it in (RFC 4648 base32, no padding).
pub fn secret_to_base32(secret: &[u8]) -> String {
    Secret::from(secret.to_vec()).to_base32()
}

/// A base32 secret back to bytes (tests, and clients that compute codes).
pub fn secret_from_base32(text: &str) -> Option<Vec<u8>> {
    Secret::try_from_base32(text)
        .ok()
        .map(|s| s.as_bytes().to_vec())
}

fn totp(secret: &[u8], account: &str) -> Result<Totp, TotpError> {
    // A ':' separates issuer and account in the URL label: not allowed inside either.
    let account = account.replace(':', "_");
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_skew(SKEW)
        .with_step_duration(STEP_SECS)
        .with_secret(secret.to_vec())
        .with_issuer(Some("Fluxbase"))
        .with_account_name(account)
        .build()
        .map_err(|err| TotpError::Parameters(format!("{err:?}")))
}

/// The `otpauth://totp/Fluxbase:<account>?secret=…&issuer=Fluxbase` URL that authenticator
/// apps import (as a QR code or typed).
pub fn otpauth_url(secret: &[u8], account: &str) -> Result<String, TotpError> {
    totp(secret, account)?
        .to_url()
        .map_err(|err| TotpError::Parameters(format!("{err:?}")))
}

/// The code of `secret` at `unix_time` (tests and tools; the server only checks).
pub fn code_at(secret: &[u8], unix_time: u64) -> Result<String, TotpError> {
    Ok(totp(secret, "code")?.generate(unix_time).to_string())
}

/// Whether `code` has the shape of a TOTP code (six ASCII digits).
pub fn is_code(code: &str) -> bool {
    code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit())
}

/// The time step `code` matches at `unix_time` (within the skew), if any. The caller must
/// refuse a step at or before the last one it accepted.
pub fn check_code(secret: &[u8], code: &str, unix_time: u64) -> Result<Option<u64>, TotpError> {
    if !is_code(code) {
        return Ok(None);
    }
    Ok(totp(secret, "code")?.check(code, unix_time))
}

/// Ten new backup codes, formatted `abcde-fghjk`, to show the user once.
pub fn generate_backup_codes() -> Vec<String> {
    let mut rng = rand::rng();
    (0..BACKUP_CODE_COUNT)
        .map(|_| {
            let symbols: String = (0..BACKUP_LEN)
                .map(|_| BACKUP_ALPHABET[rng.random_range(0..BACKUP_ALPHABET.len())] as char)
                .collect();
            format!(
                "{}-{}",
                &symbols[..BACKUP_LEN / 2],
                &symbols[BACKUP_LEN / 2..]
            )
        })
        .collect()
}

/// A backup code as typed (any case, with or without the dash and spaces) in its canonical
/// form, or `None` when it cannot be one.
pub fn normalize_backup_code(code: &str) -> Option<String> {
    let canonical: String = code
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let ok =
        canonical.len() == BACKUP_LEN && canonical.bytes().all(|b| BACKUP_ALPHABET.contains(&b));
    ok.then_some(canonical)
}

/// The keys of the 2FA material at rest, derived from the server secret
/// (`FLUXBASE_JWT_SECRET`): one seals TOTP secrets (AES-256-GCM), one keys the backup-code
/// hashes (HMAC-SHA-256). Changing the server secret makes existing 2FA enrolments
/// unreadable: the affected admins must have 2FA reset.
pub struct TwoFactorKeys {
    seal: LessSafeKey,
    backup: hmac::Key,
}

impl std::fmt::Debug for TwoFactorKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TwoFactorKeys(<derived>)")
    }
}

/// HKDF output length marker for a 32-byte key.
struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

fn derive(server_secret: &[u8], purpose: &[u8]) -> [u8; 32] {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"fluxbase-2fa").extract(server_secret);
    let info = [purpose];
    let okm = prk
        .expand(&info, Len32)
        .expect("32 bytes is within HKDF-SHA256's output limit");
    let mut key = [0u8; 32];
    okm.fill(&mut key)
        .expect("the buffer has the requested length");
    key
}

impl TwoFactorKeys {
    /// Keys derived from the server secret.
    pub fn new(server_secret: &[u8]) -> Self {
        let seal = UnboundKey::new(&AES_256_GCM, &derive(server_secret, b"totp-secret-seal-v1"))
            .expect("32 bytes is an AES-256 key");
        TwoFactorKeys {
            seal: LessSafeKey::new(seal),
            backup: hmac::Key::new(
                hmac::HMAC_SHA256,
                &derive(server_secret, b"backup-code-hash-v1"),
            ),
        }
    }

    /// Seals a TOTP secret for storage: `v1:` + hex(nonce ‖ ciphertext ‖ tag), a random
    /// nonce per sealing.
    pub fn seal(&self, secret: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill(&mut nonce);
        let mut buffer = secret.to_vec();
        self.seal
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut buffer,
            )
            .expect("AES-GCM sealing of a short secret cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buffer);
        format!("{SEALED_PREFIX}{}", hex::encode(out))
    }

    /// Opens a secret sealed by [`TwoFactorKeys::seal`].
    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, TotpError> {
        let raw = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|h| hex::decode(h).ok())
            .ok_or(TotpError::Unseal)?;
        if raw.len() < NONCE_LEN {
            return Err(TotpError::Unseal);
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| TotpError::Unseal)?;
        let mut buffer = ciphertext.to_vec();
        let plain = self
            .seal
            .open_in_place(nonce, Aad::empty(), &mut buffer)
            .map_err(|_| TotpError::Unseal)?;
        Ok(plain.to_vec())
    }

    /// The stored form of a backup code (its canonical form, keyed-hashed, hex).
    pub fn hash_backup_code(&self, canonical: &str) -> String {
        hex::encode(hmac::sign(&self.backup, canonical.as_bytes()).as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_their_step_and_neighbours_only() {
        let secret = generate_secret();
        let t = 1_700_000_000u64;
        let code = code_at(&secret, t).unwrap();
        assert!(is_code(&code), "{code}");
        assert_eq!(check_code(&secret, &code, t).unwrap(), Some(t / STEP_SECS));
        // One step of skew either way still matches the same step.
        assert_eq!(
            check_code(&secret, &code, t + STEP_SECS).unwrap(),
            Some(t / STEP_SECS)
        );
        assert_eq!(check_code(&secret, &code, t + 3 * STEP_SECS).unwrap(), None);
        for bad in ["", "12345", "1234567", "abcdef", "12 456", "١٢٣٤٥٦"] {
            assert_eq!(check_code(&secret, bad, t).unwrap(), None, "{bad}");
        }
    }

    #[test]
    fn rfc6238_reference_vector() {
        // RFC 6238 appendix B, SHA-1 secret "12345678901234567890", T = 59 s → 94287082
        // (8 digits); its last 6 digits are the 6-digit code.
        let secret = b"12345678901234567890";
        assert_eq!(code_at(secret, 59).unwrap(), "287082");
    }

    #[test]
    fn base32_and_url() {
        let secret = generate_secret();
        let b32 = secret_to_base32(&secret);
        assert_eq!(secret_from_base32(&b32).unwrap(), secret);
        let url = otpauth_url(&secret, "admin@example.com").unwrap();
        assert!(
            url.starts_with("otpauth://totp/Fluxbase:admin%40example.com?"),
            "{url}"
        );
        assert!(url.contains(&format!("secret={b32}")), "{url}");
        assert!(url.contains("issuer=Fluxbase"), "{url}");
        assert!(otpauth_url(&secret, "we:ird").is_ok());
    }

    #[test]
    fn backup_codes() {
        let codes = generate_backup_codes();
        assert_eq!(codes.len(), BACKUP_CODE_COUNT);
        for code in &codes {
            assert_eq!(code.len(), BACKUP_LEN + 1);
            let canonical = normalize_backup_code(code).unwrap();
            assert_eq!(
                normalize_backup_code(&code.to_uppercase()),
                Some(canonical.clone())
            );
            assert_eq!(normalize_backup_code(&canonical), Some(canonical));
        }
        for bad in ["", "abc", "abcde-fghj0", "abcde-fghjkl", "' or 1=1 --"] {
            assert_eq!(normalize_backup_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn sealing_round_trips_and_is_bound_to_the_key() {
        let keys = TwoFactorKeys::new(b"server-secret-one-0123456789abcdef");
        let other = TwoFactorKeys::new(b"server-secret-two-0123456789abcdef");
        let secret = generate_secret();
        let sealed = keys.seal(&secret);
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains(&hex::encode(&secret)));
        assert_ne!(keys.seal(&secret), sealed, "nonces differ");
        assert_eq!(keys.open(&sealed).unwrap(), secret);
        assert_eq!(other.open(&sealed), Err(TotpError::Unseal));
        for garbage in ["", "v1:", "v1:zz", "v2:00", "v1:00112233"] {
            assert_eq!(keys.open(garbage), Err(TotpError::Unseal), "{garbage}");
        }
        let h = keys.hash_backup_code("abcdefghjk");
        assert_eq!(h, keys.hash_backup_code("abcdefghjk"));
        assert_ne!(h, other.hash_backup_code("abcdefghjk"));
    }
}
