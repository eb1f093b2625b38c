//! Signed URLs: a download or upload of one object allowed without a session until an
//! expiry. The token is `<payload>.<mac>` (both base64url): the payload carries the expiry
//! (and for uploads the owner and the upsert flag), the MAC is HMAC-SHA256 over the action,
//! bucket, name and payload with a key derived from the server's secret. The bucket and
//! name come from the request's URL, so a token cannot be moved to another object; the
//! MAC is checked in constant time before the expiry is read.
//!
//! Permission is checked when the URL is made: the caller must be able to read the object
//! (download) or write the name (upload, a dry run of the INSERT). Using the URL then needs
//! no policy: the server reads or writes on the signer's behalf.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use fluxbase_auth::AuthContext;
use futures_util::Stream;
use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::download::{Download, DownloadOptions};
use crate::error::StorageError;
use crate::metrics;
use crate::name::{BucketId, ObjectName};
use crate::object::{DEFAULT_CONTENT_TYPE, ObjectInfo};
use crate::service::Storage;
use crate::upload::{UploadOptions, Writer};

/// Context string of the key derivation: a new version invalidates every earlier URL.
const KEY_CONTEXT: &[u8] = b"fluxbase storage signed urls v1";

/// The longest a signed URL may live (a week, as S3 presigned URLs).
pub const MAX_SIGNED_URL_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedAction {
    /// `GET /object/sign/{bucket}/{name}`.
    Download,
    /// `PUT /object/upload/sign/{bucket}/{name}`.
    Upload,
}

impl SignedAction {
    fn label(self) -> &'static str {
        match self {
            SignedAction::Download => "GET",
            SignedAction::Upload => "PUT",
        }
    }
}

/// A signed URL's token and expiry (the HTTP layer builds the URL around the token).
#[derive(Debug, Clone, Serialize)]
pub struct SignedUrl {
    /// The `token` query parameter.
    pub token: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// What the payload of a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// Expiry, seconds since the epoch.
    #[serde(rename = "e")]
    pub expires: i64,
    /// Owner of an upload (the signer's `sub`).
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Whether an upload may replace an existing object.
    #[serde(rename = "u", default, skip_serializing_if = "std::ops::Not::not")]
    pub upsert: bool,
}

/// The signing key: HMAC-SHA256(secret, context), so the raw secret never signs URLs.
pub(crate) fn derive_key(secret: &[u8]) -> hmac::Key {
    let master = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let derived = hmac::sign(&master, KEY_CONTEXT);
    hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
}

/// The bytes the MAC covers: action, bucket, name and the payload (expiry, owner, upsert).
fn message(action: SignedAction, bucket: &str, name: &str, payload: &str) -> Vec<u8> {
    let mut msg = Vec::with_capacity(bucket.len() + name.len() + payload.len() + 8);
    for part in [action.label(), bucket, name, payload] {
        msg.extend_from_slice(part.as_bytes());
        // NUL cannot appear in any part (names refuse it): an unambiguous separator.
        msg.push(0);
    }
    msg
}

/// Makes a token.
pub(crate) fn sign(
    key: &hmac::Key,
    action: SignedAction,
    bucket: &BucketId,
    name: &ObjectName,
    claims: &TokenClaims,
) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let mac = hmac::sign(
        key,
        &message(action, bucket.as_str(), name.as_str(), &payload),
    );
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()))
}

/// Checks a token against the request's action, bucket and name, then its expiry.
pub(crate) fn verify(
    key: &hmac::Key,
    action: SignedAction,
    bucket: &BucketId,
    name: &ObjectName,
    token: &str,
    now: DateTime<Utc>,
) -> Result<TokenClaims, StorageError> {
    let (payload, mac) = token
        .split_once('.')
        .ok_or(StorageError::InvalidSignature)?;
    let mac = URL_SAFE_NO_PAD
        .decode(mac)
        .map_err(|_| StorageError::InvalidSignature)?;
    hmac::verify(
        key,
        &message(action, bucket.as_str(), name.as_str(), payload),
        &mac,
    )
    .map_err(|_| StorageError::InvalidSignature)?;
    let claims: TokenClaims = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or(StorageError::InvalidSignature)?;
    if now.timestamp() >= claims.expires {
        return Err(StorageError::SignatureExpired);
    }
    Ok(claims)
}

/// The expiry of a URL made now for `ttl`.
fn expiry(ttl: Duration) -> Result<DateTime<Utc>, StorageError> {
    if ttl.is_zero() || ttl > MAX_SIGNED_URL_TTL {
        return Err(StorageError::InvalidInput {
            field: "expiresIn",
            reason: format!(
                "must be between 1 and {} seconds",
                MAX_SIGNED_URL_TTL.as_secs()
            ),
        });
    }
    Ok(Utc::now() + chrono::Duration::seconds(ttl.as_secs() as i64))
}

impl Storage {
    /// A signed download URL for an object the caller may read.
    pub async fn sign_download(
        &self,
        ctx: &AuthContext,
        bucket: &str,
        name: &str,
        ttl: Duration,
    ) -> Result<SignedUrl, StorageError> {
        let expires_at = expiry(ttl)?;
        let info = self.info(ctx, bucket, name).await?;
        let bucket = BucketId::parse(&info.bucket_id)?;
        let name = ObjectName::parse(&info.name)?;
        let claims = TokenClaims {
            expires: expires_at.timestamp(),
            owner: None,
            upsert: false,
        };
        let token = sign(
            &self.inner.signing_key,
            SignedAction::Download,
            &bucket,
            &name,
            &claims,
        );
        Ok(SignedUrl { token, expires_at })
    }

