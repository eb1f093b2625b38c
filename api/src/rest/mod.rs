//! REST over the tables in PostgREST's language: the request parser, the SQL builder, the
//! executor and the responses.
//!
//! [`parse_request`] turns a request's parts — method, the resource its path names, the
//! raw query string and the headers `Prefer`, `Range`, `Range-Unit`, `Accept`,
//! `Accept-Profile`, `Content-Profile`, `Content-Type` — into an [`ApiRequest`]: a typed,
//! bounded AST a SQL builder turns into one statement. [`Payload::parse`] then checks the
//! body of writes and calls. Nothing here touches the database or produces SQL:
//! identifiers are plain strings the builder resolves against the schema cache (and
//! refuses when unknown), values stay text the builder binds as parameters.
//!
//! Every size a client controls is bounded by [`Limits`]; every refusal is a
//! [`RestError`] with PostgREST's code, status and a message naming what is wrong.
//!
//! On top of the parser: [`build`] turns a request and a schema snapshot into one
//! statement with bind parameters, [`exec`] runs it as the caller in one pipelined
//! transaction with prepared statements cached per connection, [`response`] shapes the
//! answer and [`failure`] the errors, and [`service::RestService`] ties them into the one
//! call the HTTP routes make.
//!
//! [`build`] turns a parsed request and a schema snapshot into one statement;
//! [`service::RestService`] runs it as the caller and shapes the response.

pub mod build;
pub mod catalog_error;
mod cursor;
pub mod error;
pub mod exec;
pub mod failure;
pub mod field;
pub mod filter;
pub mod limits;
pub mod logic;
pub mod media;
pub mod openapi;
pub mod order;
pub mod payload;
pub mod prefer;
pub mod query;
mod query_string;
pub mod range;
pub mod request;
pub mod response;
pub mod rpc;
pub mod select;
pub mod service;
mod statements;
pub mod target;

#[cfg(test)]
mod filter_tests;
#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod logic_tests;
#[cfg(test)]
mod media_tests;
#[cfg(test)]
mod order_tests;
#[cfg(test)]
mod payload_tests;
#[cfg(test)]
mod prefer_tests;
#[cfg(test)]
mod proptest_tests;
#[cfg(test)]
mod range_tests;
#[cfg(test)]
mod request_tests;
#[cfg(test)]
mod select_tests;

pub use catalog_error::CatalogError;
pub use error::{RestError, snippet};
pub use field::{Field, JsonArrow, JsonOperand, JsonStep};
pub use filter::{Filter, FtsOperator, IsValue, Operation, Operator, Quantifier};
pub use limits::Limits;
pub use logic::{Condition, LogicOperator};
pub use media::{ContentType, MediaType};
pub use order::{Direction, NullsOrder, OrderTarget, OrderTerm};
pub use payload::{JsonShape, Payload};
pub use prefer::Preferences;
pub use query::Query;
pub use range::RowRange;
pub use request::{ApiRequest, Headers, ParserConfig, RequestParts, parse_request};
pub use rpc::RpcArg;
pub use select::{AggregateFunction, Embed, JoinType, SelectItem};
pub use target::{Action, CallMethod, NEVER_EXPOSED, Resource, Target, is_never_exposed};

pub use failure::Failure;
pub use response::RestResponse;
pub use service::{Flavour, RestCall, RestService, RestSettings, SessionCheck};
