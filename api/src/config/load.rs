//! Loading: defaults, then the YAML file, then the environment; every error collected with
//! the key, the bad value and where it came from.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{Config, SECRET_KEYS, yaml};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line of the configuration file.
    File { path: PathBuf, line: usize },
    /// An environment variable.
    Env(String),
    /// A rule over several keys, or a value not given anywhere.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::Default => f.write_str("defaults"),
        }
    }
}

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key, e.g. `realtime.rls_cache_size`.
    pub key: String,
    /// The offending value as written, when there is one.
    pub value: Option<String>,
    /// Where it came from.
    pub origin: Origin,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.key)?;
        if let Some(value) = &self.value {
            write!(f, " = {value}")?;
        }
        write!(f, " ({}): {}", self.origin, self.message)
    }
}

/// A loaded configuration and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The values.
    pub config: Config,
    /// The file read, if any.
    pub file: Option<PathBuf>,
}

/// Environment variables that are not `FLUXBASE_<SECTION>_<KEY>` but name a key anyway.
const ENV_ALIASES: &[(&str, &str)] = &[
    ("DATABASE_URL", "database.url"),
    ("FLUXBASE_DATABASE_URL", "database.url"),
    ("FLUXBASE_JWT_SECRET", "auth.jwt_secret"),
    ("FLUXBASE_BASE_URL", "server.base_url"),
    ("FLUXBASE_STORAGE_PROVIDER", "storage.provider"),
    ("FLUXBASE_S3_ENDPOINT", "storage.s3.endpoint"),
    ("FLUXBASE_S3_ACCESS_KEY", "storage.s3.access_key"),
    ("FLUXBASE_S3_SECRET_KEY", "storage.s3.secret_key"),
    ("FLUXBASE_S3_BUCKET", "storage.s3.bucket"),
    ("FLUXBASE_S3_REGION", "storage.s3.region"),
    ("FLUXBASE_REDIS_URL", "realtime.redis_url"),
];

/// `FLUXBASE_SERVER_ADDRESS=host:port` sets `server.host` and `server.port` at once.
const ENV_SERVER_ADDRESS: &str = "FLUXBASE_SERVER_ADDRESS";

/// The files tried when `--config` is not given, in order.
pub const DEFAULT_PATHS: &[&str] = &["./fluxbase.yaml", "/etc/fluxbase/fluxbase.yaml"];

/// Loads the configuration: `explicit` (an error if missing) or the first of
/// [`DEFAULT_PATHS`] that exists, then `env` on top. Returns every error found.
pub fn load(
    explicit: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<LoadedConfig, Vec<ConfigError>> {
    let file = match explicit {
        Some(path) => Some(path.to_path_buf()),
        None => DEFAULT_PATHS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file()),
    };
    let mut errors = Vec::new();
    let mut tree = Value::Object(Map::new());
    let mut origins: BTreeMap<String, Origin> = BTreeMap::new();

    let defaults = serde_json::to_value(Config::default()).expect("defaults serialize");
    let mut known = BTreeMap::new();
    flatten(&defaults, String::new(), &mut known);
    let sections: BTreeSet<String> = known
        .keys()
        .filter_map(|k| k.split('.').next().map(str::to_string))
        .collect();

    if let Some(path) = &file {
        match std::fs::read_to_string(path) {
            Ok(text) => match yaml::parse(&text) {
                Ok(doc) => {
                    let mut leaves = BTreeMap::new();
                    flatten(&doc.root, String::new(), &mut leaves);
                    for (key, value) in leaves {
                        let origin = Origin::File {
                            path: path.clone(),
                            line: doc.lines.get(&key).copied().unwrap_or(1),
                        };
                        if value.is_null() && (sections.contains(&key) || known.contains_key(&key))
                        {
                            continue; // `realtime:` with nothing under it, or `key: ~`
                        }
                        if sections.contains(&key) {
                            errors.push(ConfigError {
                                key: key.clone(),
                                value: Some(display_value(&value)),
                                origin,
                                message: "must be a mapping of keys (a section)".into(),
                            });
                            continue;
                        }
                        if !known.contains_key(&key) {
                            errors.push(unknown_key(&key, &value, origin, &known));
                            continue;
                        }
                        set(&mut tree, &key, value);
                        origins.insert(key, origin);
                    }
                }
                Err(msg) => errors.push(ConfigError {
                    key: "(file)".into(),
                    value: None,
                    origin: Origin::File {
                        path: path.clone(),
                        line: line_of(&msg),
                    },
                    message: format!("not valid YAML: {msg}"),
                }),
            },
            Err(err) => errors.push(ConfigError {
                key: "--config".into(),
                value: Some(path.display().to_string()),
                origin: Origin::Default,
                message: format!("cannot read the configuration file: {err}"),
            }),
        }
    }

    apply_env(env, &known, &sections, &mut tree, &mut origins, &mut errors);

    // Deserialize; each type error removes its key and we go again, so every bad key is
    // reported, not just the first.
    let mut attempts = known.len() + 1;
    let config = loop {
        match serde_path_to_error::deserialize::<_, Config>(tree.clone()) {
            Ok(config) => break config,
            Err(err) => {
                // `rest.role_statement_timeouts[0]`: the key is the list.
                let path = err.path().to_string();
                let key = match path.find('[') {
                    Some(at) => path[..at].to_string(),
                    None => path,
                };
                let value = shown_value(&tree, &key);
                let origin = origins.get(&key).cloned().unwrap_or(Origin::Default);
                errors.push(ConfigError {
                    key: key.clone(),
                    value,
                    origin,
                    message: friendly(err.inner().to_string()),
                });
                attempts -= 1;
                if !remove(&mut tree, &key) || attempts == 0 {
                    return Err(errors);
                }
            }
        }
    };
    for (key, message) in config.validate() {
        let origin = origins.get(&key).cloned().unwrap_or(Origin::Default);
        let value = shown_value(&tree, &key);
        errors.push(ConfigError {
            key,
            value,
            origin,
            message,
        });
    }
    if errors.is_empty() {
        Ok(LoadedConfig { config, file })
    } else {
        Err(errors)
    }
}

