//! The S3 backend: one S3 bucket (`storage.s3.bucket`) holds every Fluxbase bucket's keys,
//! addressed path-style so MinIO, s3s and other self-hosted stores work by endpoint alone.
//! Large bodies go up as multipart uploads of 8 MiB parts; downloads stream.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};

use super::{
    Backend, BackendHealth, BodyStream, ByteStream, OnBodyError, PutOutcome, StoredKey,
    get_streaming, list_keys, missing_or_backend, probe_round_trip, put_streaming,
};
use crate::error::StorageError;

/// Multipart part size (S3's minimum is 5 MiB for every part but the last).
const PART_SIZE: usize = 8 * 1024 * 1024;

/// The `storage.s3.*` settings.
#[derive(Clone)]
pub struct S3Settings {
    /// Endpoint URL or host (`http://127.0.0.1:9000`, `s3.amazonaws.com`); `None` for AWS
    /// in `region`. A host without a scheme means HTTPS.
    pub endpoint: Option<String>,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// The S3 bucket.
    pub bucket: String,
    /// Region (`us-east-1` for most self-hosted stores).
    pub region: String,
}

impl std::fmt::Debug for S3Settings {
    /// Without the keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// Objects in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Backend {
    store: Arc<AmazonS3>,
}

impl S3Backend {
    /// Builds the client (no request is made until first use).
    pub fn new(settings: &S3Settings) -> Result<S3Backend, StorageError> {
        // reqwest is built with rustls but no bundled provider: ring, which the rest of
        // the workspace's TLS already uses. An earlier install (ours or the server's) wins.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_access_key_id(&settings.access_key)
            .with_secret_access_key(&settings.secret_key)
            .with_virtual_hosted_style_request(false)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
            })
            // No overall request timeout: a large download streams for as long as the
            // client reads. Connecting must be quick.
            .with_client_options(
                ClientOptions::new()
                    .with_timeout_disabled()
                    .with_connect_timeout(Duration::from_secs(5)),
            );
        if let Some(endpoint) = settings.endpoint.as_deref().filter(|e| !e.is_empty()) {
            let url = if endpoint.contains("://") {
                endpoint.to_string()
            } else {
                format!("https://{endpoint}")
            };
            builder = builder
                .with_allow_http(url.starts_with("http://"))
                .with_endpoint(url);
        }
        let store = builder.build().map_err(StorageError::Backend)?;
        Ok(S3Backend {
            store: Arc::new(store),
        })
    }
}

#[async_trait]
impl Backend for S3Backend {
    fn provider(&self) -> &'static str {
        "s3"
    }

    async fn put(
        &self,
        key: &Path,
        body: BodyStream<'_>,
        on_error: OnBodyError,
    ) -> Result<PutOutcome, StorageError> {
        put_streaming(self.store.as_ref(), key, body, PART_SIZE, on_error).await
    }

    async fn get(&self, key: &Path, range: Option<Range<u64>>) -> Result<ByteStream, StorageError> {
        get_streaming(self.store.as_ref(), key, range).await
    }

    async fn delete(&self, key: &Path) -> Result<(), StorageError> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(StorageError::Backend(err)),
        }
    }

    async fn copy(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        self.store
            .copy(from, to)
            .await
            .map_err(|err| missing_or_backend(err, from))
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        self.store
            .rename(from, to)
            .await
            .map_err(|err| missing_or_backend(err, from))
    }

    fn list(&self, prefix: &Path) -> BoxStream<'static, Result<StoredKey, StorageError>> {
        let store: Arc<dyn ObjectStore> = self.store.clone();
        list_keys(store, prefix)
    }

    async fn probe(&self) -> BackendHealth {
        let started = Instant::now();
        let result = probe_round_trip(self.store.as_ref()).await;
        BackendHealth {
            provider: "s3",
            reachable: result.is_ok(),
            latency_ms: started.elapsed().as_millis() as u64,
            free_bytes: None,
            total_bytes: None,
            error: result.err().map(|err| err.to_string()),
        }
    }
}
