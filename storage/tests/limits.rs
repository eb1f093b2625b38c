//! What is refused, and that a refusal or a failure leaves nothing behind: size and type
//! limits, hostile names, a body that breaks off, symlinks planted in the storage root.

use bytes::Bytes;
use fluxbase_auth::AuthContext;
use fluxbase_migrations::ErrorCode;
use fluxbase_storage::{DownloadOptions, NewBucket, StorageError, UploadOptions};
use futures_util::StreamExt;

use crate::harness::{Env, Kind, body, generated};
use crate::on_both_backends;

on_both_backends!(
    size_and_mime_refusals,
    traversal_attempts_are_refused,
    interrupted_upload_leaves_nothing,
);

async fn size_and_mime_refusals(env: Env) {
    let service = AuthContext::service_role();
    env.storage
        .create_bucket(
            &service,
            NewBucket {
                id: "img".into(),
                file_size_limit: Some(1000),
                allowed_mime_types: Some(vec!["image/*".into(), "application/pdf".into()]),
                ..NewBucket::default()
            },
        )
        .await
        .unwrap();
    let upload = |name: &'static str, mime: &'static str, len: u64, declared: Option<u64>| {
        let storage = env.storage.clone();
        let service = service.clone();
        async move {
            storage
                .upload(
                    &service,
                    "img",
                    name,
                    UploadOptions {
                        content_type: Some(mime.into()),
                        content_length: declared,
                        ..UploadOptions::default()
                    },
                    generated(1, len, 300),
                )
                .await
        }
    };
    upload("ok.png", "image/png", 1000, None).await.unwrap();
    upload("ok.pdf", "application/pdf; charset=binary", 10, None)
        .await
        .unwrap();
    // Over the bucket's limit: refused from the declared length, and while streaming.
    let err = upload("big.png", "image/png", 2000, Some(2000))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::TooLarge { limit: 1000 }),
        "{err}"
    );
    assert_eq!(err.code().status(), 413);
    let err = upload("big2.png", "image/png", 1001, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::TooLarge { limit: 1000 }),
        "{err}"
    );
    // Not an allowed type.
    let err = upload("t.txt", "text/plain", 10, None).await.unwrap_err();
    assert!(
        matches!(err, StorageError::MimeTypeNotAllowed { .. }),
        "{err}"
    );
    assert_eq!(err.code().status(), 415);
    // The server's own limit binds buckets without one.
    env.bucket("any", false).await;
    let err = env
        .storage
        .upload(
            &service,
            "any",
            "huge",
            UploadOptions {
                content_length: Some(crate::harness::SERVER_LIMIT + 1),
                ..UploadOptions::default()
            },
            body(b""),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::TooLarge { .. }));
    // Refusals stored nothing.
    assert_eq!(env.count("SELECT count(*) FROM storage.objects").await, 2);
    assert_eq!(env.stored_files().len(), 2, "{:?}", env.stored_files());
}

