//! The progress line on stderr: rewritten in place on a terminal, one line every few
//! seconds otherwise (CI logs).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A background task printing `line()` until dropped or finished.
pub struct Progress {
    stop: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts printing `line()`; a no-op when `enabled` is false.
    pub fn start(enabled: bool, line: impl Fn() -> String + Send + 'static) -> Self {
        if !enabled {
            return Progress {
                stop: None,
                task: None,
            };
        }
        let tty = std::io::stderr().is_terminal();
        let period = if tty {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(5)
        };
        let (stop, mut stop_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut timer = tokio::time::interval(period);
            timer.tick().await;
            loop {
                tokio::select! {
                    _ = timer.tick() => {}
                    _ = stop_rx.changed() => break,
                }
                let mut err = std::io::stderr().lock();
                if tty {
                    let _ = write!(err, "\r\x1b[2K{}", line());
                } else {
                    let _ = writeln!(err, "{}", line());
                }
            }
            if tty {
                let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
            }
        });
        Progress {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops and clears the line.
    pub async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
