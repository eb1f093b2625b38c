//! Background jobs over HTTP, thin handlers over the engine's job service:
//!
//! | route | who | what |
//! |---|---|---|
//! | `POST /api/v1/jobs` | [`Submitter`] | submit → 201 (200: the job of a known `idempotency_key`) |
//! | `GET /api/v1/jobs?status=&name=&limit=&offset=` | [`Submitter`] | a page, newest first |
//! | `GET /api/v1/jobs/{id}` | [`Submitter`] | one job |
//! | `POST /api/v1/jobs/{id}/cancel` | [`Submitter`] | cancel a pending or running job |
//! | `POST /api/v1/jobs/{id}/retry` | [`Submitter`] | run a failed or cancelled job again |
//! | `/api/v1/admin/jobs/…` | [`Admin`](crate::http::extract::Admin) | dead letters, redrive, schedules, webhook rules ([`admin`]) |
//!
//! Users see and touch only their own jobs (another user's answers 404, as if absent) and
//! may submit only kinds open to them (`http`); service keys, `service_role` and dashboard
//! admins see everything.

mod admin;
mod caller;
mod input;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use fluxbase_engine::jobs::{Jobs, NewJob};

pub use caller::Submitter;

use self::input::{Listing, job_error};
use crate::error::{ApiError, Code};
use crate::http::extract::Guard;
use crate::http::resource::{post, resource};
use crate::http::state::AppState;

/// Registers `/api/v1/jobs…` and `/api/v1/admin/jobs/…`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/v1/jobs")
            .route(web::get().to(list))
            .route(web::post().to(submit)),
    )
    .service(resource("/api/v1/jobs/{id}").route(web::get().to(get_one)))
    .service(post("/api/v1/jobs/{id}/cancel", cancel))
    .service(post("/api/v1/jobs/{id}/retry", retry))
    .configure(admin::routes);
}

/// The job service, or 503 when this server runs none.
fn service(state: &AppState) -> Result<&Jobs, ApiError> {
    state
        .jobs
        .as_ref()
        .ok_or_else(|| ApiError::new(Code::ServiceUnavailable, "the job system is not running"))
}

/// Submits a job → 201 with the job and its `Location`; 200 with the existing job when its
/// `idempotency_key` is known.
async fn submit(
    caller: Guard<Submitter>,
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let jobs = service(&state)?;
    let new: NewJob = input::body(&req, body, jobs.settings().max_payload_size).await?;
    let submitted = jobs.submit(&caller, new).await.map_err(job_error)?;
    let job = submitted.job;
    Ok(if submitted.created {
        HttpResponse::Created()
            .insert_header((header::LOCATION, format!("/api/v1/jobs/{}", job.id)))
            .json(job)
    } else {
        HttpResponse::Ok().json(job)
    })
}

/// A page of the caller's jobs (all jobs for trusted callers): `{jobs, next_offset}`.
async fn list(
    caller: Guard<Submitter>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let jobs = service(&state)?;
    let query = input::listing(&req, Listing::Jobs)?;
    let page = jobs.list(&caller, &query).await.map_err(job_error)?;
    Ok(HttpResponse::Ok().json(page))
}

/// One job.
async fn get_one(
    caller: Guard<Submitter>,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let jobs = service(&state)?;
    let job = jobs
        .get(&caller, input::id(&path)?)
        .await
        .map_err(job_error)?;
    Ok(HttpResponse::Ok().json(job))
}

/// Cancels a pending or running job → the job; 409 naming its status otherwise.
async fn cancel(
    caller: Guard<Submitter>,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let jobs = service(&state)?;
    let job = jobs
        .cancel(&caller, input::id(&path)?)
        .await
        .map_err(job_error)?;
    Ok(HttpResponse::Ok().json(job))
}

/// Runs a failed or cancelled job again from attempt 1 → the job; 409 otherwise.
async fn retry(
    caller: Guard<Submitter>,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let jobs = service(&state)?;
    let job = jobs
        .retry(&caller, input::id(&path)?)
        .await
        .map_err(job_error)?;
    Ok(HttpResponse::Ok().json(job))
}
