//! A raw WebSocket client of `/realtime/v1/websocket` (Phoenix channels, either version),
//! and [`Subscriber`]: a socket of either protocol subscribed to tables, yielding change
//! payloads in one shape, so one workload can run over both.

use std::collections::VecDeque;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::{EVENT_TIMEOUT, Ws};

/// One server message, decoded from either version (a binary broadcast included).
#[derive(Debug, Clone, PartialEq)]
pub struct PhxMsg {
    pub join_ref: Value,
    pub msg_ref: Value,
    pub topic: String,
    pub event: String,
    pub payload: Value,
    /// Whether it came as a binary frame (vsn 2.0.0 user broadcast, kind 4).
    pub binary: bool,
}

/// What the socket saw next.
#[derive(Debug)]
pub enum PhxEvent {
    Msg(PhxMsg),
    /// A close, with its code and reason when given.
    Closed(Option<(u16, String)>),
}

/// A Phoenix client.
pub struct Phx {
    pub inner: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    pub vsn: String,
    next_ref: u64,
    /// Messages read while looking for another one.
    stash: VecDeque<PhxMsg>,
}

/// Decodes a kind-4 binary broadcast.
fn decode_binary(bytes: &[u8]) -> PhxMsg {
    assert_eq!(bytes[0], 4, "server binary frames are user broadcasts");
    let (topic_len, event_len, meta_len, encoding) = (
        bytes[1] as usize,
        bytes[2] as usize,
        bytes[3] as usize,
        bytes[4],
    );
    let mut at = 5;
    let topic = String::from_utf8(bytes[at..at + topic_len].to_vec()).unwrap();
    at += topic_len;
    let event = String::from_utf8(bytes[at..at + event_len].to_vec()).unwrap();
    at += event_len + meta_len;
    let body = &bytes[at..];
    let payload = if encoding == 1 {
        serde_json::from_slice(body).expect("JSON payload")
    } else {
        json!({"binary": base64::engine::general_purpose::STANDARD.encode(body)})
    };
    PhxMsg {
        join_ref: Value::Null,
        msg_ref: Value::Null,
        topic,
        event: "broadcast".into(),
        payload: json!({"type": "broadcast", "event": event, "payload": payload}),
        binary: true,
    }
}

