//! tus 1.0.0 uploads: a 200 MB upload broken off midway resumes from its offset and ends
//! byte-identical; offsets are enforced; only the creator may touch an upload; termination
//! and expiry remove the chunks.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use fluxbase_auth::AuthContext;
use fluxbase_migrations::ErrorCode;
use fluxbase_storage::tus::TUS_CONTENT_TYPE;
use fluxbase_storage::{DownloadOptions, StorageError, TusCreate, TusPatch};
use futures_util::StreamExt;

use crate::harness::{Env, HEAVY, digest_body, digest_of, generated, new_uid, user};
use crate::on_both_backends;

on_both_backends!(
    interrupted_upload_resumes,
    single_patch_offsets_and_access,
    termination_and_expiry
);

/// The `Upload-Metadata` header Supabase's client sends.
fn metadata(bucket: &str, object: &str, content_type: &str) -> String {
    format!(
        "bucketName {},objectName {},contentType {},cacheControl {}",
        STANDARD.encode(bucket),
        STANDARD.encode(object),
        STANDARD.encode(content_type),
        STANDARD.encode("3600")
    )
}

async fn interrupted_upload_resumes(env: Env) {
    const SIZE: u64 = 200 * 1024 * 1024;
    const BROKEN_AT: u64 = 120 * 1024 * 1024;
    const CHUNK: usize = 256 * 1024;
    let _heavy = HEAVY.lock().await;
    env.sql(
        "CREATE POLICY up ON storage.objects FOR INSERT TO authenticated
           WITH CHECK (split_part(name, '/', 1) = auth.uid()::text);
         CREATE POLICY see ON storage.objects FOR SELECT TO authenticated
           USING (split_part(name, '/', 1) = auth.uid()::text);",
    )
    .await;
    env.bucket("videos", false).await;
    let uid = new_uid();
    let me = user(&uid);
    let name = format!("{uid}/movie.mp4");
    let created = env
        .storage
        .tus_create(
            &me,
            TusCreate {
                upload_length: SIZE,
                upload_metadata: Some(metadata("videos", &name, "video/mp4")),
                upsert: false,
            },
        )
        .await
        .unwrap();
    assert_eq!((created.offset, created.length), (0, SIZE));
    assert_eq!(created.object_name, name);

    // The connection drops after 120 MB of the 200 MB body.
    let first = generated(11, SIZE, CHUNK)
        .take((BROKEN_AT / CHUNK as u64) as usize)
        .chain(futures_util::stream::once(async {
            Err::<Bytes, _>(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "network",
            ))
        }));
    let err = env
        .storage
        .tus_patch(&me, &created.id, 0, Some(TUS_CONTENT_TYPE), first)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Body(_)), "{err}");
    assert_eq!(env.count("SELECT count(*) FROM storage.objects").await, 0);

    // HEAD tells where to resume; a PATCH at any other offset is refused (409).
    let status = env.storage.tus_status(&me, &created.id).await.unwrap();
    assert_eq!(status.offset, BROKEN_AT);
    let err = env
        .storage
        .tus_patch(
            &me,
            &created.id,
            0,
            Some(TUS_CONTENT_TYPE),
            generated(1, 10, 10),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StorageError::OffsetMismatch {
            expected: BROKEN_AT,
            given: 0
        }
    ));
    assert_eq!(err.code().status(), 409);

    // The rest, from the offset.
    let rest = generated(11, SIZE, CHUNK).skip((BROKEN_AT / CHUNK as u64) as usize);
    let done = env
        .storage
        .tus_patch(&me, &created.id, BROKEN_AT, Some(TUS_CONTENT_TYPE), rest)
        .await
        .unwrap();
    let TusPatch::Completed(upload, object) = done else {
        panic!("the last PATCH did not complete the upload");
    };
    assert_eq!(upload.offset, SIZE);
    let (source_sha, _) = digest_of(generated(11, SIZE, CHUNK)).await;
    assert_eq!(object.size, SIZE);
    assert_eq!(object.sha256.as_deref(), Some(source_sha.as_str()));
    assert_eq!(object.mime_type, "video/mp4");
    assert_eq!(object.owner.as_deref(), Some(uid.as_str()));
    assert_eq!(object.cache_control.as_deref(), Some("3600"));
    let download = env
        .storage
        .download(&me, "videos", &name, DownloadOptions::default())
        .await
        .unwrap();
    assert_eq!(digest_body(download.body).await, (source_sha, SIZE));
    // The upload and its chunks are gone; only the object's bytes remain.
    assert_eq!(
        env.count("SELECT count(*) FROM storage.resumable_uploads")
            .await,
        0
    );
    assert_eq!(env.stored_files().len(), 1, "{:?}", env.stored_files());
    assert!(matches!(
        env.storage.tus_status(&me, &created.id).await,
        Err(StorageError::UploadNotFound)
    ));
}

