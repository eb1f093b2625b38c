//! Restart pacing of the engine's supervised actors: a failed actor is restarted by its
//! supervisor at once, then waits before it runs again — 200 ms, doubling per failure in a
//! row, at most 5 s — so a fault that repeats cannot spin a core, and the health endpoint
//! shows the actor not running (`realtime: degraded`) until it does.

use std::time::Duration;

/// The first wait after a failure.
const FIRST: Duration = Duration::from_millis(200);
/// The longest wait.
const MAX: Duration = Duration::from_secs(5);

/// Failures in a row of one actor.
#[derive(Debug, Default, Clone, Copy)]
pub struct Restarts {
    in_a_row: u32,
}

impl Restarts {
    /// Called from `Supervised::restarting`.
    pub fn failed(&mut self) {
        self.in_a_row = self.in_a_row.saturating_add(1);
    }

    /// A unit of work succeeded: the next failure waits the shortest time again.
    pub fn succeeded(&mut self) {
        self.in_a_row = 0;
    }

    /// How long `started` waits before running (zero on the first start).
    pub fn delay(&self) -> Duration {
        #[cfg(debug_assertions)]
        if self.in_a_row > 0 && super::fault::armed("slow_restarts") {
            return Duration::from_secs(2);
        }
        match self.in_a_row {
            0 => Duration::ZERO,
            n => FIRST.saturating_mul(1 << (n - 1).min(8)).min(MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_reset() {
        let mut r = Restarts::default();
        assert_eq!(r.delay(), Duration::ZERO);
        r.failed();
        assert_eq!(r.delay(), Duration::from_millis(200));
        r.failed();
        assert_eq!(r.delay(), Duration::from_millis(400));
        for _ in 0..20 {
            r.failed();
        }
        assert_eq!(r.delay(), Duration::from_secs(5));
        r.succeeded();
        assert_eq!(r.delay(), Duration::ZERO);
    }
}
