//! Objects both ways: sizes from 0 B to 100 MB byte-identical with bounded memory, ranges,
//! upsert, metadata, listing, copy and move, delete.

use fluxbase_auth::AuthContext;
use fluxbase_migrations::{Code, ErrorCode};
use fluxbase_storage::{
    ByteRange, DownloadOptions, ListOptions, SortColumn, SortOrder, StorageError, UploadOptions,
};
use serde_json::json;

use crate::harness::{Env, HEAVY, body, collect, digest_body, digest_of, generated, rss_growth};
use crate::on_both_backends;

on_both_backends!(
    small_sizes_round_trip,
    hundred_megabytes_round_trip_in_bounded_memory,
    ranges,
    upsert_and_metadata,
    listing_with_folders_sort_and_search,
    copy_move_and_delete,
);

async fn small_sizes_round_trip(env: Env) {
    let service = AuthContext::service_role();
    env.bucket("files", false).await;
    for (name, bytes) in [
        ("empty", &b""[..]),
        ("one", b"x"),
        ("dir/few", b"hello world"),
    ] {
        let info = env
            .storage
            .upload(
                &service,
                "files",
                name,
                UploadOptions::default(),
                body(bytes),
            )
            .await
            .unwrap();
        assert_eq!(info.size, bytes.len() as u64);
        assert_eq!(info.mime_type, "application/octet-stream");
        let expected_sha = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(bytes))
        };
        assert_eq!(info.sha256.as_deref(), Some(expected_sha.as_str()));
        assert_eq!(info.etag, format!("\"{expected_sha}\""));
        let download = env
            .storage
            .download(&service, "files", name, DownloadOptions::default())
            .await
            .unwrap();
        assert_eq!(download.content_length(), bytes.len() as u64);
        assert_eq!(collect(download.body).await, bytes);
    }
    // The row the runbook and policies read.
    let row = env
        .db
        .client()
        .await
        .query_one(
            "SELECT size, mime_type, metadata->>'size', path_tokens FROM storage.objects
             WHERE bucket_id = 'files' AND name = 'dir/few'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 11);
    assert_eq!(row.get::<_, String>(2), "11");
    assert_eq!(row.get::<_, Vec<String>>(3), vec!["dir", "few"]);
}

async fn hundred_megabytes_round_trip_in_bounded_memory(env: Env) {
    const SIZE: u64 = 100 * 1024 * 1024;
    let _heavy = HEAVY.lock().await;
    let service = AuthContext::service_role();
    env.bucket("big", false).await;
    let (source_sha, source_len) = digest_of(generated(7, SIZE, 64 * 1024)).await;
    assert_eq!(source_len, SIZE);

    let (info, growth) = rss_growth(env.storage.upload(
        &service,
        "big",
        "blob.bin",
        UploadOptions {
            content_length: Some(SIZE),
            ..UploadOptions::default()
        },
        generated(7, SIZE, 64 * 1024),
    ))
    .await;
    let info = info.unwrap();
    eprintln!("rss growth during a 100 MiB upload: {} KiB", growth / 1024);
    assert_eq!(info.size, SIZE);
    assert_eq!(info.sha256.as_deref(), Some(source_sha.as_str()));
    // Buffering the body would add 100 MB. What may legitimately be resident: the parts in
    // flight (S3: 8 MiB parts, up to 2 in flight plus the one filling; disk: 1 MiB), the
    // HTTP client's buffers, allocator slack, and whatever the light tests running beside
    // this one allocate meanwhile. 48 MiB holds all of that and is half the object.
    assert!(
        growth < 48 * 1024 * 1024,
        "resident memory grew by {} MiB during a 100 MiB upload",
        growth / (1024 * 1024)
    );
    assert_eq!(
        std::fs::metadata(env.bytes_file("big", &info.version))
            .unwrap()
            .len(),
        SIZE
    );

    let (download, growth) = rss_growth(async {
        let download = env
            .storage
            .download(&service, "big", "blob.bin", DownloadOptions::default())
            .await
            .unwrap();
        assert_eq!(download.content_length(), SIZE);
        digest_body(download.body).await
    })
    .await;
    assert_eq!(download, (source_sha, SIZE));
    eprintln!(
        "rss growth during a 100 MiB download: {} KiB",
        growth / 1024
    );
    assert!(
        growth < 48 * 1024 * 1024,
        "resident memory grew by {} MiB during a 100 MiB download",
        growth / (1024 * 1024)
    );
}

