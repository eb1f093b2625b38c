//! Storage in Fluxbase's own shapes, `/api/v1/storage/…`: buckets, files (streamed upload
//! and download with `Range`), listings, copy and move, signed URLs and public reads. The
//! handlers parse, call [`Storage`](fluxbase_storage::Storage) as the caller (policies on
//! `storage.objects` decide) and shape the answer; errors are `{"error":{code,message}}`.
//!
//! | path | what |
//! |---|---|
//! | `GET, POST /buckets` | list (`{"buckets":[…]}`), create (201) |
//! | `GET, PATCH, DELETE /buckets/{bucket}` | one bucket, change it, delete it (only when empty) |
//! | `POST /buckets/{bucket}/empty` | delete every object the caller may delete |
//! | `GET /buckets/{bucket}/files?prefix&limit&offset&sort&order&search` | one folder level |
//! | `DELETE /buckets/{bucket}/files` `{"paths":[…]}` | delete many |
//! | `POST, PUT, GET, HEAD, DELETE /buckets/{bucket}/files/{path}` | upload (PUT replaces), download, headers, delete |
//! | `GET /buckets/{bucket}/info/{path}` | the object's metadata |
//! | `POST /buckets/{bucket}/copy`, `/move` `{"from","to","destination_bucket"}` | copy, rename |
//! | `POST /buckets/{bucket}/sign/{path}`, `/upload-url/{path}` | signed download / upload URLs |
//! | `GET, HEAD, PUT /signed/{bucket}/{path}?token=` | use a signed URL (no session) |
//! | `GET, HEAD /public/{bucket}/{path}` | read from a public bucket (no token) |

mod buckets;
mod objects;
mod signed;

use actix_web::web;

use crate::http::resource::{post, resource};

/// Registers `/api/v1/storage/*`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    const BASE: &str = "/api/v1/storage";
    cfg.service(
        resource(&format!("{BASE}/buckets"))
            .route(web::get().to(buckets::list))
            .route(web::post().to(buckets::create)),
    )
    .service(
        resource(&format!("{BASE}/buckets/{{bucket}}"))
            .route(web::get().to(buckets::get))
            .route(web::patch().to(buckets::update))
            .route(web::put().to(buckets::update))
            .route(web::delete().to(buckets::delete)),
    )
    .service(post(
        &format!("{BASE}/buckets/{{bucket}}/empty"),
        buckets::empty,
    ))
    .service(
        resource(&format!("{BASE}/buckets/{{bucket}}/files"))
            .route(web::get().to(objects::list))
            .route(web::delete().to(objects::remove_many)),
    )
    .service(
        resource(&format!("{BASE}/buckets/{{bucket}}/files/{{path:.+}}"))
            .route(web::post().to(objects::create))
            .route(web::put().to(objects::replace))
            .route(web::get().to(objects::download))
            .route(web::head().to(objects::head))
            .route(web::delete().to(objects::remove)),
    )
    .service(
        resource(&format!("{BASE}/buckets/{{bucket}}/info/{{path:.+}}"))
            .route(web::get().to(objects::info)),
    )
    .service(post(
        &format!("{BASE}/buckets/{{bucket}}/copy"),
        objects::copy,
    ))
    .service(post(
        &format!("{BASE}/buckets/{{bucket}}/move"),
        objects::rename,
    ))
    .service(post(
        &format!("{BASE}/buckets/{{bucket}}/sign/{{path:.+}}"),
        signed::sign_download,
    ))
    .service(post(
        &format!("{BASE}/buckets/{{bucket}}/upload-url/{{path:.+}}"),
        signed::sign_upload,
    ))
    .service(
        resource(&format!("{BASE}/signed/{{bucket}}/{{path:.+}}"))
            .route(web::get().to(signed::download))
            .route(web::head().to(signed::head))
            .route(web::put().to(signed::upload))
            .route(web::post().to(signed::upload)),
    )
    .service(
        resource(&format!("{BASE}/public/{{bucket}}/{{path:.+}}"))
            .route(web::get().to(objects::download_public))
            .route(web::head().to(objects::head_public)),
    );
}
