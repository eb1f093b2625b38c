//! Who may do what: Supabase's owner-folder policies decide for users, the service role
//! sees everything, public buckets read without a token, signed URLs work without a
//! session until they expire and only for the object they were made for.

use std::time::Duration;

use fluxbase_auth::AuthContext;
use fluxbase_migrations::ErrorCode;
use fluxbase_storage::{
    DownloadOptions, ListOptions, NewBucket, SignedAction, StorageError, UploadOptions,
};

use crate::harness::{Env, body, collect, new_uid, user};
use crate::on_both_backends;

on_both_backends!(
    owner_only_bucket,
    public_bucket,
    signed_urls,
    buckets_are_guarded_too
);

/// The policies Supabase's docs give for private per-user folders, in both spellings.
const OWNER_POLICIES: &str = r#"
CREATE POLICY own_read ON storage.objects FOR SELECT TO authenticated
  USING (bucket_id = 'private' AND (storage.foldername(name))[1] = auth.uid()::text);
CREATE POLICY own_insert ON storage.objects FOR INSERT TO authenticated
  WITH CHECK (bucket_id = 'private' AND (storage.foldername(name))[1] = auth.uid()::text);
CREATE POLICY own_update ON storage.objects FOR UPDATE TO authenticated
  USING (bucket_id = 'private' AND split_part(name, '/', 1) = auth.uid()::text)
  WITH CHECK (bucket_id = 'private' AND split_part(name, '/', 1) = auth.uid()::text);
CREATE POLICY own_delete ON storage.objects FOR DELETE TO authenticated
  USING (bucket_id = 'private' AND split_part(name, '/', 1) = auth.uid()::text);
"#;

