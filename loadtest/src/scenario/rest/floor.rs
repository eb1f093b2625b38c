//! `rest --case … --baseline http-floor`: the case's HTTP requests, sent by the same
//! requesters and checked the same way as against the server, to the HTTP floor (see
//! [`crate::floor`]) — a child process this run starts on the seeded tables, whose CPU and
//! RSS the report shows as the server's.

use uuid::Uuid;

use super::{Seed, case};
use crate::config::ScenarioConfig;
use crate::error::{Error, Result};
use crate::floor::child::FloorServer;
use crate::floor::{POOL_CONNECTIONS, Setup};
use crate::report::Report;
use crate::scenario::Context;

/// Starts the floor on `seed`, runs the case against it, and ends it.
pub async fn run(
    config: &ScenarioConfig,
    nofile_limit: u64,
    seed: &Seed,
    users: &[Uuid],
) -> Result<Report> {
    let exe = std::env::current_exe().map_err(|source| Error::Io {
        context: "locating this executable for the http-floor server",
        source,
    })?;
    let setup = Setup {
        database_url: config.database_url.clone().unwrap_or_default(),
        jwt_secret: config.jwt_secret.clone().unwrap_or_default(),
        shape: seed.shape.clone(),
        sessions: seed.sessions.is_some(),
        pool: POOL_CONNECTIONS,
    };
    let server = FloorServer::start(&exe, &setup).await?;
    // The run's target is the child: the report shows where the requests went, and its
    // process figures are the floor's.
    let mut config = config.clone();
    config.server_url = format!("http://{}", server.addr);
    config.server_pid = Some(server.pid);
    let ctx = match Context::prepare(&config, nofile_limit).await {
        Ok(ctx) => ctx,
        Err(err) => {
            server.shutdown().await;
            return Err(err);
        }
    };
    let mut report = ctx.report(&config);
    report.table = Some(seed.table_names());
    let sessions = seed.sessions.as_ref();
    let result = case::run(&config, &ctx, &mut report, &seed.shape, users, sessions).await;
    server.shutdown().await;
    result.map(|()| report)
}
