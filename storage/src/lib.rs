//! fluxbase-storage: file storage for Fluxbase — buckets and objects whose bytes live on
//! the local disk or in an S3-compatible store and whose metadata lives in
//! `storage.buckets` / `storage.objects`, where PostgreSQL's Row-Level Security decides who
//! may do what, exactly as Supabase's policies expect.
//!
//! - [`Storage`] is the service the HTTP routes call (`/api/v1/storage`, `/storage/v1`):
//!   buckets ([`bucket`]), streamed uploads with SHA-256 and limits ([`upload`]), streamed
//!   and ranged downloads with verification ([`download`]), listings ([`listing`]), delete,
//!   copy and move ([`transfer`]), signed URLs ([`signing`]), tus resumable uploads
//!   ([`tus`]), the orphan sweep ([`sweep`]), a health probe and metrics.
//! - [`backend`]: the byte stores behind one trait, on `object_store`.
//! - [`name`]: validated, NFC-normalised names; a name never becomes a file path.
//! - [`StorageError`]: every failure with its [`fluxbase_migrations::Code`].

pub mod backend;
mod batch;
pub mod bucket;
pub mod download;
mod error;
pub mod listing;
mod meter;
pub mod metrics;
pub mod name;
pub mod object;
mod service;
pub mod signing;
pub mod sweep;
#[cfg(feature = "test-utils")]
pub mod test_utils;
pub mod transfer;
pub mod tus;
pub mod upload;

pub use backend::{Backend, BackendHealth, ByteStream, LocalBackend, S3Backend, S3Settings};
pub use bucket::{Bucket, BucketUpdate, NewBucket};
pub use download::{ByteRange, Download, DownloadOptions};
pub use error::StorageError;
pub use listing::{ListEntry, ListOptions, SortColumn, SortOrder};
pub use object::ObjectInfo;
pub use service::{
    BackendConfig, DEFAULT_ORPHAN_GRACE, DEFAULT_TUS_EXPIRY, Storage, StorageSettings,
};
pub use signing::{SignedAction, SignedUrl, TokenClaims};
pub use sweep::SweepReport;
pub use tus::{TusCreate, TusPatch, TusUpload};
pub use upload::UploadOptions;