async fn ranges(env: Env) {
    let service = AuthContext::service_role();
    env.bucket("r", false).await;
    let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    env.storage
        .upload(&service, "r", "f", UploadOptions::default(), body(&bytes))
        .await
        .unwrap();
    let get = |range: &str| {
        let storage = env.storage.clone();
        let service = service.clone();
        let range = ByteRange::parse(range);
        async move {
            storage
                .download(
                    &service,
                    "r",
                    "f",
                    DownloadOptions {
                        range,
                        verify: false,
                    },
                )
                .await
        }
    };
    let single = get("bytes=10-19").await.unwrap();
    assert_eq!(single.content_range().as_deref(), Some("bytes 10-19/1000"));
    assert_eq!(single.content_length(), 10);
    assert_eq!(collect(single.body).await, &bytes[10..20]);
    let suffix = get("bytes=-5").await.unwrap();
    assert_eq!(
        suffix.content_range().as_deref(),
        Some("bytes 995-999/1000")
    );
    assert_eq!(collect(suffix.body).await, &bytes[995..]);
    let open = get("bytes=990-").await.unwrap();
    assert_eq!(collect(open.body).await, &bytes[990..]);
    let clipped = get("bytes=998-5000").await.unwrap();
    assert_eq!(collect(clipped.body).await, &bytes[998..]);
    let err = get("bytes=1000-1001").await.unwrap_err();
    assert!(matches!(
        err,
        StorageError::RangeNotSatisfiable { size: 1000 }
    ));
    assert_eq!(err.code(), Code::RangeNotSatisfiable);
    assert_eq!(err.code().status(), 416);
    // A malformed Range is ignored: the whole object.
    let whole = get("bytes=5-1").await.unwrap();
    assert!(whole.range.is_none());
    assert_eq!(collect(whole.body).await, bytes);
}

async fn upsert_and_metadata(env: Env) {
    let service = AuthContext::service_role();
    env.bucket("u", false).await;
    let first = env
        .storage
        .upload(
            &service,
            "u",
            "doc.txt",
            UploadOptions {
                content_type: Some("text/plain".into()),
                cache_control: Some("max-age=60".into()),
                user_metadata: Some(json!({"tag": "v1"})),
                ..UploadOptions::default()
            },
            body(b"one"),
        )
        .await
        .unwrap();
    assert_eq!(first.cache_control.as_deref(), Some("max-age=60"));
    assert_eq!(first.user_metadata, Some(json!({"tag": "v1"})));
    // Without upsert a second upload is refused, and the first stays.
    let err = env
        .storage
        .upload(
            &service,
            "u",
            "doc.txt",
            UploadOptions::default(),
            body(b"two"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::ObjectExists), "{err}");
    assert_eq!(err.code().status(), 409);
    // With upsert it replaces: new version, old bytes gone, same row id.
    let second = env
        .storage
        .upload(
            &service,
            "u",
            "doc.txt",
            UploadOptions {
                upsert: true,
                ..UploadOptions::default()
            },
            body(b"two!"),
        )
        .await
        .unwrap();
    assert_eq!(second.id, first.id);
    assert_ne!(second.version, first.version);
    assert_eq!(second.size, 4);
    assert_eq!(second.created_at, first.created_at);
    assert!(!env.bytes_file("u", &first.version).exists());
    assert!(env.bytes_file("u", &second.version).exists());
    let info = env.storage.info(&service, "u", "doc.txt").await.unwrap();
    assert_eq!(info, second);
    assert!(info.matches_if_none_match(&second.etag));
    assert!(!info.matches_if_none_match(&first.etag));
    assert_eq!(env.stored_files().len(), 1);
}

