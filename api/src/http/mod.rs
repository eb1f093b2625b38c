//! The actix-web application: one factory, [`build_app`], used by the binary and by the
//! in-process tests.
//!
//! - [`extract`]: `Guard<Policy>` (who may call a route, checked through the auth service),
//!   the credential readers, the JSON body, the client's address;
//! - [`middleware`]: observe (request id, log, metrics), body timeout, security headers,
//!   CORS, rate limits, CSRF, client IP — one noun each;
//! - one module per surface: `health`, [`v1`] (`auth`, `dashboard`, `service_keys`,
//!   `realtime`, `tables`, `rpc`, `storage`, `jobs`) and [`supabase`] (`/rest/v1`,
//!   `/storage/v1`, `/auth/v1`): thin handlers that parse, call a service, shape the answer;
//!   [`rest`] carries the REST requests and answers of both REST surfaces, [`transfer`]
//!   object bytes for both storage surfaces.

pub mod extract;
mod health;
pub mod middleware;
mod resource;
pub mod rest;
pub mod state;
pub mod supabase;
pub mod transfer;
pub mod v1;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, web};

use crate::error::{ApiError, Code};

pub use middleware::client_ip::TrustedProxies;
pub use middleware::observe::RequestId;
pub use middleware::rate_limit::Limiters;
pub use state::AppState;

/// The application with every route and middleware.
pub fn build_app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let body_limit = usize::try_from(state.config.server.body_limit.0).unwrap_or(usize::MAX);
    App::new()
        // Each middleware and extractor reads only the part it needs, so none of them
        // depends on the whole state (and the state's module on none of them).
        .app_data(web::Data::from(state.config.clone()))
        .app_data(web::Data::from(state.limiters.clone()))
        .app_data(web::Data::from(state.proxies.clone()))
        .app_data(web::Data::new(state.auth.clone()))
        .app_data(web::Data::new(state))
        .app_data(web::PayloadConfig::new(body_limit))
        .app_data(json_config(body_limit))
        // Innermost first: the last `wrap` meets a request first.
        .wrap(from_fn(middleware::csrf::csrf))
        .wrap(from_fn(middleware::rate_limit::rate_limit))
        // Around the rate limits and CSRF, so their refusals (and unknown routes) take the
        // shape of the Supabase surface they answer on: GoTrue, PostgREST, storage-api.
        .wrap(from_fn(supabase::auth::gotrue_errors))
        .wrap(from_fn(supabase::errors::surface_errors))
        .wrap(from_fn(middleware::cors::cors))
        .wrap(from_fn(middleware::headers::security_headers))
        .wrap(from_fn(middleware::body_timeout::body_timeout))
        .wrap(from_fn(middleware::observe::observe))
        .configure(health::routes)
        // REST first: the busiest routes, each surface one scope with a static prefix, so
        // a REST request is not matched against every other route's pattern (regexes)
        // before its own, and other requests skip REST's with a string comparison.
        .configure(supabase::rest::configure)
        .configure(v1::rest_routes)
        .configure(v1::routes)
        .configure(supabase::routes)
        .default_service(web::to(resource::not_found))
}

/// `web::Json` bodies (for surfaces that use actix's extractor rather than
/// [`extract::Json`]): over-limit and malformed input become our error shape.
fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req| {
            let api = match &err {
                actix_web::error::JsonPayloadError::OverflowKnownLength { .. }
                | actix_web::error::JsonPayloadError::Overflow { .. } => {
                    ApiError::new(Code::PayloadTooLarge, "request body is too large")
                }
                other => ApiError::new(Code::BadRequest, format!("invalid JSON body: {other}")),
            };
            api.into()
        })
}
