//! `ws-ceiling` end to end: the harness starts the bare broadcast server as a child
//! process, opens its sockets to it, and every socket must get every message once, in
//! order, with the server's CPU sampled from the child.

use serde_json::Value;

use crate::{ReportPath, harness};

/// Runs `ws-ceiling` with `extra` flags and returns its report, after checking the run
/// was clean (`--strict` exits 1 otherwise).
fn ceiling(name: &str, extra: &[&str]) -> Value {
    let report = ReportPath::new(name);
    let mut args = vec![
        "ws-ceiling",
        "--sockets",
        "40",
        "--duration",
        "2",
        "--drain",
        "20",
        "--quiet",
        "--strict",
        "--out",
        report.as_str(),
    ];
    args.extend_from_slice(extra);
    let out = harness(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("verdict                    clean"),
        "{stdout}"
    );
    report.read()
}

/// What every ceiling run must show, whatever its rate.
fn every_message_everywhere(report: &Value) -> u64 {
    let messages = report["broadcast"]["messages"].as_u64().unwrap();
    assert!(messages > 0, "{report:#}");
    assert_eq!(report["broadcast"]["sockets"], 40, "{report:#}");
    assert_eq!(report["sockets"]["acked"], 40);
    let events = &report["events"];
    assert_eq!(events["expected"].as_u64(), Some(messages * 40));
    assert_eq!(events["delivered"].as_u64(), Some(messages * 40));
    for counter in ["lost", "duplicated", "unexpected", "reordered"] {
        assert_eq!(events[counter], 0, "{counter}: {report:#}");
    }
    assert_eq!(report["latency"]["count"].as_u64(), Some(messages * 40));
    // The server is the child, sampled apart from the harness.
    let (server, harness) = (&report["server"]["pid"], &report["harness"]["pid"]);
    assert!(server.as_u64().is_some() && server != harness, "{report:#}");
    assert!(
        report["config"]["server_url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    messages
}

#[test]
fn paced_broadcast_reaches_every_socket_once_in_order() {
    let report = ceiling("paced", &["--rate", "50", "--payload-bytes", "300"]);
    let messages = every_message_everywhere(&report);
    // 50/s for 2 s (the loop stops between messages).
    assert!((90..=110).contains(&messages), "{messages}");
    // Frames are realtime-sized: the row's 300-byte payload plus the change's envelope.
    let frame = report["broadcast"]["frame_bytes"].as_f64().unwrap();
    let mean = report["events"]["frame_bytes_mean"].as_f64().unwrap();
    assert!(frame > 850.0 && frame < 900.0, "{frame}");
    assert!((mean - frame).abs() < 8.0, "{mean} vs {frame}");
}

#[test]
fn unpaced_broadcast_runs_as_fast_as_the_sockets_drain_and_loses_nothing() {
    // Large frames, so the backlog queued in kernel buffers at the stop drains quickly.
    let report = ceiling("unpaced", &["--rate", "0", "--payload-bytes", "4000"]);
    let messages = every_message_everywhere(&report);
    // Far beyond any paced rate: the loop only waits for full queues.
    assert!(messages > 1_000, "{messages}");
    assert_eq!(report["broadcast"]["target_rate"], 0.0);
}
