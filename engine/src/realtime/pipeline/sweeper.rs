//! The slow-client sweeper actor: re-checks every socket's backpressure a few times per
//! `realtime.slow_client_timeout`, so a client that stops reading is cut (4008) even when no
//! new message comes to trip the check on push.

use std::time::Duration;

use actix::prelude::*;

use crate::realtime::engine::Engine;
use crate::realtime::restart::Restarts;
use crate::supervise;

/// The sweeper actor.
pub struct Sweeper {
    engine: Engine,
    restarts: Restarts,
}

impl Sweeper {
    /// Name in supervision and the restarts metric.
    pub const NAME: &'static str = "realtime.sweeper";

    /// The actor over `engine`.
    pub fn new(engine: Engine) -> Sweeper {
        engine.supervision().register(Self::NAME);
        Sweeper {
            engine,
            restarts: Restarts::default(),
        }
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        let engine = &self.engine;
        let result = supervise::catch(|| {
            for conn in engine.inner.connections.all() {
                conn.check_pressure();
            }
            metrics::gauge!("fluxbase_realtime_rls_cache_entries")
                .set(engine.inner.gate.cache_len() as f64);
        });
        match result {
            Ok(()) => self.restarts.succeeded(),
            Err(panic) => {
                self.engine.supervision().failed(Self::NAME, &panic);
                ctx.stop();
            }
        }
    }
}

impl Actor for Sweeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let delay = self.restarts.delay();
        ctx.wait(
            actix::fut::wrap_future::<_, Self>(tokio::time::sleep(delay)).map(|_, act, ctx| {
                act.engine.supervision().running(Self::NAME);
                let timeout = act.engine.settings().slow_client_timeout;
                let period =
                    (timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
                ctx.run_interval(period, |act, ctx| act.sweep(ctx));
            }),
        );
    }
}

impl Supervised for Sweeper {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.restarts.failed();
    }
}
