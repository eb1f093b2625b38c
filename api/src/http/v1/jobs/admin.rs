//! `/api/v1/admin/jobs/…`, for dashboard admins and `service_role` (service keys and
//! service-role tokens) through the [`Admin`] guard:
//!
//! | route | what |
//! |---|---|
//! | `GET dead-letters?name=&limit=&offset=` | failed jobs, last failed first |
//! | `POST dead-letters/{id}/redrive` | one dead letter back to `pending`, attempts from 0 |
//! | `POST dead-letters/redrive` `{"name"}` | every dead letter of a name → `{name, redriven}` |
//! | `GET`/`POST schedules`, `GET`/`PATCH`/`DELETE schedules/{id}` | recurring jobs (cron in a time zone) |
//! | `GET`/`POST webhooks`, `GET`/`PUT`/`DELETE webhooks/{id}` | database-webhook rules |

use actix_web::{HttpRequest, HttpResponse, web};
use fluxbase_auth::Caller as AuthCaller;
use fluxbase_engine::jobs::{Caller, NewSchedule, NewWebhookRule, SchedulePatch};
use serde::Deserialize;
use serde_json::json;

use super::caller::admin_caller;
use super::input::{self, Listing, job_error};
use super::service;
use crate::error::ApiError;
use crate::http::extract::{Admin, Guard, Json};
use crate::http::resource::{get, post, resource};
use crate::http::state::AppState;

/// Registers `/api/v1/admin/jobs/…`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(get("/api/v1/admin/jobs/dead-letters", dead_letters))
        .service(post(
            "/api/v1/admin/jobs/dead-letters/redrive",
            redrive_name,
        ))
        .service(post(
            "/api/v1/admin/jobs/dead-letters/{id}/redrive",
            redrive_one,
        ))
        .service(
            resource("/api/v1/admin/jobs/schedules")
                .route(web::get().to(list_schedules))
                .route(web::post().to(create_schedule)),
        )
        .service(
            resource("/api/v1/admin/jobs/schedules/{id}")
                .route(web::get().to(get_schedule))
                .route(web::patch().to(update_schedule))
                .route(web::delete().to(delete_schedule)),
        )
        .service(
            resource("/api/v1/admin/jobs/webhooks")
                .route(web::get().to(list_webhooks))
                .route(web::post().to(create_webhook)),
        )
        .service(
            resource("/api/v1/admin/jobs/webhooks/{id}")
                .route(web::get().to(get_webhook))
                .route(web::put().to(update_webhook))
                .route(web::delete().to(delete_webhook)),
        );
}

/// The admitted admin as a job caller.
fn caller(admin: &Guard<Admin>) -> Result<Caller, ApiError> {
    let auth: &AuthCaller = admin;
    admin_caller(auth)
}

/// The dead letters: `{jobs, next_offset}`.
async fn dead_letters(
    admin: Guard<Admin>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let jobs = service(&state)?;
    let query = input::listing(&req, Listing::DeadLetters)?;
    let page = jobs
        .dead_letters(&caller(&admin)?, &query)
        .await
        .map_err(job_error)?;
    Ok(HttpResponse::Ok().json(page))
}

/// Redrives one dead letter → the job.
async fn redrive_one(
    admin: Guard<Admin>,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let jobs = service(&state)?;
    let job = jobs
        .redrive(&caller(&admin)?, input::id(&path)?)
        .await
        .map_err(job_error)?;
    Ok(HttpResponse::Ok().json(job))
}

/// `POST dead-letters/redrive` body: a name is required, so nothing is redriven by mistake.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedriveBody {
    name: String,
}

/// Redrives every dead letter of a name → `{name, redriven}`.
async fn redrive_name(
    admin: Guard<Admin>,
    body: Json<RedriveBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let jobs = service(&state)?;
    let name = body.into_inner().name;
    if name.is_empty() {
        return Err(input::invalid("name", "must not be empty"));
    }
    let redriven = jobs
        .redrive_failed(&caller(&admin)?, &name)
        .await
        .map_err(job_error)?;
    Ok(HttpResponse::Ok().json(json!({"name": name, "redriven": redriven})))
}

/// Every schedule, by name.
async fn list_schedules(
    admin: Guard<Admin>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let jobs = service(&state)?;
    let schedules = jobs
        .list_schedules(&caller(&admin)?)
        .await
        .map_err(job_error)?;
    Ok(HttpResponse::Ok().json(schedules))
}

/// Creates a schedule → 201.
async fn create_schedule(
    admin: Guard<Admin>,
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let jobs = service(&state)?;
    let new: NewSchedule = input::body(&req, body, jobs.settings().max_payload_size).await?;
    let schedule = jobs
        .create_schedule(&caller(&admin)?, new)
        .await
        .map_err(job_error)?;
    Ok(HttpResponse::Created().json(schedule))
}

/// One schedule.
async fn get_schedule(
    admin: Guard<Admin>,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let jobs = service(&state)?;
    let schedule = jobs
        .get_schedule(&caller(&admin)?, input::id(&path)?)
        .await
        .map_err(job_error)?;
    Ok(HttpResponse::Ok().json(schedule))
}

/// Changes a schedule (absent fields stay).
async fn update_schedule(
    admin: Guard<Admin>,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let jobs = service(&state)?;
    let id = input::id(&path)?;
    let patch: SchedulePatch = input::body(&req, body, jobs.settings().max_payload_size).await?;
    let schedule = jobs
        .update_schedule(&caller(&admin)?, id, patch)
        .await
        .map_err(job_error)?;
    Ok(HttpResponse::Ok().json(schedule))
}

/// Deletes a schedule → 204 (the jobs it submitted stay).
async fn delete_schedule(
    admin: Guard<Admin>,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let jobs = service(&state)?;
    jobs.delete_schedule(&caller(&admin)?, input::id(&path)?)
        .await
        .map_err(job_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// Every webhook rule, by name.
async fn list_webhooks(
    admin: Guard<Admin>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let jobs = service(&state)?;
    let rules = jobs
        .list_webhooks(&caller(&admin)?)
        .await
        .map_err(job_error)?;
    Ok(HttpResponse::Ok().json(rules))
}

/// Creates a webhook rule → 201.
async fn create_webhook(
    admin: Guard<Admin>,
    body: Json<NewWebhookRule>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let jobs = service(&state)?;
    let rule = jobs
        .create_webhook(&caller(&admin)?, body.into_inner())
        .await
        .map_err(job_error)?;
    Ok(HttpResponse::Created().json(rule))
}

/// One webhook rule.
async fn get_webhook(
    admin: Guard<Admin>,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let jobs = service(&state)?;
    let rule = jobs
        .get_webhook(&caller(&admin)?, input::id(&path)?)
        .await
        .map_err(job_error)?;
    Ok(HttpResponse::Ok().json(rule))
}

/// Replaces a webhook rule (every field, as for a new one).
async fn update_webhook(
    admin: Guard<Admin>,
    path: web::Path<String>,
    body: Json<NewWebhookRule>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let jobs = service(&state)?;
    let rule = jobs
        .update_webhook(&caller(&admin)?, input::id(&path)?, body.into_inner())
        .await
        .map_err(job_error)?;
    Ok(HttpResponse::Ok().json(rule))
}

/// Deletes a webhook rule → 204.
async fn delete_webhook(
    admin: Guard<Admin>,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let jobs = service(&state)?;
    jobs.delete_webhook(&caller(&admin)?, input::id(&path)?)
        .await
        .map_err(job_error)?;
    Ok(HttpResponse::NoContent().finish())
}