    /// A signed upload URL for a name the caller may write (checked now, by a dry run).
    pub async fn sign_upload(
        &self,
        ctx: &AuthContext,
        bucket: &str,
        name: &str,
        upsert: bool,
        ttl: Duration,
    ) -> Result<SignedUrl, StorageError> {
        let expires_at = expiry(ttl)?;
        let bucket = BucketId::parse(bucket)?;
        let name = ObjectName::parse(name)?;
        self.bucket_rules(&bucket).await?;
        self.check_write(ctx, &bucket, &name, DEFAULT_CONTENT_TYPE, upsert)
            .await?;
        let claims = TokenClaims {
            expires: expires_at.timestamp(),
            owner: ctx.uid().map(str::to_string),
            upsert,
        };
        let token = sign(
            &self.inner.signing_key,
            SignedAction::Upload,
            &bucket,
            &name,
            &claims,
        );
        Ok(SignedUrl { token, expires_at })
    }

    /// Checks a token for `action` on `bucket`/`name` (the HTTP layer may call it before
    /// reading a body).
    pub fn verify_token(
        &self,
        action: SignedAction,
        bucket: &str,
        name: &str,
        token: &str,
    ) -> Result<TokenClaims, StorageError> {
        let bucket = BucketId::parse(bucket)?;
        let name = ObjectName::parse(name)?;
        verify(
            &self.inner.signing_key,
            action,
            &bucket,
            &name,
            token,
            Utc::now(),
        )
    }

    /// Streams an object through a signed download URL.
    pub async fn download_signed(
        &self,
        bucket: &str,
        name: &str,
        token: &str,
        options: DownloadOptions,
    ) -> Result<Download, StorageError> {
        let result = async {
            self.verify_token(SignedAction::Download, bucket, name, token)?;
            let bucket = BucketId::parse(bucket)?;
            let name = ObjectName::parse(name)?;
            let info = self.find_as(None, &bucket, &name).await?;
            self.open(info, options).await
        }
        .await;
        metrics::record("download_signed", &result);
        result
    }

    /// Uploads through a signed upload URL: owner and upsert come from the token; the
    /// bucket's size and type rules still apply.
    pub async fn upload_signed<S>(
        &self,
        bucket: &str,
        name: &str,
        token: &str,
        mut options: UploadOptions,
        body: S,
    ) -> Result<ObjectInfo, StorageError>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send,
    {
        let result = async {
            let claims = self.verify_token(SignedAction::Upload, bucket, name, token)?;
            options.upsert = claims.upsert;
            let writer = Writer::Server {
                owner: claims.owner.as_deref(),
            };
            self.upload_as(writer, bucket, name, options, body).await
        }
        .await;
        metrics::record("upload_signed", &result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (BucketId, ObjectName) {
        (
            BucketId::parse("b").unwrap(),
            ObjectName::parse("a/file.txt").unwrap(),
        )
    }

    #[test]
    fn round_trip_and_tampering() {
        let key = derive_key(b"secret");
        let (bucket, name) = ids();
        let now = Utc::now();
        let claims = TokenClaims {
            expires: now.timestamp() + 60,
            owner: Some("u".into()),
            upsert: true,
        };
        let token = sign(&key, SignedAction::Upload, &bucket, &name, &claims);
        assert_eq!(
            verify(&key, SignedAction::Upload, &bucket, &name, &token, now).unwrap(),
            claims
        );
        // Another action, object, bucket or key: refused.
        let other = ObjectName::parse("a/other.txt").unwrap();
        let check = |action, b: &BucketId, n: &ObjectName, k: &hmac::Key, t: &str| {
            verify(k, action, b, n, t, now)
        };
        assert!(matches!(
            check(SignedAction::Download, &bucket, &name, &key, &token),
            Err(StorageError::InvalidSignature)
        ));
        assert!(check(SignedAction::Upload, &bucket, &other, &key, &token).is_err());
        assert!(
            check(
                SignedAction::Upload,
                &BucketId::parse("c").unwrap(),
                &name,
                &key,
                &token
            )
            .is_err()
        );
        assert!(
            check(
                SignedAction::Upload,
                &bucket,
                &name,
                &derive_key(b"x"),
                &token
            )
            .is_err()
        );
        // A payload edited to extend the expiry: the MAC no longer matches.
        let (_, mac) = token.split_once('.').unwrap();
        let longer = TokenClaims {
            expires: now.timestamp() + 6000,
            ..claims.clone()
        };
        let forged = format!(
            "{}.{mac}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&longer).unwrap())
        );
        assert!(matches!(
            check(SignedAction::Upload, &bucket, &name, &key, &forged),
            Err(StorageError::InvalidSignature)
        ));
        for junk in ["", ".", "abc", "a.b.c"] {
            assert!(check(SignedAction::Upload, &bucket, &name, &key, junk).is_err());
        }
    }

    #[test]
    fn expiry_is_enforced() {
        let key = derive_key(b"secret");
        let (bucket, name) = ids();
        let now = Utc::now();
        let claims = TokenClaims {
            expires: now.timestamp() + 10,
            owner: None,
            upsert: false,
        };
        let token = sign(&key, SignedAction::Download, &bucket, &name, &claims);
        assert!(verify(&key, SignedAction::Download, &bucket, &name, &token, now).is_ok());
        let later = now + chrono::Duration::seconds(10);
        assert!(matches!(
            verify(&key, SignedAction::Download, &bucket, &name, &token, later),
            Err(StorageError::SignatureExpired)
        ));
    }
}
