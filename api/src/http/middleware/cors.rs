//! CORS (`security.cors.*`): preflights are answered here for any path; other responses
//! to an allowed origin carry the CORS headers.

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, ResponseError, web};

use super::headers::insert;
use crate::config::{Config, CorsConfig};
use crate::error::{ApiError, Code};

/// The middleware.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<BoxBody, impl MessageBody>>, Error> {
    let Some(config) = req.app_data::<web::Data<Config>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_right_body);
    };
    let cors = &config.security.cors;
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let allowed = origin.as_deref().filter(|o| {
        cors.enabled
            && cors
                .allowed_origins
                .iter()
                .any(|a| a == "*" || a.eq_ignore_ascii_case(o))
    });
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        && origin.is_some();
    if preflight {
        let res = match allowed {
            Some(o) => {
                let mut res = HttpResponse::NoContent().finish();
                let h = res.headers_mut();
                set_cors(h, o, cors);
                insert(
                    h,
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    &cors.allowed_methods.join(", "),
                );
                insert(
                    h,
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    &cors.allowed_headers.join(", "),
                );
                insert(
                    h,
                    header::ACCESS_CONTROL_MAX_AGE,
                    &cors.max_age.get().as_secs().to_string(),
                );
                res
            }
            None => ApiError::new(
                Code::Forbidden,
                "origin not allowed (security.cors.allowed_origins)",
            )
            .error_response(),
        };
        return Ok(req.into_response(res).map_into_left_body());
    }
    let mut res = next.call(req).await?;
    if let Some(o) = allowed {
        set_cors(res.headers_mut(), o, cors);
    }
    Ok(res.map_into_right_body())
}

/// The CORS headers of an answer to an allowed `origin`.
fn set_cors(headers: &mut HeaderMap, origin: &str, cors: &CorsConfig) {
    let any = cors.allowed_origins.iter().any(|a| a == "*");
    insert(
        headers,
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        if any && !cors.allow_credentials {
            "*"
        } else {
            origin
        },
    );
    if cors.allow_credentials {
        insert(headers, header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
    }
    insert(headers, header::VARY, "Origin");
    insert(
        headers,
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        // What PostgREST's and GoTrue's clients read: the count and range, the new row, the
        // preferences honoured, the schema that answered, GoTrue's API version and paging.
        "x-request-id, retry-after, content-range, range-unit, location, content-location, \
         preference-applied, content-profile, x-supabase-api-version, x-total-count, link",
    );
}