impl Phx {
    /// Connects with `apikey` (if any) and `vsn`.
    pub async fn connect(addr: &str, apikey: Option<&str>, vsn: &str) -> Phx {
        let mut url = format!("ws://{addr}/realtime/v1/websocket?vsn={vsn}");
        if let Some(key) = apikey {
            url.push_str(&format!("&apikey={key}"));
        }
        let (inner, _) = tokio::time::timeout(EVENT_TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .expect("websocket connect timed out")
            .expect("websocket connect");
        Phx {
            inner,
            vsn: vsn.to_string(),
            next_ref: 0,
            stash: VecDeque::new(),
        }
    }

    /// A fresh ref.
    pub fn make_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    /// Sends a message in this socket's version.
    pub async fn send(
        &mut self,
        join_ref: &Value,
        msg_ref: &Value,
        topic: &str,
        event: &str,
        payload: Value,
    ) {
        let text = if self.vsn == "1.0.0" {
            json!({"join_ref": join_ref, "ref": msg_ref, "topic": topic, "event": event, "payload": payload})
        } else {
            json!([join_ref, msg_ref, topic, event, payload])
        };
        self.send_raw(Message::text(text.to_string())).await;
    }

    /// Sends a raw frame.
    pub async fn send_raw(&mut self, message: Message) {
        self.inner.send(message).await.expect("websocket send");
    }

    /// Pushes `event` on `topic` (of the join `join_ref`); returns the push's ref.
    pub async fn push(
        &mut self,
        join_ref: &str,
        topic: &str,
        event: &str,
        payload: Value,
    ) -> String {
        let r = self.make_ref();
        self.send(&json!(join_ref), &json!(r), topic, event, payload)
            .await;
        r
    }

    /// The next message or close from the wire.
    async fn read(&mut self) -> PhxEvent {
        let vsn1 = self.vsn == "1.0.0";
        let fut = async {
            loop {
                match self.inner.next().await {
                    Some(Ok(Message::Text(t))) => {
                        let v: Value =
                            serde_json::from_str(t.as_str()).expect("server frame is JSON");
                        let msg = if vsn1 {
                            PhxMsg {
                                join_ref: v["join_ref"].clone(),
                                msg_ref: v["ref"].clone(),
                                topic: v["topic"].as_str().expect("topic").to_string(),
                                event: v["event"].as_str().expect("event").to_string(),
                                payload: v["payload"].clone(),
                                binary: false,
                            }
                        } else {
                            assert_eq!(v.as_array().map(Vec::len), Some(5), "vsn 2 frame: {v}");
                            PhxMsg {
                                join_ref: v[0].clone(),
                                msg_ref: v[1].clone(),
                                topic: v[2].as_str().expect("topic").to_string(),
                                event: v[3].as_str().expect("event").to_string(),
                                payload: v[4].clone(),
                                binary: false,
                            }
                        };
                        return PhxEvent::Msg(msg);
                    }
                    Some(Ok(Message::Binary(b))) => return PhxEvent::Msg(decode_binary(&b)),
                    Some(Ok(Message::Close(frame))) => {
                        return PhxEvent::Closed(
                            frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                        );
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return PhxEvent::Closed(None),
                }
            }
        };
        tokio::time::timeout(EVENT_TIMEOUT, fut)
            .await
            .expect("no websocket event in time")
    }

    /// The next event (stashed messages first).
    pub async fn next_event(&mut self) -> PhxEvent {
        match self.stash.pop_front() {
            Some(msg) => PhxEvent::Msg(msg),
            None => self.read().await,
        }
    }

    /// The next message; fails on close.
    pub async fn next(&mut self) -> PhxMsg {
        match self.next_event().await {
            PhxEvent::Msg(m) => m,
            PhxEvent::Closed(c) => panic!("socket closed: {c:?}"),
        }
    }

    /// The first message matching `pick`; the others read meanwhile stay for later.
    pub async fn first(&mut self, pick: impl Fn(&PhxMsg) -> bool) -> PhxMsg {
        if let Some(i) = self.stash.iter().position(&pick) {
            return self.stash.remove(i).unwrap();
        }
        loop {
            match self.read().await {
                PhxEvent::Msg(m) if pick(&m) => return m,
                PhxEvent::Msg(m) => self.stash.push_back(m),
                PhxEvent::Closed(c) => panic!("socket closed: {c:?}"),
            }
        }
    }

    /// The reply to the push `msg_ref`.
    pub async fn reply(&mut self, msg_ref: &str) -> PhxMsg {
        let r = json!(msg_ref);
        self.first(|m| m.event == "phx_reply" && m.msg_ref == r)
            .await
    }

    /// The next message of `event` (on any topic).
    pub async fn message_of(&mut self, event: &str) -> PhxMsg {
        self.first(|m| m.event == event).await
    }

    /// Joins `topic` with `payload`; returns the join ref and the reply.
    pub async fn join(&mut self, topic: &str, payload: Value) -> (String, PhxMsg) {
        let r = self.make_ref();
        self.send(&json!(r), &json!(r), topic, "phx_join", payload)
            .await;
        let reply = self.reply(&r).await;
        (r, reply)
    }
}

/// A socket of either protocol, subscribed to whole tables.
pub enum Subscriber {
    Native(Ws),
    /// A Phoenix socket and the access_token its joins carry (none: the anon key's).
    Phoenix(Phx, Option<String>),
}

impl Subscriber {
    /// A native socket with `token` (none: anon).
    pub async fn native(addr: &str, token: Option<&str>) -> Subscriber {
        Subscriber::Native(Ws::connect(addr, token).await)
    }

    /// A Phoenix socket of `vsn` whose joins carry `token` (none: the anon key's context).
    pub async fn phoenix(addr: &str, anon_key: &str, vsn: &str, token: Option<&str>) -> Subscriber {
        Subscriber::Phoenix(
            Phx::connect(addr, Some(anon_key), vsn).await,
            token.map(str::to_string),
        )
    }

    /// Subscribes to every change of `public.table` (a Phoenix join per table, carrying
    /// the socket's token); fails unless accepted.
    pub async fn subscribe_table(&mut self, table: &str) {
        match self {
            Subscriber::Native(ws) => {
                let ack = ws.subscribe(table, json!({"table": table})).await;
                assert_eq!(ack["type"], "ack", "{ack}");
            }
            Subscriber::Phoenix(phx, token) => {
                let mut payload = json!({"config": {
                    "broadcast": {"self": false, "ack": false},
                    "presence": {"key": "", "enabled": false},
                    "postgres_changes": [{"event": "*", "schema": "public", "table": table}],
                    "private": false,
                }});
                if let Some(token) = token {
                    payload["access_token"] = json!(token);
                }
                let topic = format!("realtime:{table}");
                let (_, reply) = phx.join(&topic, payload).await;
                assert_eq!(reply.payload["status"], "ok", "{reply:?}");
                let system = phx.message_of("system").await;
                assert_eq!(system.payload["message"], "Subscribed to PostgreSQL");
            }
        }
    }

    /// The next change, as the native payload shape (`type`, `table`, `record`,
    /// `old_record`, `json_nulls`…; Phoenix's `data` has the same fields).
    pub async fn change(&mut self) -> Value {
        match self {
            Subscriber::Native(ws) => ws.frame_of("postgres_changes").await["payload"].clone(),
            Subscriber::Phoenix(phx, _) => {
                let m = phx.message_of("postgres_changes").await;
                assert!(
                    m.payload["ids"]
                        .as_array()
                        .is_some_and(|ids| !ids.is_empty())
                );
                m.payload["data"].clone()
            }
        }
    }
}
