//! CPU and RSS of a local process (the server, and the harness itself) over time, from
//! `/proc/<pid>/stat` and `/proc/<pid>/status`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// One sample.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ProcessSample {
    /// Seconds since sampling began.
    pub t_secs: f64,
    /// CPU used since the previous sample, in percent of one core (200 = both cores).
    pub cpu_percent: f64,
    /// Resident set size.
    pub rss_bytes: u64,
}

/// A process's samples and their summary.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessStats {
    pub pid: u32,
    pub cpu_avg_percent: f64,
    pub cpu_max_percent: f64,
    pub rss_start_bytes: u64,
    pub rss_max_bytes: u64,
    pub rss_end_bytes: u64,
    pub samples: Vec<ProcessSample>,
}

/// Samples a process every `interval` until stopped.
pub struct ProcessSampler {
    pid: u32,
    samples: Arc<Mutex<Vec<ProcessSample>>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ProcessSampler {
    /// Starts sampling `pid`; `None` if `/proc/<pid>` cannot be read.
    pub fn start(pid: u32, interval: Duration) -> Option<Self> {
        let first = read_cpu_ticks(pid)?;
        read_rss_bytes(pid)?;
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stop_rx) = watch::channel(false);
        let task = {
            let samples = samples.clone();
            tokio::spawn(async move {
                let ticks_per_sec = clock_ticks_per_sec();
                let started = Instant::now();
                let (mut last_ticks, mut last_at) = (first, started);
                let mut timer = tokio::time::interval(interval);
                loop {
                    tokio::select! {
                        _ = timer.tick() => {}
                        _ = stop_rx.changed() => {}
                    }
                    let now = Instant::now();
                    let (Some(ticks), Some(rss)) = (read_cpu_ticks(pid), read_rss_bytes(pid))
                    else {
                        break; // the process is gone
                    };
                    let wall = now.duration_since(last_at).as_secs_f64();
                    let cpu = if wall > 0.0 {
                        (ticks.saturating_sub(last_ticks)) as f64 / ticks_per_sec / wall * 100.0
                    } else {
                        0.0
                    };
                    samples
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(ProcessSample {
                            t_secs: now.duration_since(started).as_secs_f64(),
                            cpu_percent: cpu,
                            rss_bytes: rss,
                        });
                    (last_ticks, last_at) = (ticks, now);
                    if *stop_rx.borrow() {
                        break;
                    }
                }
            })
        };
        Some(ProcessSampler {
            pid,
            samples,
            stop,
            task,
        })
    }

    /// Takes a last sample, stops, and summarizes.
    pub async fn finish(self) -> ProcessStats {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let samples = std::mem::take(&mut *self.samples.lock().unwrap_or_else(|p| p.into_inner()));
        summarize(self.pid, samples)
    }
}

fn summarize(pid: u32, samples: Vec<ProcessSample>) -> ProcessStats {
    // The first interval tick fires at once and measures nothing: skip it in CPU figures.
    let cpu: Vec<f64> = samples.iter().skip(1).map(|s| s.cpu_percent).collect();
    ProcessStats {
        pid,
        cpu_avg_percent: if cpu.is_empty() {
            0.0
        } else {
            cpu.iter().sum::<f64>() / cpu.len() as f64
        },
        cpu_max_percent: cpu.iter().copied().fold(0.0, f64::max),
        rss_start_bytes: samples.first().map_or(0, |s| s.rss_bytes),
        rss_max_bytes: samples.iter().map(|s| s.rss_bytes).max().unwrap_or(0),
        rss_end_bytes: samples.last().map_or(0, |s| s.rss_bytes),
        samples,
    }
}

/// utime + stime of `pid`, in clock ticks.
fn read_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_ticks(&stat)
}

/// Fields 14 and 15 of `/proc/<pid>/stat`, counted after the `)` that ends the command
/// name (which may itself contain spaces and parentheses).
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // after ')': field 3 (state) is index 0, so utime (14) is index 11.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// VmRSS of `pid` in bytes.
pub fn read_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_rss(&status)
}

fn parse_status_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "1234 (fluxbase (x) y) S 1 1234 1234 0 -1 4194560 500 0 0 0 150 25 0 0 20 0 8 0 100 1000000 2000";
        assert_eq!(parse_stat_ticks(stat), Some(175));
        let status = "Name:\tfluxbase\nVmPeak:\t  9000 kB\nVmRSS:\t   4096 kB\nThreads:\t8\n";
        assert_eq!(parse_status_rss(status), Some(4096 * 1024));
    }

    #[tokio::test]
    async fn samples_this_process() {
        let sampler = ProcessSampler::start(std::process::id(), Duration::from_millis(10)).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let stats = sampler.finish().await;
        assert!(stats.samples.len() >= 2, "{stats:?}");
        assert!(stats.rss_max_bytes > 0);
        assert!(ProcessSampler::start(u32::MAX, Duration::from_secs(1)).is_none());
    }
}
