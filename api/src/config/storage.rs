//! `storage.*`: where the bytes of buckets live — a local directory or an S3-compatible
//! store — as the runbooks configure it (`FLUXBASE_STORAGE_PROVIDER`, `FLUXBASE_S3_*`).

use std::path::PathBuf;

use fluxbase_storage::{BackendConfig, S3Settings};
use serde::{Deserialize, Serialize};

/// Default `storage.local_path`: beside the embedded cluster, so a development checkout
/// keeps everything under `./.fluxbase` (the systemd unit and the image set
/// `/var/fluxbase/storage`).
pub const DEFAULT_STORAGE_PATH: &str = "./.fluxbase/storage";

/// Default `storage.s3.region` (what MinIO and most self-hosted stores answer to).
pub const DEFAULT_S3_REGION: &str = "us-east-1";

/// `storage.provider`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageProvider {
    /// Files under `storage.local_path`.
    Local,
    /// An S3-compatible object store.
    S3,
}

impl StorageProvider {
    /// The name as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageProvider::Local => "local",
            StorageProvider::S3 => "s3",
        }
    }
}

/// `storage.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `local` or `s3` (`FLUXBASE_STORAGE_PROVIDER`).
    pub provider: StorageProvider,
    /// Root directory of the local provider (created at start-up when missing).
    pub local_path: String,
    /// S3 settings (`FLUXBASE_S3_*`).
    pub s3: S3Config,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            provider: StorageProvider::Local,
            local_path: DEFAULT_STORAGE_PATH.into(),
            s3: S3Config::default(),
        }
    }
}

/// `storage.s3.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint host or URL (`s3.amazonaws.com`, `http://minio:9000`); a host without a
    /// scheme means HTTPS. Requests are path-style, so MinIO works by endpoint alone.
    pub endpoint: Option<String>,
    /// Access key id.
    pub access_key: Option<String>,
    /// Secret access key.
    pub secret_key: Option<String>,
    /// The one S3 bucket holding every Fluxbase bucket's objects.
    pub bucket: Option<String>,
    /// Region.
    pub region: String,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            endpoint: None,
            access_key: None,
            secret_key: None,
            bucket: None,
            region: DEFAULT_S3_REGION.into(),
        }
    }
}

impl StorageConfig {
    /// Rules of the storage keys; each error names its key (and the variable that sets it).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        match self.provider {
            StorageProvider::Local => {
                if self.local_path.trim().is_empty() {
                    errors.push((
                        "storage.local_path".into(),
                        "must not be empty when storage.provider is local".into(),
                    ));
                }
            }
            StorageProvider::S3 => {
                let s3 = &self.s3;
                for (value, key, var) in [
                    (&s3.bucket, "storage.s3.bucket", "FLUXBASE_S3_BUCKET"),
                    (
                        &s3.access_key,
                        "storage.s3.access_key",
                        "FLUXBASE_S3_ACCESS_KEY",
                    ),
                    (
                        &s3.secret_key,
                        "storage.s3.secret_key",
                        "FLUXBASE_S3_SECRET_KEY",
                    ),
                ] {
                    if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
                        errors.push((
                            key.into(),
                            format!("is required when storage.provider is s3 ({var})"),
                        ));
                    }
                }
                if s3.region.trim().is_empty() {
                    errors.push((
                        "storage.s3.region".into(),
                        "must not be empty (FLUXBASE_S3_REGION; us-east-1 suits most \
                         self-hosted stores)"
                            .into(),
                    ));
                }
            }
        }
        errors
    }

    /// The storage crate's backend settings (call after [`StorageConfig::validate`]: a
    /// missing S3 key becomes an empty string here).
    pub fn backend(&self) -> BackendConfig {
        match self.provider {
            StorageProvider::Local => BackendConfig::Local {
                path: PathBuf::from(&self.local_path),
            },
            StorageProvider::S3 => {
                let s3 = &self.s3;
                BackendConfig::S3(S3Settings {
                    endpoint: s3.endpoint.clone(),
                    access_key: s3.access_key.clone().unwrap_or_default(),
                    secret_key: s3.secret_key.clone().unwrap_or_default(),
                    bucket: s3.bucket.clone().unwrap_or_default(),
                    region: s3.region.clone(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_needs_its_keys_and_names_them() {
        let mut config = StorageConfig {
            provider: StorageProvider::S3,
            ..StorageConfig::default()
        };
        let keys: Vec<String> = config.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "storage.s3.bucket",
                "storage.s3.access_key",
                "storage.s3.secret_key"
            ]
        );
        config.s3.bucket = Some("b".into());
        config.s3.access_key = Some("a".into());
        config.s3.secret_key = Some("s".into());
        assert!(config.validate().is_empty());
        match config.backend() {
            BackendConfig::S3(s3) => {
                assert_eq!((s3.bucket.as_str(), s3.region.as_str()), ("b", "us-east-1"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn local_is_the_default() {
        let config = StorageConfig::default();
        assert!(config.validate().is_empty());
        assert!(matches!(
            config.backend(),
            BackendConfig::Local { path } if path == std::path::Path::new(DEFAULT_STORAGE_PATH)
        ));
    }
}