/// Applies `FLUXBASE_<SECTION>_<KEY>`, the aliases and `FLUXBASE_SERVER_ADDRESS`.
fn apply_env(
    env: impl IntoIterator<Item = (String, String)>,
    known: &BTreeMap<String, Value>,
    sections: &BTreeSet<String>,
    tree: &mut Value,
    origins: &mut BTreeMap<String, Origin>,
    errors: &mut Vec<ConfigError>,
) {
    let by_env_name: BTreeMap<String, &String> = known.keys().map(|k| (env_name(k), k)).collect();
    let mut env: Vec<(String, String)> = env.into_iter().collect();
    // Specific names win over aliases: apply aliases first.
    env.sort_by_key(|(name, _)| !ENV_ALIASES.iter().any(|(alias, _)| alias == name));
    for (name, raw) in env {
        let origin = Origin::Env(name.clone());
        if name == ENV_SERVER_ADDRESS {
            match parse_address(&raw) {
                Some((host, port)) => {
                    set(tree, "server.host", Value::String(host));
                    set(tree, "server.port", Value::Number(port.into()));
                    origins.insert("server.host".into(), origin.clone());
                    origins.insert("server.port".into(), origin);
                }
                None => errors.push(ConfigError {
                    key: "server.host, server.port".into(),
                    value: Some(raw),
                    origin,
                    message: "expected host:port, e.g. 0.0.0.0:8080".into(),
                }),
            }
            continue;
        }
        let key = ENV_ALIASES
            .iter()
            .find(|(alias, _)| *alias == name)
            .map(|(_, key)| key.to_string())
            .or_else(|| by_env_name.get(&name).map(|k| (*k).clone()));
        let Some(key) = key else {
            // FLUXBASE_REALTIME_RLS_CACHE_SIZ: a typo under a known section is an error;
            // other FLUXBASE_* variables (FLUXBASE_PG_BINDIR…) are not configuration keys.
            let section = name
                .strip_prefix("FLUXBASE_")
                .and_then(|rest| rest.split('_').next())
                .map(str::to_ascii_lowercase);
            if section.is_some_and(|s| sections.contains(&s)) {
                errors.push(ConfigError {
                    key: name.clone(),
                    value: Some(raw),
                    origin,
                    message: "unknown configuration key".into(),
                });
            }
            continue;
        };
        let value = typed_env_value(&raw, &known[&key]);
        set(tree, &key, value);
        origins.insert(key, origin);
    }
}

