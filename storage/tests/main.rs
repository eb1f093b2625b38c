//! Integration tests of the storage service against a real PostgreSQL (a fresh database
//! per test) and real backends: every scenario runs twice, on the local backend (a fresh
//! directory) and on a real S3 server (`s3s-fs`, a fresh bucket).

mod harness;

mod access;
mod integrity;
mod limits;
mod objects;
mod resumable;
