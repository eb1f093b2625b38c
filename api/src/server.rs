//! `fluxbase serve` and `fluxbase migrate`: the database (given or embedded), migrations,
//! the pool, the HTTP server, and a graceful shutdown of all of them.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use fluxbase_migrations::cluster::EMBEDDED_DATABASE;
use fluxbase_migrations::error::describe;
use fluxbase_migrations::tls::MakeRustlsConnect;
use fluxbase_migrations::{ClusterOptions, Db, EmbeddedCluster, pool};

use crate::config::{Config, redact_url};
use crate::http::{AppState, build_app};

/// Where the embedded mode keeps its state (cluster, password, dev JWT secret).
pub const STATE_DIR: &str = ".fluxbase";

/// JWT secrets that are known placeholders: refused with a real database.
const PLACEHOLDER_SECRETS: &[&str] = &[
    "your-256-bit-secret-key-here",
    "change-me",
    "changeme",
    "secret",
    "your-secret-key",
];

/// How long start-up waits for the replication stream before serving anyway.
const REPLICATION_READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Shortest JWT secret accepted with a real database (HS256 wants 256 bits).
const MIN_SECRET_LEN: usize = 32;

/// The database in use: its connection settings, and the embedded cluster when we run one.
pub struct Database {
    /// How to connect.
    pub pg: tokio_postgres::Config,
    /// Set in embedded mode; stopping it is part of shutdown.
    pub embedded: Option<EmbeddedCluster>,
}

impl Database {
    /// `DATABASE_URL` when set, else the embedded cluster in `./.fluxbase/pg` (started here,
    /// blocking). The first log line says which.
    pub fn open(config: &Config) -> anyhow::Result<Database> {
        if let Some(url) = &config.database.url {
            tracing::info!(database = %redact_url(url), "using the database of DATABASE_URL");
            let pg =
                pool::parse_url(url).context("database.url is not a valid connection string")?;
            return Ok(Database { pg, embedded: None });
        }
        let data_dir = Path::new(STATE_DIR).join("pg");
        tracing::info!(
            data_dir = %data_dir.display(),
            "no DATABASE_URL: starting the embedded PostgreSQL"
        );
        let cluster = EmbeddedCluster::start(ClusterOptions::persistent(&data_dir))?;
        tracing::info!(
            port = cluster.port(),
            socket_dir = %cluster.socket_dir().display(),
            version = %cluster.binaries().version,
            "embedded PostgreSQL ready on 127.0.0.1"
        );
        Ok(Database {
            pg: cluster.config(EMBEDDED_DATABASE),
            embedded: Some(cluster),
        })
    }

    /// Creates the `fluxbase` database inside the embedded cluster on first start.
    pub async fn ensure_created(&self) -> anyhow::Result<()> {
        let Some(cluster) = &self.embedded else {
            return Ok(());
        };
        let (client, conn) = cluster
            .config("postgres")
            .connect(MakeRustlsConnect::new())
            .await
            .context("connect to the embedded PostgreSQL")?;
        let task = tokio::spawn(conn);
        let exists = client
            .query_opt(
                "SELECT 1 FROM pg_database WHERE datname = $1",
                &[&EMBEDDED_DATABASE],
            )
            .await?
            .is_some();
        if !exists
            && let Err(err) = client
                .batch_execute(&format!("CREATE DATABASE {EMBEDDED_DATABASE}"))
                .await
        {
            // Another fluxbase process on the same directory created it meanwhile.
            if err.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) {
                return Err(err).context("create the fluxbase database");
            }
        }
        drop(client);
        let _ = task.await;
        Ok(())
    }

    /// Applies pending migrations on a dedicated connection.
    pub async fn migrate(&self) -> anyhow::Result<fluxbase_migrations::MigrationReport> {
        let (mut client, conn) = self
            .pg
            .connect(MakeRustlsConnect::new())
            .await
            .map_err(|e| anyhow::anyhow!("connect to the database: {}", describe(&e)))?;
        let task = tokio::spawn(conn);
        let report = fluxbase_migrations::run(&mut client).await?;
        drop(client);
        let _ = task.await;
        Ok(report)
    }

    /// Warns, with the fix, when logical replication is not enabled on a real database.
    pub async fn check_wal_level(&self) -> anyhow::Result<()> {
        let (client, conn) = self.pg.connect(MakeRustlsConnect::new()).await?;
        let task = tokio::spawn(conn);
        let level: String = client.query_one("SHOW wal_level", &[]).await?.get(0);
        if level != "logical" {
            tracing::warn!(
                wal_level = %level,
                "wal_level is not 'logical': realtime needs logical replication. Run \
                 `ALTER SYSTEM SET wal_level = logical;` as a superuser (or set wal_level = logical \
                 in postgresql.conf, or the parameter group of a managed database) and restart PostgreSQL"
            );
        }
        drop(client);
        let _ = task.await;
        Ok(())
    }

    /// Stops the embedded cluster (fast shutdown) if we started it.
    pub fn shutdown(mut self) {
        if let Some(mut cluster) = self.embedded.take() {
            if cluster.is_owned() {
                tracing::info!("stopping the embedded PostgreSQL");
            }
            if let Err(err) = cluster.stop() {
                tracing::warn!(error = %err, "stopping the embedded PostgreSQL failed");
            }
        }
    }
}