async fn single_patch_offsets_and_access(env: Env) {
    let service = AuthContext::service_role();
    env.bucket("docs", false).await;
    env.sql(
        "CREATE POLICY up ON storage.objects FOR INSERT TO authenticated
           WITH CHECK (split_part(name, '/', 1) = auth.uid()::text)",
    )
    .await;
    let (uid, other) = (new_uid(), user(&new_uid()));
    let me = user(&uid);
    // Refused at creation when the caller may not write the name.
    let err = env
        .storage
        .tus_create(
            &other,
            TusCreate {
                upload_length: 10,
                upload_metadata: Some(metadata("docs", &format!("{uid}/x"), "text/plain")),
                upsert: false,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code().status(), 403, "{err}");
    // Bad metadata is named.
    let err = env
        .storage
        .tus_create(
            &me,
            TusCreate {
                upload_length: 1,
                upload_metadata: Some("bucketName ZG9jcw==".into()),
                upsert: false,
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("objectName"), "{err}");

    let name = format!("{uid}/notes.txt");
    let created = env
        .storage
        .tus_create(
            &me,
            TusCreate {
                upload_length: 11,
                upload_metadata: Some(metadata("docs", &name, "text/plain")),
                upsert: false,
            },
        )
        .await
        .unwrap();
    // Someone else cannot see, append to or end it.
    assert!(matches!(
        env.storage.tus_status(&other, &created.id).await,
        Err(StorageError::UploadNotFound)
    ));
    assert!(matches!(
        env.storage
            .tus_patch(
                &other,
                &created.id,
                0,
                Some(TUS_CONTENT_TYPE),
                generated(1, 11, 11)
            )
            .await,
        Err(StorageError::UploadNotFound)
    ));
    assert!(matches!(
        env.storage.tus_terminate(&other, &created.id).await,
        Err(StorageError::UploadNotFound)
    ));
    // The service role may.
    assert_eq!(
        env.storage
            .tus_status(&service, &created.id)
            .await
            .unwrap()
            .offset,
        0
    );
    // Only application/offset+octet-stream.
    let err = env
        .storage
        .tus_patch(
            &me,
            &created.id,
            0,
            Some("text/plain"),
            generated(1, 11, 11),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code().status(), 415);
    // More than Upload-Length is refused.
    let err = env
        .storage
        .tus_patch(
            &me,
            &created.id,
            0,
            Some(TUS_CONTENT_TYPE),
            futures_util::stream::iter(vec![
                Ok(Bytes::from_static(b"hello ")),
                Ok(Bytes::from_static(b"world and more")),
            ]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code().status(), 413, "{err}");
    let offset = env
        .storage
        .tus_status(&me, &created.id)
        .await
        .unwrap()
        .offset;
    assert_eq!(offset, 6, "the bytes within the length were kept");
    let done = env
        .storage
        .tus_patch(
            &me,
            &created.id,
            offset,
            Some(TUS_CONTENT_TYPE),
            futures_util::stream::iter(vec![Ok(Bytes::from_static(b"world"))]),
        )
        .await
        .unwrap();
    let TusPatch::Completed(_, object) = done else {
        panic!("not completed")
    };
    let got = env
        .storage
        .download(&service, "docs", &name, DownloadOptions::default())
        .await
        .unwrap();
    assert_eq!(crate::harness::collect(got.body).await, b"hello world");
    assert_eq!(object.size, 11);

    // One PATCH carrying everything (the common case) takes the single-chunk path.
    let whole = format!("{uid}/whole.bin");
    let created = env
        .storage
        .tus_create(
            &me,
            TusCreate {
                upload_length: 3_000_000,
                upload_metadata: Some(metadata("docs", &whole, "application/octet-stream")),
                upsert: false,
            },
        )
        .await
        .unwrap();
    let done = env
        .storage
        .tus_patch(
            &me,
            &created.id,
            0,
            Some(TUS_CONTENT_TYPE),
            generated(5, 3_000_000, 65536),
        )
        .await
        .unwrap();
    let TusPatch::Completed(_, object) = done else {
        panic!("not completed")
    };
    let (sha, _) = digest_of(generated(5, 3_000_000, 65536)).await;
    assert_eq!(object.sha256.as_deref(), Some(sha.as_str()));
    let got = env
        .storage
        .download(
            &service,
            "docs",
            &whole,
            DownloadOptions {
                range: None,
                verify: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(digest_body(got.body).await, (sha, 3_000_000));
    assert_eq!(env.stored_files().len(), 2, "{:?}", env.stored_files());
}

async fn termination_and_expiry(env: Env) {
    let service = AuthContext::service_role();
    env.bucket("t", false).await;
    let create = |name: &'static str| {
        let storage = env.storage.clone();
        let service = service.clone();
        async move {
            storage
                .tus_create(
                    &service,
                    TusCreate {
                        upload_length: 100,
                        upload_metadata: Some(metadata("t", name, "text/plain")),
                        upsert: false,
                    },
                )
                .await
                .unwrap()
        }
    };
    let ended = create("ended").await;
    let TusPatch::Progress(progress) = env
        .storage
        .tus_patch(
            &service,
            &ended.id,
            0,
            Some(TUS_CONTENT_TYPE),
            generated(1, 40, 40),
        )
        .await
        .unwrap()
    else {
        panic!("40 of 100 bytes completed the upload")
    };
    assert_eq!(progress.offset, 40);
    assert_eq!(env.stored_files().len(), 1);
    env.storage
        .tus_terminate(&service, &ended.id)
        .await
        .unwrap();
    assert!(matches!(
        env.storage.tus_status(&service, &ended.id).await,
        Err(StorageError::UploadNotFound)
    ));
    assert!(env.stored_files().is_empty(), "{:?}", env.stored_files());

    // An abandoned upload past its expiry is gone for the client at once, and the sweep
    // removes its row and chunks.
    let abandoned = create("abandoned").await;
    assert!(abandoned.expires_at > chrono::Utc::now() + chrono::Duration::hours(23));
    env.storage
        .tus_patch(
            &service,
            &abandoned.id,
            0,
            Some(TUS_CONTENT_TYPE),
            generated(1, 10, 10),
        )
        .await
        .unwrap();
    env.sql("UPDATE storage.resumable_uploads SET expires_at = now() - interval '1 second'")
        .await;
    assert!(matches!(
        env.storage.tus_status(&service, &abandoned.id).await,
        Err(StorageError::UploadNotFound)
    ));
    let report = env
        .storage
        .sweep_orphans_older_than(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(report.expired_uploads, 1);
    assert_eq!(
        env.count("SELECT count(*) FROM storage.resumable_uploads")
            .await,
        0
    );
    assert!(env.stored_files().is_empty(), "{:?}", env.stored_files());
}
