//! [`Peer`]: the caller's address (after trusted proxies) and `User-Agent`, as the auth
//! service records them on sessions and audit rows.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use fluxbase_auth::Client;

use crate::error::ApiError;
use crate::http::middleware::client_ip::client_ip;

/// The client of the request.
#[derive(Debug, Clone)]
pub struct Peer(pub Client);

impl Peer {
    /// The client of `req`.
    pub fn of(req: &HttpRequest) -> Peer {
        let user_agent = req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        Peer(Client::new(client_ip(req), user_agent))
    }
}

impl FromRequest for Peer {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Peer::of(req)))
    }
}
