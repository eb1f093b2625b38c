//! Integrity and repair: `verify` catches bytes changed on disk; the sweep removes bytes
//! no row names (a crash between bytes and row, rows deleted by the runbook's SQL) and
//! nothing else; the health probe reports the backend.

use std::time::Duration;

use fluxbase_auth::AuthContext;
use fluxbase_migrations::ErrorCode;
use fluxbase_storage::backend::{OnBodyError, object_key};
use fluxbase_storage::{DownloadOptions, StorageError, UploadOptions};

use crate::harness::{Env, Kind, body, collect};
use crate::on_both_backends;

on_both_backends!(
    verify_detects_a_flipped_byte,
    sweep_removes_orphans_only,
    health_probe
);

async fn verify_detects_a_flipped_byte(env: Env) {
    let service = AuthContext::service_role();
    env.bucket("v", false).await;
    let info = env
        .storage
        .upload(
            &service,
            "v",
            "data.bin",
            UploadOptions::default(),
            body(b"precious bytes"),
        )
        .await
        .unwrap();
    let verify = DownloadOptions {
        range: None,
        verify: true,
    };
    let good = env
        .storage
        .download(&service, "v", "data.bin", verify)
        .await
        .unwrap();
    assert!(good.verified);
    assert_eq!(
        good.info.repr_digest(),
        Some(format!(
            "sha-256=:{}:",
            base64_of_hex(info.sha256.as_deref().unwrap())
        ))
    );
    assert_eq!(collect(good.body).await, b"precious bytes");

    // Flip one byte where the backend keeps it.
    let file = env.bytes_file("v", &info.version);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[3] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();

    let err = env
        .storage
        .download(&service, "v", "data.bin", verify)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::IntegrityMismatch { .. }),
        "{err}"
    );
    assert_eq!(err.code().status(), 500);
    assert!(err.client_message().starts_with("integrity check failed"));
    // Without verify the bytes are served as stored (the digest header lets the client
    // check them); with a range, verify still hashes the whole object.
    let ranged = DownloadOptions {
        range: fluxbase_storage::ByteRange::parse("bytes=0-1"),
        verify: true,
    };
    assert!(
        env.storage
            .download(&service, "v", "data.bin", ranged)
            .await
            .is_err()
    );
}

fn base64_of_hex(hex_digest: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(hex::decode(hex_digest).unwrap())
}

async fn sweep_removes_orphans_only(env: Env) {
    let service = AuthContext::service_role();
    env.bucket("keep", false).await;
    env.bucket("temp-uploads", false).await;
    let kept = env
        .storage
        .upload(
            &service,
            "keep",
            "a",
            UploadOptions::default(),
            body(b"kept"),
        )
        .await
        .unwrap();
    let old = env
        .storage
        .upload(
            &service,
            "temp-uploads",
            "old",
            UploadOptions::default(),
            body(b"old"),
        )
        .await
        .unwrap();
    env.storage
        .upload(
            &service,
            "temp-uploads",
            "new",
            UploadOptions::default(),
            body(b"new"),
        )
        .await
        .unwrap();
    // A crash between durable bytes and their row: bytes under a version no row names.
    let crashed = object_key("keep", &uuid::Uuid::new_v4().to_string());
    env.storage
        .backend()
        .put(
            &crashed,
            body(b"lost").map_err_to_storage(),
            OnBodyError::Discard,
        )
        .await
        .unwrap();

    // Something that is not the service's (an operator's note): never swept.
    let foreign = object_store::path::Path::from("notes/readme.txt");
    env.storage
        .backend()
        .put(
            &foreign,
            body(b"hands off").map_err_to_storage(),
            OnBodyError::Discard,
        )
        .await
        .unwrap();

    // The runbook's SQL runs as written and deletes the old temp upload's row.
    env.sql(
        "UPDATE storage.objects SET created_at = now() - interval '100 days' WHERE name = 'old'",
    )
    .await;
    assert_eq!(
        env.count(
            "SELECT count(*) FROM storage.objects o
             LEFT JOIN storage.buckets b ON o.bucket_id = b.id WHERE b.id IS NULL"
        )
        .await,
        0
    );
    env.sql(
        "DELETE FROM storage.objects
         WHERE created_at < NOW() - INTERVAL '90 days'
         AND bucket_id = 'temp-uploads'",
    )
    .await;
    assert_eq!(env.count("SELECT count(*) FROM storage.objects").await, 2);
    assert!(env.bytes_file("temp-uploads", &old.version).exists());

    // Within the grace period nothing goes (an upload may be about to commit its row).
    let report = env.storage.sweep_orphans().await.unwrap();
    assert_eq!(report.orphan_objects, 0);
    let report = env
        .storage
        .sweep_orphans_older_than(Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report.orphan_objects, 2, "{report:?}");
    assert_eq!(report.orphan_bytes, 3 + 4);
    assert!(!env.bytes_file("temp-uploads", &old.version).exists());
    assert!(env.bytes_file("keep", &kept.version).exists());
    assert_eq!(env.stored_files().len(), 3, "{:?}", env.stored_files());
    assert!(
        env.stored_files()
            .iter()
            .any(|f| f.ends_with("notes/readme.txt"))
    );
    // Everything with a row still reads.
    for (bucket, name) in [("keep", "a"), ("temp-uploads", "new")] {
        let got = env
            .storage
            .download(&service, bucket, name, DownloadOptions::default())
            .await
            .unwrap();
        assert!(!collect(got.body).await.is_empty());
    }
    // A second sweep finds nothing.
    let again = env
        .storage
        .sweep_orphans_older_than(Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(again, fluxbase_storage::SweepReport::default());
}

/// Maps a test body's io errors to the backend's stream item type.
trait MapErrToStorage {
    fn map_err_to_storage(
        self,
    ) -> futures_util::stream::BoxStream<'static, Result<bytes::Bytes, StorageError>>;
}

impl<S> MapErrToStorage for S
where
    S: futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
{
    fn map_err_to_storage(
        self,
    ) -> futures_util::stream::BoxStream<'static, Result<bytes::Bytes, StorageError>> {
        use futures_util::StreamExt;
        self.map(|item| item.map_err(StorageError::Body)).boxed()
    }
}

async fn health_probe(env: Env) {
    let health = env.storage.health().await;
    assert!(health.reachable, "{health:?}");
    assert!(health.error.is_none());
    match env.kind {
        Kind::Local(_) => {
            assert_eq!(health.provider, "local");
            let free = health.free_bytes.unwrap();
            assert!(free > 0 && free <= health.total_bytes.unwrap());
        }
        Kind::S3(_) => {
            assert_eq!(health.provider, "s3");
            assert!(health.free_bytes.is_none());
        }
    }
    // The probe leaves nothing behind.
    assert!(env.stored_files().is_empty(), "{:?}", env.stored_files());
    let json = serde_json::to_value(&health).unwrap();
    assert_eq!(json["reachable"], true);
}