async fn traversal_attempts_are_refused(env: Env) {
    let service = AuthContext::service_role();
    env.bucket("t", false).await;
    let outside = env.scratch.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    for name in [
        "../../etc/passwd",
        // `..%2f` as the HTTP layer hands it over after decoding once.
        "../escape",
        "a/../../escape",
        "/etc/passwd",
        "a\0b",
        "..\\..\\windows",
        "a//b",
        "ctrl\u{1b}[2J",
    ] {
        let err = env
            .storage
            .upload(&service, "t", name, UploadOptions::default(), body(b"evil"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidName { .. }),
            "{name:?}: {err}"
        );
        assert_eq!(err.code().status(), 400);
        assert!(
            env.storage
                .download(&service, "t", name, DownloadOptions::default())
                .await
                .is_err()
        );
    }
    // A name that merely looks encoded is a name, stored inside the bucket like any other.
    let literal = env
        .storage
        .upload(
            &service,
            "t",
            "%2e%2e%2fetc",
            UploadOptions::default(),
            body(b"ok"),
        )
        .await
        .unwrap();
    assert_eq!(literal.name, "%2e%2e%2fetc");
    // Bucket ids are checked too.
    for bucket in ["..", "../t", ".fluxbase", "a/b"] {
        assert!(matches!(
            env.storage
                .upload(&service, bucket, "x", UploadOptions::default(), body(b"x"))
                .await,
            Err(StorageError::InvalidName { .. })
        ));
    }

    if let Kind::Local(root) = &env.kind {
        // A symlink planted inside the root (here: the bucket's directory pointing
        // outside) is never followed, for writes or reads.
        let bucket_dir = std::fs::canonicalize(root).unwrap().join("t");
        let moved = root.join("t-real");
        std::fs::rename(&bucket_dir, &moved).unwrap();
        std::os::unix::fs::symlink(&outside, &bucket_dir).unwrap();
        let err = env
            .storage
            .upload(
                &service,
                "t",
                "through-link",
                UploadOptions::default(),
                body(b"evil"),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code().status(), 500, "{err}");
        let err = env
            .storage
            .download(&service, "t", "%2e%2e%2fetc", DownloadOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.code().status(), 500, "{err}");
        // Nothing was written outside, and the refused upload left no row.
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        assert_eq!(env.count("SELECT count(*) FROM storage.objects").await, 1);
        std::fs::remove_file(&bucket_dir).unwrap();
        std::fs::rename(&moved, &bucket_dir).unwrap();
        // A symlink in place of one object's bytes is refused as well.
        let file = env.bytes_file("t", &literal.version);
        std::fs::remove_file(&file).unwrap();
        std::fs::write(outside.join("secret"), b"outside").unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), &file).unwrap();
        assert!(
            env.storage
                .download(&service, "t", "%2e%2e%2fetc", DownloadOptions::default())
                .await
                .is_err()
        );
    }
}

async fn interrupted_upload_leaves_nothing(env: Env) {
    let service = AuthContext::service_role();
    let _heavy = crate::harness::HEAVY.lock().await;
    env.bucket("i", false).await;
    // 20 MB then the client is gone: large enough that S3 has a multipart upload open and
    // the disk a staging file when the body fails.
    let broken =
        generated(3, 20 * 1024 * 1024, 256 * 1024).chain(futures_util::stream::once(async {
            Err::<Bytes, _>(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "client went away",
            ))
        }));
    let err = env
        .storage
        .upload(
            &service,
            "i",
            "partial.bin",
            UploadOptions::default(),
            broken,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Body(_)), "{err}");
    assert_eq!(env.count("SELECT count(*) FROM storage.objects").await, 0);
    assert!(env.stored_files().is_empty(), "{:?}", env.stored_files());
    assert_eq!(
        env.pending_multipart_parts(),
        0,
        "the multipart upload was not aborted"
    );
    // The same for a short body (one request, no multipart).
    let short = body(b"abc").chain(futures_util::stream::once(async {
        Err::<Bytes, _>(std::io::Error::other("reset"))
    }));
    assert!(
        env.storage
            .upload(&service, "i", "p2", UploadOptions::default(), short)
            .await
            .is_err()
    );
    assert!(env.stored_files().is_empty(), "{:?}", env.stored_files());
    // A row refused after the bytes were written (this policy passes the dry run, made
    // before the size is known, and refuses the final row) deletes those bytes.
    env.sql(
        "CREATE POLICY small ON storage.objects FOR INSERT TO authenticated
           WITH CHECK (bucket_id = 'i' AND size < 100)",
    )
    .await;
    let someone = crate::harness::user(&crate::harness::new_uid());
    env.storage
        .upload(
            &someone,
            "i",
            "tiny",
            UploadOptions::default(),
            body(b"fits"),
        )
        .await
        .unwrap();
    let err = env
        .storage
        .upload(
            &someone,
            "i",
            "large",
            UploadOptions::default(),
            generated(4, 250, 50),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code().status(), 403, "{err}");
    assert_eq!(env.count("SELECT count(*) FROM storage.objects").await, 1);
    assert_eq!(env.stored_files().len(), 1, "{:?}", env.stored_files());
}