async fn owner_only_bucket(env: Env) {
    env.bucket("private", false).await;
    env.sql(OWNER_POLICIES).await;
    let (a_id, b_id) = (new_uid(), new_uid());
    let (a, b) = (user(&a_id), user(&b_id));
    let b_file = format!("{b_id}/secret.txt");

    let own = env
        .storage
        .upload(
            &b,
            "private",
            &b_file,
            UploadOptions::default(),
            body(b"b's"),
        )
        .await
        .unwrap();
    assert_eq!(own.owner.as_deref(), Some(b_id.as_str()));
    let owner_uuid: Option<uuid::Uuid> = env
        .db
        .client()
        .await
        .query_one("SELECT owner FROM storage.objects", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner_uuid.unwrap().to_string(), b_id);

    // A cannot read, list, overwrite, move or delete B's file, nor write into B's folder.
    assert!(matches!(
        env.storage
            .download(&a, "private", &b_file, DownloadOptions::default())
            .await,
        Err(StorageError::ObjectNotFound)
    ));
    assert!(matches!(
        env.storage.info(&a, "private", &b_file).await,
        Err(StorageError::ObjectNotFound)
    ));
    let listed = env
        .storage
        .list(
            &a,
            "private",
            &ListOptions {
                prefix: b_id.clone(),
                ..ListOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(listed.is_empty());
    assert!(
        env.storage
            .list(&a, "private", &ListOptions::default())
            .await
            .unwrap()
            .is_empty()
    );
    let overwrite = env
        .storage
        .upload(
            &a,
            "private",
            &b_file,
            UploadOptions {
                upsert: true,
                ..UploadOptions::default()
            },
            body(b"a's"),
        )
        .await
        .unwrap_err();
    assert_eq!(overwrite.code().status(), 403, "{overwrite}");
    let plant = env
        .storage
        .upload(
            &a,
            "private",
            &format!("{b_id}/planted"),
            UploadOptions::default(),
            body(b"x"),
        )
        .await
        .unwrap_err();
    assert!(matches!(plant, StorageError::Forbidden(_)), "{plant}");
    assert!(
        env.storage
            .remove(&a, "private", std::slice::from_ref(&b_file))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        env.storage
            .move_object(
                &a,
                ("private", &b_file),
                ("private", &format!("{a_id}/stolen"))
            )
            .await,
        Err(StorageError::ObjectNotFound)
    ));
    assert!(matches!(
        env.storage
            .sign_download(&a, "private", &b_file, Duration::from_secs(60))
            .await,
        Err(StorageError::ObjectNotFound)
    ));
    // Refused writes left no bytes and no rows behind; B's file is intact.
    assert_eq!(env.stored_files().len(), 1);
    assert_eq!(env.count("SELECT count(*) FROM storage.objects").await, 1);
    let still = env
        .storage
        .download(&b, "private", &b_file, DownloadOptions::default())
        .await
        .unwrap();
    assert_eq!(collect(still.body).await, b"b's");

    // A works in A's own folder; anon sees nothing; the service role sees all.
    env.storage
        .upload(
            &a,
            "private",
            &format!("{a_id}/mine.txt"),
            UploadOptions::default(),
            body(b"a"),
        )
        .await
        .unwrap();
    let anon = AuthContext::anon();
    assert!(
        env.storage
            .list(&anon, "private", &ListOptions::default())
            .await
            .unwrap()
            .is_empty()
    );
    let all = env
        .storage
        .list(
            &AuthContext::service_role(),
            "private",
            &ListOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|e| e.is_folder()));
    // B may move and delete its own file.
    env.storage
        .move_object(
            &b,
            ("private", &b_file),
            ("private", &format!("{b_id}/renamed")),
        )
        .await
        .unwrap();
    assert_eq!(
        env.storage
            .remove(&b, "private", &[format!("{b_id}/renamed")])
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn public_bucket(env: Env) {
    let service = AuthContext::service_role();
    env.bucket("pub", true).await;
    env.bucket("priv", false).await;
    for bucket in ["pub", "priv"] {
        env.storage
            .upload(
                &service,
                bucket,
                "logo.svg",
                UploadOptions {
                    content_type: Some("image/svg+xml".into()),
                    ..UploadOptions::default()
                },
                body(b"<svg/>"),
            )
            .await
            .unwrap();
    }
    let public = env
        .storage
        .download_public("pub", "logo.svg", DownloadOptions::default())
        .await
        .unwrap();
    assert_eq!(public.info.mime_type, "image/svg+xml");
    assert_eq!(collect(public.body).await, b"<svg/>");
    assert_eq!(
        env.storage
            .info_public("pub", "logo.svg")
            .await
            .unwrap()
            .size,
        6
    );
    // A private bucket is not readable that way, and says nothing about what it holds.
    assert!(matches!(
        env.storage
            .download_public("priv", "logo.svg", DownloadOptions::default())
            .await,
        Err(StorageError::BucketNotFound)
    ));
    // Public means readable, not writable: anon still needs a policy to upload.
    let err = env
        .storage
        .upload(
            &AuthContext::anon(),
            "pub",
            "x",
            UploadOptions::default(),
            body(b"x"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code().status(), 403);
}

async fn signed_urls(env: Env) {
    let service = AuthContext::service_role();
    env.bucket("s", false).await;
    env.storage
        .upload(
            &service,
            "s",
            "a/report.pdf",
            UploadOptions::default(),
            body(b"%PDF"),
        )
        .await
        .unwrap();
    let signed = env
        .storage
        .sign_download(&service, "s", "a/report.pdf", Duration::from_secs(60))
        .await
        .unwrap();
    // No session needed.
    let got = env
        .storage
        .download_signed(
            "s",
            "a/report.pdf",
            &signed.token,
            DownloadOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(collect(got.body).await, b"%PDF");
    // The token is for that object and that action only.
    for (bucket, name) in [("s", "a/other.pdf"), ("t", "a/report.pdf")] {
        assert!(
            env.storage
                .download_signed(bucket, name, &signed.token, DownloadOptions::default())
                .await
                .is_err()
        );
    }
    assert!(matches!(
        env.storage
            .verify_token(SignedAction::Upload, "s", "a/report.pdf", &signed.token),
        Err(StorageError::InvalidSignature)
    ));
    // A flipped character anywhere breaks it.
    let mut tampered = signed.token.clone().into_bytes();
    let at = tampered.len() / 3;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert!(matches!(
        env.storage
            .download_signed("s", "a/report.pdf", &tampered, DownloadOptions::default())
            .await,
        Err(StorageError::InvalidSignature)
    ));
    // Expiry: a URL of one second is refused once that second has passed.
    let short = env
        .storage
        .sign_download(&service, "s", "a/report.pdf", Duration::from_secs(1))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let expired = loop {
        match env
            .storage
            .verify_token(SignedAction::Download, "s", "a/report.pdf", &short.token)
        {
            Err(err) => break err,
            Ok(_) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the token never expired"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(matches!(expired, StorageError::SignatureExpired));
    assert_eq!(expired.code().status(), 401);

    // Signed upload: made by a user allowed to write there, used without a session.
    env.sql(
        "CREATE POLICY up ON storage.objects FOR INSERT TO authenticated
           WITH CHECK (bucket_id = 's' AND split_part(name, '/', 1) = auth.uid()::text)",
    )
    .await;
    let uid = new_uid();
    let writer = user(&uid);
    let name = format!("{uid}/upload.bin");
    let upload = env
        .storage
        .sign_upload(&writer, "s", &name, false, Duration::from_secs(60))
        .await
        .unwrap();
    let stored = env
        .storage
        .upload_signed(
            "s",
            &name,
            &upload.token,
            UploadOptions::default(),
            body(b"signed"),
        )
        .await
        .unwrap();
    assert_eq!(stored.owner.as_deref(), Some(uid.as_str()));
    // Not for another name, and not again without upsert.
    assert!(matches!(
        env.storage
            .upload_signed(
                "s",
                &format!("{uid}/else"),
                &upload.token,
                UploadOptions::default(),
                body(b"x")
            )
            .await,
        Err(StorageError::InvalidSignature)
    ));
    assert!(matches!(
        env.storage
            .upload_signed(
                "s",
                &name,
                &upload.token,
                UploadOptions::default(),
                body(b"x")
            )
            .await,
        Err(StorageError::ObjectExists)
    ));
    // A user who may not write the name gets no signed upload URL.
    assert_eq!(
        env.storage
            .sign_upload(
                &writer,
                "s",
                "someone-else/x",
                false,
                Duration::from_secs(60)
            )
            .await
            .unwrap_err()
            .code()
            .status(),
        403
    );
}

async fn buckets_are_guarded_too(env: Env) {
    let someone = user(&new_uid());
    // No policy on storage.buckets: a user can neither create nor see buckets.
    let err = env
        .storage
        .create_bucket(
            &someone,
            NewBucket {
                id: "mine".into(),
                ..NewBucket::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code().status(), 403, "{err}");
    env.bucket("shared", false).await;
    assert!(env.storage.list_buckets(&someone).await.unwrap().is_empty());
    assert!(matches!(
        env.storage.get_bucket(&someone, "shared").await,
        Err(StorageError::BucketNotFound)
    ));
    // A read policy lets them see it; the service role always does.
    env.sql("CREATE POLICY see ON storage.buckets FOR SELECT TO authenticated USING (true)")
        .await;
    assert_eq!(env.storage.list_buckets(&someone).await.unwrap().len(), 1);
    let service = AuthContext::service_role();
    let updated = env
        .storage
        .update_bucket(
            &service,
            "shared",
            fluxbase_storage::BucketUpdate {
                public: Some(true),
                file_size_limit: Some(Some(10)),
                allowed_mime_types: Some(Some(vec!["image/*".into()])),
            },
        )
        .await
        .unwrap();
    assert!(updated.public);
    assert_eq!(updated.file_size_limit, Some(10));
    assert!(matches!(
        env.storage
            .create_bucket(
                &service,
                NewBucket {
                    id: "shared".into(),
                    ..NewBucket::default()
                }
            )
            .await,
        Err(StorageError::BucketExists)
    ));
}
