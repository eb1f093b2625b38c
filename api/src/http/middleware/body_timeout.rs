//! `server.body_timeout`: a request body must keep arriving. actix bounds the time to
//! receive a request *head* (`client_request_timeout`), not its body: `Content-Length:
//! 4000`, nine bytes, then silence would hold a connection and a handler forever. Here the
//! payload of every request with a body is wrapped in a stream that fails with `TimedOut`
//! when no byte arrives for `server.body_timeout` (before the first chunk, or between two,
//! like nginx's `client_body_timeout`); the JSON extractor answers that as 408
//! `request_timeout`, and the connection is closed after the response (what is left of the
//! body will never be read).
//!
//! WebSocket upgrades are left alone: their "body" is the socket's frames, whose silences
//! are the ping/pong timers' business.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::ConnectionType;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage, web};
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use crate::config::Config;

/// A payload that fails when it stays silent for `timeout`.
struct TimedPayload {
    inner: Payload,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    /// Set when the timeout fired, for the middleware to close the connection.
    fired: Rc<Cell<bool>>,
    done: bool,
}

impl Stream for TimedPayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let deadline = Instant::now() + self.timeout;
                self.sleep.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(other) => {
                self.done = true;
                Poll::Ready(other)
            }
            Poll::Pending => match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.done = true;
                    self.fired.set(true);
                    let secs = self.timeout.as_secs_f64();
                    Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no data for {secs}s (server.body_timeout)"),
                    )))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// Whether the request announces a body (and is not a WebSocket upgrade).
fn has_body(req: &ServiceRequest) -> bool {
    let h = req.headers();
    if h.contains_key(header::UPGRADE) {
        return false;
    }
    let length = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    length.is_some_and(|n| n > 0) || h.contains_key(header::TRANSFER_ENCODING)
}

/// The middleware.
pub async fn body_timeout(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let timeout = req
        .app_data::<web::Data<Config>>()
        .map(|c| c.server.body_timeout.get());
    let fired = Rc::new(Cell::new(false));
    if let Some(timeout) = timeout
        && has_body(&req)
    {
        let inner = req.take_payload();
        let timed = TimedPayload {
            inner,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            fired: fired.clone(),
            done: false,
        };
        req.set_payload(Payload::Stream {
            payload: Box::pin(timed),
        });
    }
    let mut res = next.call(req).await?;
    if fired.get() {
        res.response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(res)
}