async fn listing_with_folders_sort_and_search(env: Env) {
    let service = AuthContext::service_role();
    env.bucket("l", false).await;
    for name in [
        "b.txt",
        "a.txt",
        "docs/x.md",
        "docs/y.md",
        "pics/2024/p.png",
        "Apple.txt",
    ] {
        env.storage
            .upload(
                &service,
                "l",
                name,
                UploadOptions::default(),
                body(name.as_bytes()),
            )
            .await
            .unwrap();
    }
    let list = |options: ListOptions| {
        let storage = env.storage.clone();
        let service = service.clone();
        async move { storage.list(&service, "l", &options).await.unwrap() }
    };
    let names = |entries: Vec<fluxbase_storage::ListEntry>| {
        entries
            .into_iter()
            .map(|e| format!("{}{}", e.name, if e.is_folder() { "/" } else { "" }))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(list(ListOptions::default()).await),
        ["Apple.txt", "a.txt", "b.txt", "docs/", "pics/"]
    );
    assert_eq!(
        names(
            list(ListOptions {
                prefix: "docs".into(),
                order: SortOrder::Desc,
                ..ListOptions::default()
            })
            .await
        ),
        ["y.md", "x.md"]
    );
    assert_eq!(
        names(
            list(ListOptions {
                prefix: "pics/".into(),
                ..ListOptions::default()
            })
            .await
        ),
        ["2024/"]
    );
    assert_eq!(
        names(
            list(ListOptions {
                limit: Some(2),
                offset: 1,
                ..ListOptions::default()
            })
            .await
        ),
        ["a.txt", "b.txt"]
    );
    // Search is a case-insensitive prefix of the entry; LIKE wildcards are literal.
    assert_eq!(
        names(
            list(ListOptions {
                search: Some("a".into()),
                ..ListOptions::default()
            })
            .await
        ),
        ["Apple.txt", "a.txt"]
    );
    assert!(
        list(ListOptions {
            search: Some("%".into()),
            ..ListOptions::default()
        })
        .await
        .is_empty()
    );
    // Newest first: folders first (no timestamps), then objects by creation.
    let by_time = names(
        list(ListOptions {
            sort: SortColumn::CreatedAt,
            order: SortOrder::Desc,
            ..ListOptions::default()
        })
        .await,
    );
    assert_eq!(by_time, ["docs/", "pics/", "Apple.txt", "a.txt", "b.txt"]);
    let files = list(ListOptions {
        prefix: "docs".into(),
        ..ListOptions::default()
    })
    .await;
    assert_eq!(files[0].object.as_ref().unwrap().name, "docs/x.md");
}

async fn copy_move_and_delete(env: Env) {
    let service = AuthContext::service_role();
    env.bucket("c", false).await;
    env.bucket("d", false).await;
    let original = env
        .storage
        .upload(
            &service,
            "c",
            "a/one.txt",
            UploadOptions::default(),
            body(b"payload"),
        )
        .await
        .unwrap();
    let copy = env
        .storage
        .copy(&service, ("c", "a/one.txt"), ("d", "copy.txt"), false)
        .await
        .unwrap();
    assert_eq!(copy.sha256, original.sha256);
    assert_ne!(copy.version, original.version);
    let moved = env
        .storage
        .move_object(&service, ("c", "a/one.txt"), ("c", "b/two.txt"))
        .await
        .unwrap();
    assert_eq!(moved.id, original.id);
    assert_eq!(
        moved.version, original.version,
        "a move inside a bucket moves no byte"
    );
    assert!(matches!(
        env.storage.info(&service, "c", "a/one.txt").await,
        Err(StorageError::ObjectNotFound)
    ));
    let across = env
        .storage
        .move_object(&service, ("c", "b/two.txt"), ("d", "moved.txt"))
        .await
        .unwrap();
    assert_eq!(across.bucket_id, "d");
    assert!(!env.bytes_file("c", &original.version).exists());
    let got = env
        .storage
        .download(&service, "d", "moved.txt", DownloadOptions::default())
        .await
        .unwrap();
    assert_eq!(collect(got.body).await, b"payload");
    // A move onto an existing name is refused.
    assert!(matches!(
        env.storage
            .move_object(&service, ("d", "moved.txt"), ("d", "copy.txt"))
            .await,
        Err(StorageError::ObjectExists)
    ));
    // Delete many: existing ones are returned, missing ones left out.
    let deleted = env
        .storage
        .remove(
            &service,
            "d",
            &["moved.txt".into(), "copy.txt".into(), "missing".into()],
        )
        .await
        .unwrap();
    assert_eq!(deleted.len(), 2);
    assert!(env.stored_files().is_empty(), "{:?}", env.stored_files());
    assert_eq!(env.count("SELECT count(*) FROM storage.objects").await, 0);
    // Buckets: delete only when empty.
    env.storage
        .upload(&service, "c", "keep", UploadOptions::default(), body(b"k"))
        .await
        .unwrap();
    let err = env.storage.delete_bucket(&service, "c").await.unwrap_err();
    assert!(matches!(err, StorageError::BucketNotEmpty), "{err}");
    assert_eq!(env.storage.empty_bucket(&service, "c").await.unwrap(), 1);
    env.storage.delete_bucket(&service, "c").await.unwrap();
    assert!(matches!(
        env.storage.get_bucket(&service, "c").await,
        Err(StorageError::BucketNotFound)
    ));
}