/// Fills `auth.jwt_secret`: with a real database it must be set and not a placeholder; in
/// embedded mode a dev secret is generated once and kept in `.fluxbase/jwt-secret`.
pub fn resolve_jwt_secret(config: &mut Config, embedded: bool) -> anyhow::Result<()> {
    let weak = |s: &str| PLACEHOLDER_SECRETS.contains(&s) || s.len() < MIN_SECRET_LEN;
    match (&config.auth.jwt_secret, embedded) {
        (Some(secret), false) if weak(secret) => bail!(
            "FLUXBASE_JWT_SECRET is a placeholder or shorter than {MIN_SECRET_LEN} characters: \
             set a strong random value, e.g. `openssl rand -base64 48`"
        ),
        (Some(_), false) => Ok(()),
        (None, false) => bail!(
            "FLUXBASE_JWT_SECRET is not set: with a real database (DATABASE_URL) a strong secret \
             is required, e.g. `export FLUXBASE_JWT_SECRET=$(openssl rand -base64 48)`"
        ),
        (Some(secret), true) => {
            if weak(secret) {
                tracing::warn!(
                    "FLUXBASE_JWT_SECRET is weak: fine for development, not for production"
                );
            }
            Ok(())
        }
        (None, true) => {
            let path = PathBuf::from(STATE_DIR).join("jwt-secret");
            let secret = fluxbase_migrations::secret::read_or_create(&path, MIN_SECRET_LEN, 64)
                .with_context(|| format!("read or create {}", path.display()))?;
            tracing::warn!(
                path = %path.display(),
                "FLUXBASE_JWT_SECRET is not set: using a generated development secret; set it for production"
            );
            config.auth.jwt_secret = Some(secret);
            Ok(())
        }
    }
}

