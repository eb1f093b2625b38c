//! What can go wrong with a storage call, each case with its [`Code`]: the HTTP layer turns
//! any [`StorageError`] into a response with `?` (416 carries the object's size for
//! `Content-Range: bytes */size`, 413 the limit that was hit).

use fluxbase_migrations::{Code, DbError, DbErrorKind, ErrorCode};

/// An error of the storage service.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An object name, bucket id or prefix breaks the naming rules; `field` names it.
    #[error("invalid {field}: {reason}")]
    InvalidName {
        /// `object name`, `bucket id`, `prefix`…
        field: &'static str,
        /// Which rule, in words.
        reason: &'static str,
    },
    /// A request value that is malformed (a header, an option); the message names it.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The header, field or option.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// No such bucket, or not one the caller may see.
    #[error("bucket not found")]
    BucketNotFound,
    /// No such object, or not one the caller may see.
    #[error("object not found")]
    ObjectNotFound,
    /// A bucket with this id already exists.
    #[error("a bucket with this id already exists")]
    BucketExists,
    /// An object with this name already exists and the call did not ask to replace it.
    #[error("an object with this name already exists")]
    ObjectExists,
    /// Deleting a bucket that still has objects.
    #[error("the bucket is not empty: empty it first")]
    BucketNotEmpty,
    /// Row-Level Security (or a grant) refused the caller.
    #[error("not allowed by the storage policies: {0}")]
    Forbidden(String),
    /// The body is larger than the bucket's `file_size_limit` or the server's limit.
    #[error("the object is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in force, in bytes.
        limit: u64,
    },
    /// The content type is not in the bucket's `allowed_mime_types`.
    #[error("content type {mime_type:?} is not allowed in this bucket")]
    MimeTypeNotAllowed {
        /// The refused type.
        mime_type: String,
    },
    /// A `Range` that does not overlap the object.
    #[error("range not satisfiable for an object of {size} bytes")]
    RangeNotSatisfiable {
        /// The object's size (for `Content-Range: bytes */size`).
        size: u64,
    },
    /// A signed URL's token is malformed or its signature does not match this request.
    #[error("invalid signature")]
    InvalidSignature,
    /// A signed URL past its expiry.
    #[error("the signed URL has expired")]
    SignatureExpired,
    /// The stored bytes do not hash to the recorded SHA-256: never served silently.
    #[error("integrity check failed: stored bytes hash to {actual}, the object records {expected}")]
    IntegrityMismatch {
        /// The recorded digest (hex).
        expected: String,
        /// What the bytes hash to (hex).
        actual: String,
    },
    /// The upload body failed (the client went away, or the HTTP layer's limit cut it).
    #[error("the upload body was interrupted: {0}")]
    Body(#[source] std::io::Error),
    /// A resumable upload that does not exist, has expired or belongs to someone else.
    #[error("resumable upload not found")]
    UploadNotFound,
    /// A tus PATCH whose `Upload-Offset` is not the upload's offset.
    #[error("Upload-Offset {given} does not match the upload's offset {expected}")]
    OffsetMismatch {
        /// The offset the server has.
        expected: u64,
        /// The offset the client sent.
        given: u64,
    },
    /// A request body of the wrong media type (a tus PATCH must be
    /// `application/offset+octet-stream`).
    #[error("the body must be of type {expected}")]
    WrongContentType {
        /// The type required.
        expected: &'static str,
    },
    /// A `Tus-Resumable` version other than 1.0.0.
    #[error("unsupported tus version {0:?}: this server speaks 1.0.0")]
    TusVersion(String),
    /// The storage backend failed (disk, network, S3).
    #[error("storage backend error: {0}")]
    Backend(#[source] object_store::Error),
    /// A row points to bytes the backend does not have.
    #[error("the bytes of object version {version} are missing from the backend")]
    BytesMissing {
        /// The row's `version`.
        version: String,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A bug or an unexpected state; details in the message, for the log.
    #[error("internal storage error: {0}")]
    Internal(String),
}

impl StorageError {
    /// The stable code of this error.
    fn code_of(&self) -> Code {
        match self {
            StorageError::InvalidName { .. } | StorageError::InvalidInput { .. } => {
                Code::BadRequest
            }
            StorageError::BucketNotFound
            | StorageError::ObjectNotFound
            | StorageError::UploadNotFound => Code::NotFound,
            StorageError::BucketExists
            | StorageError::ObjectExists
            | StorageError::BucketNotEmpty
            | StorageError::OffsetMismatch { .. } => Code::Conflict,
            StorageError::Forbidden(_) => Code::Forbidden,
            StorageError::TooLarge { .. } => Code::PayloadTooLarge,
            StorageError::MimeTypeNotAllowed { .. } | StorageError::WrongContentType { .. } => {
                Code::UnsupportedMediaType
            }
            StorageError::RangeNotSatisfiable { .. } => Code::RangeNotSatisfiable,
            StorageError::InvalidSignature => Code::InvalidToken,
            StorageError::SignatureExpired => Code::TokenExpired,
            StorageError::Body(_) => Code::BadRequest,
            StorageError::TusVersion(_) => Code::PreconditionFailed,
            StorageError::Backend(err) => backend_code(err),
            StorageError::Db(err) => err.code(),
            StorageError::IntegrityMismatch { .. }
            | StorageError::BytesMissing { .. }
            | StorageError::Internal(_) => Code::Internal,
        }
    }

    /// A database error seen while acting as the caller: a policy refusal becomes
    /// [`StorageError::Forbidden`] (with PostgreSQL's message, which names the table and
    /// never a value), the rest stays a database error.
    pub(crate) fn from_caller_db(err: DbError) -> StorageError {
        match err.kind() {
            DbErrorKind::InsufficientPrivilege => StorageError::Forbidden(
                err.db_error()
                    .map(|db| db.message().to_string())
                    .unwrap_or_else(|| "permission denied".into()),
            ),
            _ => StorageError::Db(err),
        }
    }

    /// Whether the error is the caller's (4xx) rather than the server's.
    pub fn is_client_error(&self) -> bool {
        self.code().status() < 500
    }
}

impl From<tokio_postgres::Error> for StorageError {
    fn from(err: tokio_postgres::Error) -> Self {
        StorageError::from_caller_db(DbError::from(err))
    }
}

/// An unreachable or failing backend is "unavailable" (retry later); the rest is internal.
fn backend_code(err: &object_store::Error) -> Code {
    match err {
        object_store::Error::Generic { .. } => Code::ServiceUnavailable,
        _ => Code::Internal,
    }
}

impl ErrorCode for StorageError {
    fn code(&self) -> Code {
        self.code_of()
    }

    fn client_message(&self) -> String {
        match self {
            StorageError::Db(err) => err.client_message(),
            StorageError::Backend(_) if self.code() == Code::ServiceUnavailable => {
                "the storage backend is unavailable; try again".into()
            }
            StorageError::IntegrityMismatch { .. } => {
                "integrity check failed: the stored bytes do not match their SHA-256".into()
            }
            _ if self.code().is_private() => self.code().private_message().into(),
            _ => self.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_client_messages() {
        assert_eq!(
            StorageError::RangeNotSatisfiable { size: 3 }.code(),
            Code::RangeNotSatisfiable
        );
        assert_eq!(StorageError::TooLarge { limit: 1 }.code().status(), 413);
        let mismatch = StorageError::IntegrityMismatch {
            expected: "a".into(),
            actual: "b".into(),
        };
        assert_eq!(mismatch.code().status(), 500);
        assert!(
            mismatch
                .client_message()
                .starts_with("integrity check failed")
        );
        let internal = StorageError::Internal("secret path /var/x".into());
        assert_eq!(internal.client_message(), "internal error");
        assert_eq!(
            StorageError::MimeTypeNotAllowed {
                mime_type: "x/y".into()
            }
            .code()
            .status(),
            415
        );
    }
}
