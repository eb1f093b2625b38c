//! A real WebSocket client of `/realtime`.

use super::EVENT_TIMEOUT;

/// A WebSocket client of `/realtime`.
pub struct Ws {
    pub inner: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Ws {
    /// Connects with an optional token in the query string.
    pub async fn connect(addr: &str, token: Option<&str>) -> Ws {
        let url = match token {
            Some(t) => format!("ws://{addr}/realtime?token={t}"),
            None => format!("ws://{addr}/realtime"),
        };
        let (inner, _) = tokio::time::timeout(EVENT_TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .expect("websocket connect timed out")
            .expect("websocket connect");
        Ws { inner }
    }

    /// Sends a JSON text frame.
    pub async fn send(&mut self, value: serde_json::Value) {
        use futures_util::SinkExt;
        self.inner
            .send(tokio_tungstenite::tungstenite::Message::text(
                value.to_string(),
            ))
            .await
            .expect("websocket send");
    }

    /// Sends raw text.
    pub async fn send_raw(&mut self, text: &str) {
        use futures_util::SinkExt;
        self.inner
            .send(tokio_tungstenite::tungstenite::Message::text(
                text.to_string(),
            ))
            .await
            .expect("websocket send");
    }

    /// The next event: a JSON frame, or the close frame's (code, reason).
    pub async fn next_event(&mut self) -> WsEvent {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let fut = async {
            loop {
                match self.inner.next().await {
                    Some(Ok(Message::Text(t))) => {
                        return WsEvent::Frame(
                            serde_json::from_str(t.as_str()).expect("server frame is JSON"),
                        );
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return WsEvent::Closed(
                            frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                        );
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return WsEvent::Closed(None),
                }
            }
        };
        tokio::time::timeout(EVENT_TIMEOUT, fut)
            .await
            .expect("no websocket event in time")
    }

    /// The next JSON frame; fails on close.
    pub async fn frame(&mut self) -> serde_json::Value {
        match self.next_event().await {
            WsEvent::Frame(v) => v,
            WsEvent::Closed(c) => panic!("socket closed: {c:?}"),
        }
    }

    /// The next frame of `kind`, skipping others (heartbeats, presence…).
    pub async fn frame_of(&mut self, kind: &str) -> serde_json::Value {
        loop {
            let f = self.frame().await;
            if f["type"] == kind {
                return f;
            }
        }
    }

    /// Subscribes and returns the ack.
    pub async fn subscribe(
        &mut self,
        channel: &str,
        config: serde_json::Value,
    ) -> serde_json::Value {
        self.send(serde_json::json!({"type": "subscribe", "channel": channel, "config": config}))
            .await;
        self.frame().await
    }
}

/// What a socket saw next.
#[derive(Debug)]
pub enum WsEvent {
    /// A JSON text frame.
    Frame(serde_json::Value),
    /// A close, with its code and reason when given.
    Closed(Option<(u16, String)>),
}
