//! A fleet of realtime sockets: opened at a paced rate under a cap on concurrent
//! handshakes, awaited until every subscription is acknowledged, then shut down together.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::socket::{FleetState, SocketOutcome, SocketPlan, SocketSettings, run_socket};

/// Running sockets and the switch that ends them.
pub struct Fleet {
    pub state: Arc<FleetState>,
    /// Total sockets planned.
    pub total: usize,
    shutdown: watch::Sender<bool>,
    launcher: JoinHandle<Vec<JoinHandle<SocketOutcome>>>,
    settings: Arc<SocketSettings>,
}

impl Fleet {
    /// Starts opening `plans`: `connect_rate` per second (0 = unpaced), at most
    /// `concurrency` sockets between "connect" and "acked or failed" at once.
    pub fn launch(
        plans: Vec<SocketPlan>,
        settings: Arc<SocketSettings>,
        connect_rate: f64,
        concurrency: usize,
    ) -> Fleet {
        let state = Arc::new(FleetState::default());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let total = plans.len();
        let launcher = {
            let state = state.clone();
            let settings = settings.clone();
            tokio::spawn(async move {
                let gate = Arc::new(Semaphore::new(concurrency));
                let started = Instant::now();
                let mut handles = Vec::with_capacity(plans.len());
                for (i, plan) in plans.into_iter().enumerate() {
                    if connect_rate > 0.0 {
                        let at = started + Duration::from_secs_f64(i as f64 / connect_rate);
                        tokio::time::sleep_until(at).await;
                    }
                    let Ok(permit) = gate.clone().acquire_owned().await else {
                        break;
                    };
                    if *shutdown_rx.borrow() {
                        break;
                    }
                    let (state, settings, shutdown_rx) =
                        (state.clone(), settings.clone(), shutdown_rx.clone());
                    handles.push(tokio::spawn(async move {
                        run_socket(plan, settings, state, shutdown_rx, permit).await
                    }));
                }
                handles
            })
        };
        Fleet {
            state,
            total,
            shutdown,
            launcher,
            settings,
        }
    }

    /// Sockets that are acknowledged or failed.
    pub fn settled(&self) -> usize {
        self.state.acked.load(Ordering::Relaxed) + self.state.failed.load(Ordering::Relaxed)
    }