/// `FLUXBASE_` + the dotted key upper-cased with `_` for `.`.
pub fn env_name(key: &str) -> String {
    format!("FLUXBASE_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// An env var string typed like the key's default, so `"5"` fills a number and `"lots"`
/// stays a string for the deserializer to reject by name.
fn typed_env_value(raw: &str, default: &Value) -> Value {
    match default {
        Value::Number(_) => raw
            .trim()
            .parse::<u64>()
            .map(Value::from)
            .or_else(|_| raw.trim().parse::<i64>().map(Value::from))
            .unwrap_or_else(|_| Value::String(raw.to_string())),
        Value::Array(_) => Value::Array(
            raw.split(',')
                .map(|s| Value::String(s.trim().to_string()))
                .filter(|v| v != "")
                .collect(),
        ),
        Value::Bool(_) => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Value::Bool(true),
            "false" | "0" | "no" | "off" => Value::Bool(false),
            _ => Value::String(raw.to_string()),
        },
        _ => Value::String(raw.to_string()),
    }
}

fn parse_address(raw: &str) -> Option<(String, u16)> {
    let (host, port) = raw.trim().rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Some((host.to_string(), port.parse().ok()?))
}

fn unknown_key(
    key: &str,
    value: &Value,
    origin: Origin,
    known: &BTreeMap<String, Value>,
) -> ConfigError {
    let suggestion = known
        .keys()
        .map(|k| (strsim_distance(k, key), k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| format!(" (did you mean {k}?)"))
        .unwrap_or_default();
    ConfigError {
        key: key.to_string(),
        value: Some(display_value(value)),
        origin,
        message: format!("unknown configuration key{suggestion}"),
    }
}

/// Levenshtein distance, for "did you mean".
fn strsim_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Serde's messages, in the words of this file format.
fn friendly(message: String) -> String {
    message
        .replace(
            "invalid type: string",
            "expected another type, got the string",
        )
        .replace(", expected u64", "; expected a whole number")
        .replace(", expected u32", "; expected a whole number")
        .replace(", expected u16", "; expected a port number (0-65535)")
        .replace(", expected a boolean", "; expected true or false")
}

fn line_of(msg: &str) -> usize {
    msg.strip_prefix("line ")
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// The value of `key` for an error message: a secret's is never shown.
fn shown_value(tree: &Value, key: &str) -> Option<String> {
    let value = get(tree, key)?;
    Some(if SECRET_KEYS.contains(&key) {
        "***".into()
    } else {
        display_value(value)
    })
}

fn display_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Leaf paths of a JSON tree (objects are descended; arrays and scalars are leaves).
fn flatten(value: &Value, prefix: String, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() || prefix.is_empty() => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(v, path, out);
            }
        }
        other => {
            out.insert(prefix, other.clone());
        }
    }
}

fn set(tree: &mut Value, key: &str, value: Value) {
    let mut node = tree;
    let parts: Vec<&str> = key.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        if !node[*part].is_object() {
            node[*part] = Value::Object(Map::new());
        }
        node = &mut node[*part];
    }
    node[parts[parts.len() - 1]] = value;
}

fn get<'a>(tree: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(tree, |node, part| node.get(part))
}

