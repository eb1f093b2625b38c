//! tus 1.0.0 over HTTP through the binary: a PATCH cut off midway keeps what arrived, `HEAD`
//! tells where to resume, the rest completes the object byte-identical; offsets, versions
//! and termination as the protocol says.

use base64::Engine;
use fluxbase_storage::test_utils::generated;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::env::{
    Backend, binary, digest_of, eventually, service_key, stream_download, stream_request,
};
use crate::storage_on_both_backends;
use crate::support::http::{Response, request};

storage_on_both_backends!(interrupted_and_resumed, protocol_rules);

const SIZE: u64 = 12 * 1024 * 1024;

/// `key base64(value)` pairs of `Upload-Metadata`.
fn metadata(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{k} {}",
                base64::engine::general_purpose::STANDARD.encode(v)
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Creates an upload of `length` bytes for `bucket/name` → its path (from `Location`).
async fn create(addr: &str, auth: &str, bucket: &str, name: &str, length: u64) -> String {
    let meta = metadata(&[
        ("bucketName", bucket),
        ("objectName", name),
        ("contentType", "video/mp4"),
    ]);
    let length = length.to_string();
    let res = request(
        addr,
        "POST",
        "/storage/v1/upload/resumable",
        &[
            ("Authorization", auth),
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Length", &length),
            ("Upload-Metadata", &meta),
        ],
        "",
    )
    .await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(res.header("tus-resumable"), Some("1.0.0"));
    assert_eq!(res.header("upload-offset"), Some("0"));
    assert!(res.header("upload-expires").is_some());
    let location = res.header("location").unwrap().to_string();
    assert!(
        location.starts_with("/storage/v1/upload/resumable/"),
        "{location}"
    );
    location
}

/// `HEAD` of an upload.
async fn head(addr: &str, auth: &str, path: &str) -> Response {
    request(
        addr,
        "HEAD",
        path,
        &[("Authorization", auth), ("Tus-Resumable", "1.0.0")],
        "",
    )
    .await
}

async fn interrupted_and_resumed(backend: Backend) {
    let (server, _dir, db, _root) = binary(backend, &[]).await;
    let addr = server.addr.clone();
    let auth = format!("Bearer {}", service_key());
    let bucket = request(
        &addr,
        "POST",
        "/storage/v1/bucket",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        r#"{"id":"videos","name":"videos"}"#,
    )
    .await;
    assert_eq!(bucket.status, 200, "{}", bucket.body);
    let path = create(&addr, &auth, "videos", "clips/a.mp4", SIZE).await;

    // The first PATCH promises everything, sends 5 MB and the connection breaks.
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    let patch_head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nTus-Resumable: 1.0.0\r\n\
         Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {SIZE}\r\n\r\n"
    );
    write.write_all(patch_head.as_bytes()).await.unwrap();
    let mut first = std::pin::pin!(generated(9, SIZE, 256 * 1024).take(20));
    while let Some(chunk) = first.next().await {
        write.write_all(&chunk.unwrap()).await.unwrap();
    }
    write.flush().await.unwrap();
    drop((read, write));

    // Once the server has kept what arrived, HEAD tells the offset to resume from.
    let scrape_has_failed_patch = || async {
        let scrape = crate::support::http(&addr, "GET", "/metrics").await;
        scrape.body.contains(
            "fluxbase_storage_operations_total{op=\"tus_patch\",result=\"bad_request\"} 1",
        )
    };
    eventually("the broken PATCH is over", scrape_has_failed_patch).await;
    let state = head(&addr, &auth, &path).await;
    assert_eq!(state.status, 200);
    assert_eq!(
        state.header("upload-length"),
        Some(SIZE.to_string().as_str())
    );
    assert_eq!(state.header("cache-control"), Some("no-store"));
    let offset: u64 = state.header("upload-offset").unwrap().parse().unwrap();
    assert!(offset > 0 && offset <= 20 * 256 * 1024, "offset {offset}");

    // Resuming at a wrong offset is a conflict; at the right one it completes.
    let wrong = request(
        &addr,
        "PATCH",
        &path,
        &[
            ("Authorization", &auth),
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Offset", "0"),
            ("Content-Type", "application/offset+octet-stream"),
        ],
        "x",
    )
    .await;
    assert_eq!(wrong.status, 409, "{}", wrong.body);
    assert_eq!(wrong.header("tus-resumable"), Some("1.0.0"));
    let rest = skip_bytes(generated(9, SIZE, 256 * 1024), offset);
    let (done, body) = stream_request(
        &addr,
        &format!(
            "PATCH {path} HTTP/1.1\r\nAuthorization: {auth}\r\nTus-Resumable: 1.0.0\r\n\
             Upload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream"
        ),
        SIZE - offset,
        rest,
    )
    .await;
    assert_eq!(done.status, 204, "{body}");
    assert_eq!(
        done.header("upload-offset"),
        Some(SIZE.to_string().as_str())
    );

    let (got, sha, len) = stream_download(
        &addr,
        "/storage/v1/object/videos/clips/a.mp4",
        &format!("Authorization: {auth}\r\n"),
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), Some("video/mp4"));
    let (expected, _) = digest_of(generated(9, SIZE, 1 << 20)).await;
    assert_eq!((sha, len), (expected, SIZE));
    // The upload is finished: its state is gone.
    let after = head(&addr, &auth, &path).await;
    assert_eq!(after.status, 404);
    let uploads: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM storage.resumable_uploads", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(uploads, 0);
}

