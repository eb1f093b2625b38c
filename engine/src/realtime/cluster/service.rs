//! A supervised actor around one long-running loop (the changes reader, the leader, the
//! channels bus's tasks): the loop runs until shutdown; a panic is logged, counted in
//! supervision and the actor restarts after the usual growing pause. Whatever must survive
//! a restart (a stream position) lives in the closure's captures, not in the loop.

use actix::prelude::*;

use crate::realtime::auth::BoxFuture;
use crate::realtime::restart::Restarts;
use crate::supervise::{self, Supervision};

/// Makes the loop's future (again after each restart).
pub(crate) type MakeLoop = Box<dyn FnMut() -> BoxFuture<'static, ()> + Send>;

/// The actor.
pub(crate) struct Service {
    name: &'static str,
    supervision: Supervision,
    make: MakeLoop,
    restarts: Restarts,
}

impl Service {
    /// Starts `make`'s loop under a supervisor, registered as `name`.
    pub(crate) fn start(name: &'static str, supervision: Supervision, make: MakeLoop) {
        supervision.register(name);
        Supervisor::start(move |_| Service {
            name,
            supervision,
            make,
            restarts: Restarts::default(),
        });
    }

    fn run(&mut self, ctx: &mut Context<Self>) {
        self.supervision.running(self.name);
        let work = (self.make)();
        ctx.spawn(supervise::catch_async(work).into_actor(self).map(
            |result, act, ctx| match result {
                Ok(()) => act.supervision.stopped(act.name),
                Err(panic) => {
                    act.supervision.failed(act.name, &panic);
                    ctx.stop();
                }
            },
        ));
    }
}

impl Actor for Service {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let delay = self.restarts.delay();
        ctx.wait(
            actix::fut::wrap_future::<_, Self>(tokio::time::sleep(delay))
                .map(|_, act, ctx| act.run(ctx)),
        );
    }
}

impl Supervised for Service {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.restarts.failed();
    }
}
