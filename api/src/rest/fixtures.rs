//! Shorthands the parser's unit tests share: a request on a table or a function with
//! the default configuration (`public` exposed, default limits).

use super::error::{QueryParamError, RestError};
use super::request::{ApiRequest, Headers, ParserConfig, RequestParts, parse_request};
use super::target::Resource;

/// `method /rest/v1/items?query` with `headers`.
pub fn table_with(method: &str, query: &str, headers: Headers) -> Result<ApiRequest, RestError> {
    let parts = RequestParts {
        method,
        resource: Resource::Table {
            schema: None,
            name: "items",
            key: None,
        },
        query,
        headers,
    };
    parse_request(&parts, &ParserConfig::default())
}

/// `method /rest/v1/items?query`.
pub fn table(method: &str, query: &str) -> Result<ApiRequest, RestError> {
    table_with(method, query, Headers::default())
}

/// `GET /rest/v1/items?query`, which must parse.
pub fn get(query: &str) -> ApiRequest {
    match table("GET", query) {
        Ok(request) => request,
        Err(err) => panic!("GET ?{query} failed: {err} ({:?})", err.details()),
    }
}

/// `GET /rest/v1/items?query`, which must fail.
pub fn get_err(query: &str) -> RestError {
    match table("GET", query) {
        Ok(request) => panic!("GET ?{query} parsed: {request:#?}"),
        Err(err) => err,
    }
}

/// The PGRST100 detail of `GET ?query`, which must fail with PGRST100.
pub fn get_parse_err(query: &str) -> QueryParamError {
    match get_err(query) {
        RestError::QueryParam(err) => err,
        other => panic!("GET ?{query}: expected PGRST100, got {other:?}"),
    }
}

/// `method /rest/v1/rpc/fn?query` with `headers`.
pub fn call_with(method: &str, query: &str, headers: Headers) -> Result<ApiRequest, RestError> {
    let parts = RequestParts {
        method,
        resource: Resource::Function {
            schema: None,
            name: "fn",
        },
        query,
        headers,
    };
    parse_request(&parts, &ParserConfig::default())
}
