//! `/storage/v1`: the storage service in Supabase storage-api's shapes, so
//! `@supabase/storage-js` (and `supabase.storage` in supabase-js) works unchanged. The
//! credentials are supabase-js's: the `apikey` header and `Authorization: Bearer` (the
//! session's access token, else the anon key); policies on `storage.objects` decide.
//!
//! | path | what |
//! |---|---|
//! | `GET, POST /bucket`, `GET, PUT, DELETE /bucket/{id}`, `POST /bucket/{id}/empty` | buckets |
//! | `POST, PUT, GET, HEAD, DELETE /object/{bucket}/{path}` | upload (`x-upsert`), download, headers, delete |
//! | `DELETE /object/{bucket}` `{prefixes}` | delete many |
//! | `POST /object/list/{bucket}` | one folder level (`prefix`, `limit`, `offset`, `sortBy`, `search`) |
//! | `GET /object/info/[public/|authenticated/]{bucket}/{path}` | metadata |
//! | `GET, HEAD /object/public/…`, `/object/authenticated/…` | public / authenticated reads |
//! | `POST /object/move`, `/object/copy` | rename, copy |
//! | `POST /object/sign/{bucket}/{path}`, `/object/sign/{bucket}`; `GET /object/sign/…?token=` | signed downloads |
//! | `POST /object/upload/sign/{bucket}/{path}`; `PUT …?token=` | signed uploads |
//! | `OPTIONS, POST /upload/resumable`; `HEAD, PATCH, DELETE /upload/resumable/{id}` | tus 1.0.0 |
//!
//! Not offered: image transformations (`/render/image/…`, `transform` options: 501
//! `NotSupported`), analytics and vector buckets, object versions.

mod bucket;
pub(crate) mod error;
mod object;
mod sign;
mod tus;

use actix_web::web;
use chrono::{DateTime, SecondsFormat, Utc};
use fluxbase_storage::{Bucket, ObjectInfo};
use serde_json::{Value, json};

pub use error::StorageApiError;
use error::resource;

/// Registers `/storage/v1/*`; paths no route takes answer in storage-api's shape. The
/// fixed segments (`list`, `sign`, `info`, `public`…) come before `/object/{bucket}`, as in
/// storage-api: a bucket of such a name is not reachable through every path.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/storage/v1")
            .service(
                resource("/bucket")
                    .route(web::get().to(bucket::list))
                    .route(web::post().to(bucket::create)),
            )
            .service(
                resource("/bucket/{id}")
                    .route(web::get().to(bucket::get))
                    .route(web::put().to(bucket::update))
                    .route(web::delete().to(bucket::delete)),
            )
            .service(resource("/bucket/{id}/empty").route(web::post().to(bucket::empty)))
            .service(resource("/object/list/{bucket}").route(web::post().to(object::list)))
            .service(resource("/object/move").route(web::post().to(object::rename)))
            .service(resource("/object/copy").route(web::post().to(object::copy)))
            .service(
                resource("/object/sign/{bucket}/{path:.+}")
                    .route(web::post().to(sign::sign_one))
                    .route(web::get().to(sign::download))
                    .route(web::head().to(sign::head)),
            )
            .service(resource("/object/sign/{bucket}").route(web::post().to(sign::sign_many)))
            .service(
                resource("/object/upload/sign/{bucket}/{path:.+}")
                    .route(web::post().to(sign::sign_upload))
                    .route(web::put().to(sign::upload)),
            )
            .service(
                resource("/object/info/public/{bucket}/{path:.+}")
                    .route(web::get().to(object::info_public)),
            )
            .service(
                resource("/object/info/authenticated/{bucket}/{path:.+}")
                    .route(web::get().to(object::info)),
            )
            .service(resource("/object/info/{bucket}/{path:.+}").route(web::get().to(object::info)))
            .service(
                resource("/object/public/{bucket}/{path:.+}")
                    .route(web::get().to(object::download_public))
                    .route(web::head().to(object::head_public)),
            )
            .service(
                resource("/object/authenticated/{bucket}/{path:.+}")
                    .route(web::get().to(object::download))
                    .route(web::head().to(object::head)),
            )
            .service(
                resource("/object/{bucket}/{path:.+}")
                    .route(web::post().to(object::create))
                    .route(web::put().to(object::replace))
                    .route(web::get().to(object::download))
                    .route(web::head().to(object::head))
                    .route(web::delete().to(object::remove)),
            )
            .service(resource("/object/{bucket}").route(web::delete().to(object::remove_many)))
            .service(
                resource("/upload/resumable")
                    .route(web::method(actix_web::http::Method::OPTIONS).to(tus::options))
                    .route(web::post().to(tus::create)),
            )
            .service(
                resource("/upload/resumable/{id}")
                    .route(web::method(actix_web::http::Method::OPTIONS).to(tus::options))
                    .route(web::head().to(tus::status))
                    .route(web::patch().to(tus::patch))
                    .route(web::delete().to(tus::terminate)),
            )
            .service(web::resource("/render/image/{tail:.*}").to(object::transform))
            .default_service(web::to(error::not_found)),
    );
}

/// A timestamp as storage-api writes them.
fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A bucket in storage-api's shape.
fn bucket_json(bucket: &Bucket) -> Value {
    json!({
        "id": bucket.id,
        "name": bucket.name,
        "owner": bucket.owner.clone().unwrap_or_default(),
        "owner_id": bucket.owner,
        "public": bucket.public,
        "type": "STANDARD",
        "file_size_limit": bucket.file_size_limit,
        "allowed_mime_types": bucket.allowed_mime_types,
        "created_at": timestamp(bucket.created_at),
        "updated_at": timestamp(bucket.updated_at),
    })
}

/// An object as storage-api lists and deletes them (`name` as given: the entry's name in a
/// listing, the full name elsewhere).
fn object_json(name: &str, info: &ObjectInfo) -> Value {
    json!({
        "name": name,
        "id": info.id,
        "bucket_id": info.bucket_id,
        "owner": info.owner.clone().unwrap_or_default(),
        "owner_id": info.owner,
        "version": info.version,
        "updated_at": timestamp(info.updated_at),
        "created_at": timestamp(info.created_at),
        "last_accessed_at": timestamp(info.last_accessed_at),
        "metadata": info.supabase_metadata(),
        "user_metadata": info.user_metadata,
    })
}
