//! The DDL/role watcher actor: re-reads RLS policies when the schema cache reloads (DDL,
//! through the cache's own LISTEN or polling: no second LISTEN here), and within a second
//! of a change to role attributes, memberships or grants (`ALTER ROLE … BYPASSRLS`, `GRANT
//! role TO role` fire no event trigger): a cheap fingerprint of them is compared every
//! second.

use std::time::Duration;

use actix::prelude::*;

use crate::realtime::engine::Engine;
use crate::realtime::restart::Restarts;
use crate::supervise;

/// How often role facts are compared.
const ROLE_CHECK: Duration = Duration::from_secs(1);

/// The watcher actor.
pub struct Watcher {
    engine: Engine,
    restarts: Restarts,
}

impl Watcher {
    /// Name in supervision and the restarts metric.
    pub const NAME: &'static str = "realtime.watcher";

    /// The actor over `engine`.
    pub fn new(engine: Engine) -> Watcher {
        engine.supervision().register(Self::NAME);
        Watcher {
            engine,
            restarts: Restarts::default(),
        }
    }

    fn run(&mut self, ctx: &mut Context<Self>) {
        self.engine.supervision().running(Self::NAME);
        ctx.spawn(
            supervise::catch_async(watch(self.engine.clone()))
                .into_actor(self)
                .map(|result, act, ctx| match result {
                    Ok(()) => act.engine.supervision().stopped(Self::NAME),
                    Err(panic) => {
                        act.engine.supervision().failed(Self::NAME, &panic);
                        ctx.stop();
                    }
                }),
        );
    }
}

impl Actor for Watcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let delay = self.restarts.delay();
        ctx.wait(
            actix::fut::wrap_future::<_, Self>(tokio::time::sleep(delay))
                .map(|_, act, ctx| act.run(ctx)),
        );
    }
}

impl Supervised for Watcher {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.restarts.failed();
    }
}

/// The watch loop, until shutdown.
async fn watch(engine: Engine) {
    let mut shutdown = engine.shutdown_signal();
    let mut versions = engine.inner.tables.cache().subscribe();
    versions.mark_unchanged();
    let mut roles = tokio::time::interval(ROLE_CHECK);
    roles.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A reload after DDL that failed (pool exhausted, database away): retried every tick
    // until it works, so old policies never stay in force for want of an event.
    let mut retry = false;
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            changed = versions.changed() => {
                if changed.is_err() {
                    // The cache is gone (shutdown): role checks go on.
                    versions = engine.inner.tables.cache().subscribe();
                    tokio::time::sleep(ROLE_CHECK).await;
                    continue;
                }
                retry = !engine.reload().await;
                tracing::debug!(version = *versions.borrow(), reloaded = !retry, "rls facts reloaded after a schema change");
            }
            _ = roles.tick() => {
                if retry {
                    retry = !engine.reload().await;
                }
                if let Some(mark) = engine.inner.gate.access_changed().await
                    && reload_for_roles(&engine).await
                {
                    // Applied only once the new facts are in use: a failed reload is
                    // retried on the next tick, the change still seen.
                    engine.inner.gate.access_applied(mark);
                    tracing::info!("rls facts reloaded after a role change");
                }
            }
        }
    }
}

/// The re-read after a role change (failing once under the `role_reload_fails_once` test
/// fault of debug builds).
async fn reload_for_roles(engine: &Engine) -> bool {
    #[cfg(debug_assertions)]
    if crate::realtime::fault::role_reload_fails() {
        tracing::warn!("test fault: the re-read after a role change fails");
        return false;
    }
    engine.reload().await
}