    /// Waits until every socket is acknowledged or failed, or `limit` passes.
    /// Returns whether all settled.
    pub async fn wait_settled(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let notified = self.state.ready.notified();
            if self.settled() >= self.total {
                return true;
            }
            // A wake-up can slip between the check and the await: poll every 100 ms too.
            let wake = tokio::time::sleep(Duration::from_millis(100));
            tokio::select! {
                _ = notified => {}
                _ = wake => {}
                _ = tokio::time::sleep_until(deadline) => return self.settled() >= self.total,
            }
        }
    }

    /// Ends every socket and collects their outcomes, bounded in time.
    pub async fn finish(self) -> Vec<SocketOutcome> {
        let _ = self.shutdown.send(true);
        let handles = match self.launcher.await {
            Ok(handles) => handles,
            Err(_) => return Vec::new(),
        };
        // Each socket bounds itself (close: 1 s, slow drain: `drain`); this is a backstop.
        let limit = self.settings.drain
            + self.settings.connect_timeout
            + self.settings.ack_timeout
            + Duration::from_secs(5);
        let deadline = Instant::now() + limit;
        let mut outcomes = Vec::with_capacity(handles.len());
        for handle in handles {
            let abort = handle.abort_handle();
            match tokio::time::timeout_at(deadline, handle).await {
                Ok(Ok(outcome)) => outcomes.push(outcome),
                Ok(Err(_)) => self.state.errors.add("harness:socket_task_panicked"),
                Err(_) => {
                    abort.abort();
                    self.state.errors.add("harness:socket_task_timeout");
                }
            }
        }
        outcomes
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt, StreamExt};
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    use super::*;
    use crate::target::Target;

    fn change(seq: u64, lsn: u64) -> String {
        let now = crate::latency::now_micros() / 1_000_000;
        // A commit timestamp a second in the past, formatted from unix seconds.
        let ts = format_unix(now - 1);
        format!(
            r#"{{"type":"postgres_changes","channel":"c1","subscription_ids":["s1"],"payload":{{"type":"INSERT","schema":"public","table":"lt_owner","commit_timestamp":"{ts}","lsn":"0/{lsn:X}","columns":[{{"name":"id","type":"int8"}},{{"name":"seq","type":"int8"}}],"record":{{"id":{seq},"seq":{seq}}},"old_record":null}}}}"#
        )
    }

    fn format_unix(secs: i64) -> String {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000000Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }

    /// A throwaway server speaking the contract: ack, events 1, 2, 2 (duplicate),
    /// 3, then — for the socket whose token is "kick" — close 4008.
    #[allow(clippy::result_large_err)] // tungstenite's callback signature
    async fn contract_server() -> (Target, tokio::task::JoinHandle<Vec<std::net::IpAddr>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut peers = Vec::new();
            let mut handlers = Vec::new();
            for _ in 0..4 {
                let (stream, peer) = listener.accept().await.unwrap();
                peers.push(peer.ip());
                handlers.push(tokio::spawn(async move {
                    let mut path = String::new();
                    let mut ws = tokio_tungstenite::accept_hdr_async(
                        stream,
                        |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                            path = req.uri().to_string();
                            Ok(resp)
                        },
                    )
                    .await
                    .unwrap();
                    let Some(Ok(Message::Text(subscribe))) = ws.next().await else { panic!() };
                    let sub: serde_json::Value = serde_json::from_str(subscribe.as_str()).unwrap();
                    assert_eq!(sub["type"], "subscribe");
                    assert_eq!(sub["config"]["table"], "lt_owner");
                    let ack = r#"{"type":"ack","channel":"c1","subscribed":true,"subscription_id":"s1","schema":"public","table":"lt_owner","event":"*","filter":null}"#;
                    ws.send(Message::text(ack)).await.unwrap();
                    ws.send(Message::text(r#"{"type":"heartbeat"}"#)).await.unwrap();
                    for (seq, lsn) in [(1, 10), (2, 20), (2, 20), (3, 30)] {
                        ws.send(Message::text(change(seq, lsn))).await.unwrap();
                    }
                    if path.contains("kick") {
                        let frame = CloseFrame { code: CloseCode::from(4008), reason: "slow client".into() };
                        ws.send(Message::Close(Some(frame))).await.unwrap();
                    }
                    // Keep reading (answers the client's close) until it goes away.
                    while let Some(Ok(_)) = ws.next().await {}
                }));
            }
            for h in handlers {
                let _ = h.await;
            }
            peers
        });
        (Target::parse(&format!("http://{addr}")).unwrap(), server)
    }

    #[tokio::test]
    async fn speaks_the_contract_end_to_end() {
        let (target, server) = contract_server().await;
        let settings = Arc::new(SocketSettings {
            targets: Vec::new(),
            target,
            source_addrs: 3,
            connect_timeout: Duration::from_secs(5),
            ack_timeout: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(30),
            drain: Duration::from_secs(2),
        });
        let subscribe = r#"{"type":"subscribe","channel":"c1","config":{"event":"*","schema":"public","table":"lt_owner"}}"#;
        let plans = (0..4)
            .map(|index| SocketPlan {
                index,
                path: if index == 2 {
                    "/realtime?token=kick".into()
                } else {
                    "/realtime?token=t".into()
                },
                subscribe: subscribe.into(),
                slow: index == 3,
            })
            .collect();
        let fleet = Fleet::launch(plans, settings, 0.0, 2);
        assert!(fleet.wait_settled(Duration::from_secs(10)).await);
        // 3 fast sockets × 4 events.
        let deadline = Instant::now() + Duration::from_secs(5);
        while fleet.state.received.load(Ordering::Relaxed) < 12 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let state = fleet.state.clone();
        let mut outcomes = fleet.finish().await;
        outcomes.sort_by_key(|o| o.index);
        assert_eq!(state.acked.load(Ordering::Relaxed), 4);
        assert_eq!(state.closed_early.load(Ordering::Relaxed), 1);
        assert_eq!(state.errors.snapshot().get("close:4008"), Some(&1));
        for outcome in &outcomes[..3] {
            let counts = outcome.ledger.clone().settle(&[1, 2, 3]);
            assert_eq!(
                (counts.delivered, counts.duplicated, counts.lost),
                (3, 1, 0)
            );
        }
        assert_eq!(outcomes[2].closed_by_server.as_deref(), Some("close:4008"));
        assert!(outcomes[3].slow && outcomes[3].ledger.received() == 0);
        let latency = state.latency.percentiles().unwrap();
        assert_eq!(latency.count, 12);
        assert!(latency.p50_ms >= 1.0, "{latency:?}");
        assert_eq!(state.ack_latency.percentiles().unwrap().count, 4);
        // Sockets came from 127.0.0.1, .2 and .3.
        let mut peers = server.await.unwrap();
        peers.sort();
        peers.dedup();
        assert_eq!(peers.len(), 3, "{peers:?}");
    }
}