/// Removes `key`; false when it was not there (nothing more to peel off).
fn remove(tree: &mut Value, key: &str) -> bool {
    let parts: Vec<&str> = key.split('.').collect();
    let mut node = tree;
    for part in &parts[..parts.len() - 1] {
        match node.get_mut(*part) {
            Some(next) => node = next,
            None => return false,
        }
    }
    node.as_object_mut()
        .and_then(|m| m.remove(parts[parts.len() - 1]))
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(text: &str) -> (tempfile_lite::TempFile, PathBuf) {
        let f = tempfile_lite::TempFile::new(text);
        let p = f.path.clone();
        (f, p)
    }

    #[test]
    fn defaults_without_file() {
        let (_f, path) = file("");
        let loaded = load(Some(&path), env(&[])).unwrap();
        assert_eq!(loaded.config.realtime.rls_cache_size, 100_000);
        assert_eq!(loaded.config.database.max_connections, 50);
        assert_eq!(
            loaded.config.realtime.ping_interval,
            super::super::Dur::secs(30)
        );
    }

    #[test]
    fn every_error_is_reported_with_its_line() {
        let (_f, path) = file(
            "realtime:\n  rls_cache_size: lots\n  ping_interval: soon\nserver:\n  prot: 8080\n",
        );
        let errors = load(Some(&path), env(&[])).unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert!(keys.contains(&"realtime.rls_cache_size"), "{errors:?}");
        assert!(keys.contains(&"realtime.ping_interval"), "{errors:?}");
        assert!(keys.contains(&"server.prot"), "{errors:?}");
        let cache = errors
            .iter()
            .find(|e| e.key == "realtime.rls_cache_size")
            .unwrap();
        assert_eq!(cache.value.as_deref(), Some("\"lots\""));
        assert_eq!(
            cache.origin,
            Origin::File {
                path: path.clone(),
                line: 2
            }
        );
        let typo = errors.iter().find(|e| e.key == "server.prot").unwrap();
        assert!(
            typo.message.contains("did you mean server.port"),
            "{}",
            typo.message
        );
    }

    #[test]
    fn env_overrides_file_and_names_the_variable() {
        let (_f, path) = file("realtime:\n  rls_cache_size: 10\n");
        let loaded = load(
            Some(&path),
            env(&[
                ("FLUXBASE_REALTIME_RLS_CACHE_SIZE", "20"),
                ("FLUXBASE_SERVER_ADDRESS", "127.0.0.1:9999"),
                ("FLUXBASE_S3_BUCKET", "b"),
                ("DATABASE_URL", "postgres://u:p@h/db"),
                ("FLUXBASE_PG_BINDIR", "/usr/lib/postgresql/15/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(loaded.config.realtime.rls_cache_size, 20);
        assert_eq!(loaded.config.server.host, "127.0.0.1");
        assert_eq!(loaded.config.server.port, 9999);
        assert_eq!(loaded.config.storage.s3.bucket.as_deref(), Some("b"));
        assert_eq!(
            loaded.config.database.url.as_deref(),
            Some("postgres://u:p@h/db")
        );

        let errors = load(
            Some(&path),
            env(&[
                ("FLUXBASE_REALTIME_RLS_CACHE_SIZE", "lots"),
                ("FLUXBASE_REALTIME_RLS_CACHE_SIZ", "1"),
            ]),
        )
        .unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().any(|e| e.key == "realtime.rls_cache_size"
            && e.origin == Origin::Env("FLUXBASE_REALTIME_RLS_CACHE_SIZE".into())));
        assert!(
            errors
                .iter()
                .any(|e| e.key == "FLUXBASE_REALTIME_RLS_CACHE_SIZ")
        );
    }

    #[test]
    fn cross_key_rules_name_the_key() {
        let (_f, path) = file("database:\n  max_connections: 5\n  min_connections: 10\n");
        let errors = load(Some(&path), env(&[])).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].key, "database.min_connections");
        assert_eq!(errors[0].origin, Origin::File { path, line: 3 });
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let errors = load(Some(Path::new("/nonexistent/fluxbase.yaml")), env(&[])).unwrap_err();
        assert_eq!(errors[0].key, "--config");
    }

    #[test]
    fn redacted_hides_secrets() {
        let (_f, path) = file("");
        let loaded = load(
            Some(&path),
            env(&[
                (
                    "FLUXBASE_JWT_SECRET",
                    "super-secret-value-that-is-long-enough",
                ),
                ("DATABASE_URL", "postgres://u:hunter2@h/db"),
            ]),
        )
        .unwrap();
        let text = loaded.config.redacted().to_string();
        assert!(!text.contains("super-secret"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    /// A temp file removed on drop, without a tempfile dependency.
    mod tempfile_lite {
        use std::path::PathBuf;
        use std::sync::atomic::{AtomicU32, Ordering};

        static N: AtomicU32 = AtomicU32::new(0);

        pub struct TempFile {
            pub path: PathBuf,
        }

        impl TempFile {
            pub fn new(text: &str) -> Self {
                let path = std::env::temp_dir().join(format!(
                    "fluxbase-config-test-{}-{}.yaml",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::write(&path, text).unwrap();
                TempFile { path }
            }
        }

        impl Drop for TempFile {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}
