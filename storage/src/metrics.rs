//! The storage metrics the runbook's dashboards read: bytes in and out, operations by kind
//! and result, upload duration.

use std::time::Duration;

use fluxbase_migrations::ErrorCode;

use crate::error::StorageError;

/// Bytes received into the backend.
pub const BYTES_IN: &str = "fluxbase_storage_bytes_in_total";
/// Bytes sent out of the backend to clients.
pub const BYTES_OUT: &str = "fluxbase_storage_bytes_out_total";
/// Operations by `op` and `result` (`ok` or the error's code).
pub const OPERATIONS: &str = "fluxbase_storage_operations_total";
/// Seconds from the first byte of an upload to its committed row.
pub const UPLOAD_DURATION: &str = "fluxbase_storage_upload_duration_seconds";

/// The operations counted in [`OPERATIONS`], registered at zero so every series a
/// dashboard sums exists from the first scrape.
const OPS: &[&str] = &[
    "upload",
    "upload_signed",
    "download",
    "download_public",
    "download_signed",
    "list",
    "delete",
    "copy",
    "move",
    "bucket_create",
    "bucket_update",
    "bucket_empty",
    "bucket_delete",
    "tus_create",
    "tus_patch",
    "tus_terminate",
    "sweep",
];

/// Registers the help texts and the zero values of every series (once per process is
/// enough; repeating is harmless: adding zero changes nothing).
pub fn describe() {
    metrics::describe_counter!(BYTES_IN, metrics::Unit::Bytes, "bytes stored by uploads");
    metrics::describe_counter!(BYTES_OUT, metrics::Unit::Bytes, "bytes sent by downloads");
    metrics::describe_counter!(OPERATIONS, "storage operations by kind and result");
    metrics::describe_histogram!(
        UPLOAD_DURATION,
        metrics::Unit::Seconds,
        "duration of uploads, body to committed row"
    );
    metrics::counter!(BYTES_IN).increment(0);
    metrics::counter!(BYTES_OUT).increment(0);
    for op in OPS {
        metrics::counter!(OPERATIONS, "op" => *op, "result" => "ok").increment(0);
    }
    // A registered histogram is exported (empty buckets) before its first sample.
    let _ = metrics::histogram!(UPLOAD_DURATION);
}

/// Counts one operation with its result.
pub fn record<T>(op: &'static str, result: &Result<T, StorageError>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(err) => err.code().as_str(),
    };
    metrics::counter!(OPERATIONS, "op" => op, "result" => outcome).increment(1);
}

/// Counts bytes stored.
pub fn bytes_in(n: u64) {
    metrics::counter!(BYTES_IN).increment(n);
}

/// Counts bytes sent.
pub fn bytes_out(n: u64) {
    metrics::counter!(BYTES_OUT).increment(n);
}

/// Records an upload's duration.
pub fn upload_duration(elapsed: Duration) {
    metrics::histogram!(UPLOAD_DURATION).record(elapsed.as_secs_f64());
}
