//! fluxbase-storage: object backends (local file system, S3 via object_store), bucket and
//! object metadata, access checks.
//!
//! Nothing is implemented here yet: storage is a later issue.