/// Resolves on SIGINT or SIGTERM, naming it.
/// SIGTERM and SIGINT, caught from the moment this is called (before the server says it
/// listens: a signal sent right after that line must not kill the process unhandled).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("install the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("install the SIGINT handler")?,
        })
    }

    /// The first of them to arrive.
    async fn wait(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// The replication stream's settings from `replication.*`, on the server's database.
fn replication_config(
    config: &Config,
    pg: tokio_postgres::Config,
) -> fluxbase_replication::ReplicationConfig {
    let mut r = fluxbase_replication::ReplicationConfig::new(pg);
    r.slot_name = config.replication.slot_name.clone();
    r.publication_name = config.replication.publication_name.clone();
    r.schemas = config.replication.schemas.clone();
    r.max_lag_bytes = config.replication.max_lag_bytes.0;
    r.plugin = match config.replication.plugin.as_str() {
        "wal2json" => fluxbase_replication::Plugin::Wal2json,
        _ => fluxbase_replication::Plugin::Pgoutput,
    };
    r
}

/// The realtime engine over the schema cache (shared with REST when it is wired) and the
/// auth service, started under the actix system: its actors supervised, the stream live
/// (or retrying in the background). Database webhooks plug in with
/// `engine.set_webhooks(jobs.webhooks())` before `start`.
async fn start_realtime(
    config: &Config,
    database: &Database,
    state: &AppState,
    jobs: &fluxbase_engine::jobs::Jobs,
    cluster: Option<fluxbase_engine::realtime::cluster::Cluster>,
) -> anyhow::Result<fluxbase_engine::realtime::Engine> {
    // The process's one schema cache, shared with REST.
    let schema = state
        .schema
        .clone()
        .context("the schema cache is loaded before the realtime engine")?;
    let engine = fluxbase_engine::realtime::Engine::new(fluxbase_engine::realtime::EngineOptions {
        settings: AppState::realtime_settings(config),
        auth: std::sync::Arc::new(state.auth.clone()),
        pg: database.pg.clone(),
        pool: state.db.pool().clone(),
        schema,
        publication: config.replication.publication_name.clone(),
        schemas: config.replication.schemas.clone(),
        supervision: fluxbase_engine::supervise::Supervision::default(),
        bus: None,
        cluster,
    });
    // Database webhooks take each transaction before the slot is acknowledged.
    engine.set_webhooks(jobs.webhooks());
    let live = engine
        .start(
            replication_config(config, database.pg.clone()),
            REPLICATION_READY_TIMEOUT,
        )
        .await
        .context("start the realtime engine")?;
    if !live {
        tracing::warn!(
            slot = %config.replication.slot_name,
            "logical replication is not streaming yet (see /api/v1/monitoring/health); retrying in the background"
        );
    }
    tracing::info!(slot = %config.replication.slot_name, streaming = live, "realtime engine started");
    Ok(engine)
}

/// Scale-out over Redis when `realtime.bus` is `redis`: the slot leader is elected per slot
/// (`replication.slot_name` is the cluster's namespace).
fn cluster(config: &Config) -> anyhow::Result<Option<fluxbase_engine::realtime::cluster::Cluster>> {
    use fluxbase_engine::realtime::cluster::{Cluster, ClusterOptions};
    let rt = &config.realtime;
    if rt.bus != "redis" {
        return Ok(None);
    }
    let cluster = Cluster::new(ClusterOptions {
        redis_url: rt.redis_url.clone().unwrap_or_default(),
        failover_timeout: rt.leader_failover_timeout.get(),
        namespace: config.replication.slot_name.clone(),
        stream_max_len: rt.bus_stream_max_length,
    })
    .context("realtime.redis_url")?;
    tracing::info!(
        redis = %crate::config::redact_url(rt.redis_url.as_deref().unwrap_or_default()),
        failover_timeout_ms = rt.leader_failover_timeout.get().as_millis() as u64,
        "realtime scale-out over redis"
    );
    Ok(Some(cluster))
}

/// `fluxbase migrate`: apply pending migrations and report.
pub fn migrate(config: Config) -> anyhow::Result<()> {
    let database = Database::open(&config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        database.ensure_created().await?;
        database.migrate().await
    });
    drop(runtime);
    database.shutdown();
    let report = result?;
    if report.applied.is_empty() {
        println!(
            "migrations up to date ({} applied)",
            report.already_applied.len()
        );
    } else {
        println!("applied migrations {:?}", report.applied);
    }
    Ok(())
}

/// `fluxbase serve`: everything up, serve until SIGINT/SIGTERM, everything down.
/// `descriptors` is what [`crate::descriptors::prepare`] did before threads started.
pub fn serve(
    mut config: Config,
    descriptors: Option<std::io::Result<crate::descriptors::Descriptors>>,
) -> anyhow::Result<()> {
    let database = Database::open(&config)?;
    if let Some(descriptors) = &descriptors {
        crate::descriptors::report(descriptors, config.realtime.max_connections);
    }
    let embedded = database.embedded.is_some();
    if let Err(err) = resolve_jwt_secret(&mut config, embedded) {
        database.shutdown();
        return Err(err);
    }
    let result = actix_web::rt::System::new().block_on(run_server(config, &database));
    database.shutdown();
    tracing::info!("shutdown complete");
    result
}

