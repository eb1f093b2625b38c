//! Storage over HTTP: `/storage/v1` (Supabase storage-api's shapes) and `/api/v1/storage`
//! (Fluxbase's), on both backends — a fresh local directory and a fresh bucket of a real
//! S3 server (`s3s-fs`) — in-process and through the binary, and the real
//! `@supabase/storage-js` against the running server.

mod env;

mod access;
mod fluxbase_shapes;
mod js;
mod limits;
mod server;
mod supabase_shapes;
mod transfers;
mod tus;