/// Drops the first `n` bytes of a stream (across chunks).
fn skip_bytes(
    stream: impl futures_util::Stream<Item = std::io::Result<actix_web::web::Bytes>>,
    n: u64,
) -> impl futures_util::Stream<Item = std::io::Result<actix_web::web::Bytes>> {
    let mut left = n as usize;
    stream
        .map(move |chunk| {
            let chunk = chunk?;
            let cut = left.min(chunk.len());
            left -= cut;
            Ok(chunk.slice(cut..))
        })
        .filter(|chunk| std::future::ready(chunk.as_ref().map_or(true, |c| !c.is_empty())))
}

async fn protocol_rules(backend: Backend) {
    let (server, _dir, _db, _root) = binary(backend, &[]).await;
    let addr = server.addr.clone();
    let auth = format!("Bearer {}", service_key());
    let bucket = request(
        &addr,
        "POST",
        "/storage/v1/bucket",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        r#"{"id":"b","name":"b","file_size_limit":100}"#,
    )
    .await;
    assert_eq!(bucket.status, 200, "{}", bucket.body);

    let options = request(&addr, "OPTIONS", "/storage/v1/upload/resumable", &[], "").await;
    assert_eq!(options.status, 204);
    assert_eq!(options.header("tus-version"), Some("1.0.0"));
    assert_eq!(
        options.header("tus-extension"),
        Some("creation,termination,expiration")
    );

    let meta = metadata(&[("bucketName", "b"), ("objectName", "x.bin")]);
    let no_version = request(
        &addr,
        "POST",
        "/storage/v1/upload/resumable",
        &[
            ("Authorization", &auth),
            ("Upload-Length", "10"),
            ("Upload-Metadata", &meta),
        ],
        "",
    )
    .await;
    assert_eq!(no_version.status, 412, "{}", no_version.body);
    assert_eq!(no_version.header("tus-version"), Some("1.0.0"));
    let too_big = request(
        &addr,
        "POST",
        "/storage/v1/upload/resumable",
        &[
            ("Authorization", &auth),
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Length", "101"),
            ("Upload-Metadata", &meta),
        ],
        "",
    )
    .await;
    assert_eq!(too_big.status, 413, "{}", too_big.body);
    let no_length = request(
        &addr,
        "POST",
        "/storage/v1/upload/resumable",
        &[
            ("Authorization", &auth),
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Metadata", &meta),
        ],
        "",
    )
    .await;
    assert_eq!(no_length.status, 400, "{}", no_length.body);
    assert!(
        no_length.body.contains("upload-length"),
        "{}",
        no_length.body
    );
    let no_name = request(
        &addr,
        "POST",
        "/storage/v1/upload/resumable",
        &[
            ("Authorization", &auth),
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Length", "10"),
            ("Upload-Metadata", &metadata(&[("bucketName", "b")])),
        ],
        "",
    )
    .await;
    assert_eq!(no_name.status, 400, "{}", no_name.body);
    assert!(no_name.body.contains("objectName"), "{}", no_name.body);

    let path = create(&addr, &auth, "b", "x.bin", 10).await;
    let wrong_type = request(
        &addr,
        "PATCH",
        &path,
        &[
            ("Authorization", &auth),
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Offset", "0"),
        ],
        "0123456789",
    )
    .await;
    assert_eq!(wrong_type.status, 415, "{}", wrong_type.body);
    // Someone else cannot see or touch the upload.
    let other = format!(
        "Bearer {}",
        crate::support::token(
            serde_json::json!({"role": "authenticated", "sub": uuid::Uuid::new_v4()})
        )
    );
    assert_eq!(head(&addr, &other, &path).await.status, 404);
    let terminate = request(
        &addr,
        "DELETE",
        &path,
        &[("Authorization", &auth), ("Tus-Resumable", "1.0.0")],
        "",
    )
    .await;
    assert_eq!(terminate.status, 204, "{}", terminate.body);
    assert_eq!(head(&addr, &auth, &path).await.status, 404);
}