async fn run_server(config: Config, database: &Database) -> anyhow::Result<()> {
    database.ensure_created().await?;
    if database.embedded.is_none()
        && let Err(err) = database.check_wal_level().await
    {
        tracing::warn!(error = %err, "could not read wal_level");
    }
    let report = database.migrate().await?;
    if !report.applied.is_empty() {
        tracing::info!(applied = ?report.applied, "migrations applied");
    }

    // One HTTP worker per core, each with its lane of the pool (`Db::claim_lane`).
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let db = Db::with_lanes(
        database.pg.clone(),
        config.database.pool_settings(),
        workers,
    );
    db.fill_to_min().await;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let maintenance = actix_web::rt::spawn(db.clone().maintenance_loop(shutdown_rx.clone()));

    // One schema cache for the process (REST plans against it; it follows DDL through the
    // event trigger's notifications), stopped with the maintenance loop.
    let schema = fluxbase_migrations::SchemaCache::start(
        database.pg.clone(),
        MakeRustlsConnect::new(),
        fluxbase_migrations::CacheOptions::default(),
        shutdown_rx.clone(),
    )
    .await
    .context("load the schema cache")?;
    let mut state = AppState::new(config.clone(), db.clone()).with_schema(schema);
    let storage = AppState::open_storage(&config, db.clone()).with_context(|| {
        format!(
            "cannot open the storage backend (storage.provider = {})",
            config.storage.provider.as_str()
        )
    })?;
    tracing::info!(provider = storage.backend().provider(), "storage ready");
    // Bytes without a row (a crash between an upload's bytes and its row) and abandoned
    // resumable uploads go, in the background: serving does not wait for a full listing.
    actix_web::rt::spawn({
        let storage = storage.clone();
        async move {
            let _ = storage.sweep_orphans().await;
        }
    });
    state = state.with_storage(storage);
    let jobs = crate::jobs::prepare(
        &config,
        database.pg.clone(),
        db.clone(),
        database.embedded.is_some(),
        Path::new(STATE_DIR),
    )?;
    if let Some(storage) = &state.storage {
        crate::jobs::register_storage_sweep(&jobs, storage.clone());
    }
    state = state.with_jobs(jobs.clone());
    // Scale-out: the per-minute rate limits are shared through Redis too.
    let cluster = cluster(&config)?;
    if let Some(cluster) = &cluster {
        state
            .limiters
            .share(fluxbase_engine::realtime::cluster::SharedRate::new(
                cluster.clone(),
            ));
    }
    let engine = if config.realtime.enabled {
        let engine = start_realtime(&config, database, &state, &jobs, cluster).await?;
        state = state.with_engine(engine.clone());
        Some(engine)
    } else {
        None
    };
    let limiters = state.limiters.clone();
    let prune = actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            limiters.prune();
        }
    });
    let server = actix_web::HttpServer::new(move || {
        // Runs on each worker as it starts: its requests use connections it drives.
        state.db.claim_lane();
        build_app(state.clone())
    })
    // WebSocket upgrades cap their socket's send buffer (see `v1::realtime`).
    .on_connect(|conn, data| {
        use std::os::fd::AsRawFd;
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            data.insert(crate::http::v1::realtime::SocketFd(tcp.as_raw_fd()));
        }
    })
    .workers(workers)
    .shutdown_timeout(config.server.shutdown_timeout.get().as_secs())
    // We handle SIGINT/SIGTERM: sockets get their close frame before HTTP drains.
    .disable_signals()
    .bind((config.server.host.as_str(), config.server.port))
    .with_context(|| {
        format!(
            "cannot listen on {}:{} (server.host, server.port)",
            config.server.host, config.server.port
        )
    })?;
    crate::jobs::start(&jobs, &config)
        .await
        .context("start the job system")?;
    let signals = Signals::install()?;
    for addr in server.addrs() {
        tracing::info!(address = %addr, "listening");
    }
    let server = server.run();
    let handle = server.handle();
    let draining = jobs.clone();
    let stopper = actix_web::rt::spawn(async move {
        let signal = signals.wait().await;
        tracing::info!(signal, "shutting down");
        if let Some(engine) = engine {
            engine.shutdown().await;
        }
        // Running jobs finish (or go back to the queue) while HTTP drains.
        tokio::join!(draining.shutdown(), handle.stop(true));
    });
    server.await?;
    // Only the stopper stops the server: it is finishing (the jobs' drain included).
    let _ = stopper.await;
    jobs.shutdown().await;
    prune.abort();
    tracing::info!("HTTP server stopped");
    let _ = shutdown_tx.send(true);
    let _ = maintenance.await;
    db.close();
    Ok(())
}
