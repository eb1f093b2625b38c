//! Function calls (`/rpc/{name}`): the overload chosen by the names of the arguments
//! given (PostgREST's `findProc`), the call written once in a `WITH` so a volatile
//! function runs once however its result is counted, filtered and shaped:
//!
//! ```sql
//! WITH src AS (SELECT * FROM json_to_record($1::json) AS a("x" integer),
//!                            LATERAL "s"."f"("x" := a."x") AS f)
//! SELECT … FROM (SELECT json_build_object(…) AS j FROM src r0 WHERE … LIMIT …) q
//! ```
//!
//! GET passes each argument as a parameter cast to its declared type; POST passes the JSON
//! object (converted by `json_to_record` with the declared types); a function with one
//! unnamed `json`/`jsonb`, `text` or `bytea` parameter takes the whole body.

use fluxbase_migrations::schema::{
    ArgMode, Function, FunctionArg, ReturnType, Schema, TypeKind, Volatility,
};

use super::read::{Outer, body_mode, counting, csv_header, outer};
use super::resolve::Resolver;
use super::sql::{Sql, array_literal};
use super::tree::{CallSource, Source};
use super::{BodyMode, BuildSettings, Plan, PlanKind};
use crate::rest::catalog_error::CatalogError;
use crate::rest::error::{ParamKind, QueryParamError, RestError, snippet};
use crate::rest::media::ContentType;
use crate::rest::payload::{JsonShape, Payload};
use crate::rest::request::ApiRequest;
use crate::rest::target::CallMethod;

/// How the arguments reach the function.
enum Args<'a> {
    /// GET/HEAD: `"name" := $n::type` per query-string argument.
    Query(Vec<(&'a FunctionArg, &'a [String])>),
    /// POST with a JSON object: its keys through `json_to_record`.
    Named {
        /// The JSON text.
        text: String,
        /// The arguments its keys name, in declaration order.
        args: Vec<&'a FunctionArg>,
    },
    /// The whole body as the single unnamed argument, of this type.
    Single {
        /// The body as text.
        text: String,
        /// `json`, `jsonb` or `text`.
        ty: &'a str,
    },
    /// The whole body as the single unnamed `bytea` argument.
    Bytes(Vec<u8>),
    /// No argument.
    None,
}

/// What the request's body offers for matching overloads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Offered {
    /// Named arguments only (GET, a JSON object, a form).
    Named,
    /// A JSON body that is not an object: only a single unnamed json parameter takes it.
    JsonValue,
    /// Raw text or bytes (`text/plain`, `application/octet-stream`).
    Raw(ContentType),
}

/// Builds the plan of a call of `schema.name`.
pub(super) fn call(
    request: &ApiRequest,
    name: &str,
    method: CallMethod,
    payload: Option<Payload>,
    schema: &Schema,
    settings: &BuildSettings,
) -> Result<Plan, RestError> {
    let overloads = schema.functions_named(&request.schema, name);
    let (owned_keys, offered, json_body): (Vec<String>, Offered, bool) = match (&payload, method) {
        (_, CallMethod::Get | CallMethod::Head) => (
            request.rpc_args.iter().map(|a| a.name.clone()).collect(),
            Offered::Named,
            false,
        ),
        (Some(Payload::Raw { content_type, .. }), CallMethod::Post) => {
            (Vec::new(), Offered::Raw(*content_type), false)
        }
        (Some(Payload::Json { shape, keys, .. }), CallMethod::Post) => match shape {
            JsonShape::Object => (keys.clone(), Offered::Named, true),
            _ => (Vec::new(), Offered::JsonValue, true),
        },
        (None, CallMethod::Post) => (Vec::new(), Offered::Named, true),
    };
    let keys: Vec<&str> = owned_keys.iter().map(String::as_str).collect();
    let post = method == CallMethod::Post;
    let function = match choose(overloads, &keys, offered, post) {
        Some(found) => found?,
        None => {
            let mut args: Vec<String> = keys.iter().map(|k| snippet(k)).collect();
            args.sort();
            return Err(CatalogError::FunctionNotFound {
                schema: request.schema.clone(),
                name: snippet(name),
                args,
                json_body,
            }
            .into());
        }
    };
    let args = arguments(request, function, method, payload, &keys)?;
    let call = call_source(schema, function)?;
    let mut resolver = Resolver::new(schema, settings.schemas, settings.max_rows);
    let node = resolver.node(&request.query, Source::Call(&call), 0, true)?;

    let head = method == CallMethod::Head;
    let void = matches!(function.returns, ReturnType::Void);
    let single = !function.returns_set;
    let default = if single {
        BodyMode::First
    } else {
        BodyMode::Array
    };
    let (body, strip_nulls) = if void {
        (BodyMode::None, false)
    } else {
        body_mode(request.accept, head, default)
    };
    let mut prefix = Sql::default();
    with_call(&mut prefix, function, &args, call.scalar);
    let count = if function.returns_set {
        request.preferences.count
    } else {
        None
    };
    let (total, explain) = counting(&node, count, settings.max_rows, |sql| {
        with_call(sql, function, &args, call.scalar);
    });
    let mut sql = prefix;
    outer(
        &mut sql,
        &node,
        &Outer {
            total,
            body,
            strip_nulls,
            filtered: true,
            location: None,
            inserted: false,
        },
    );
    let read_only = method != CallMethod::Post || function.volatility != Volatility::Volatile;
    Ok(Plan {
        main: sql,
        explain,
        read_only,
        kind: PlanKind::Call {
            void,
            set: function.returns_set,
        },
        body,
        media: request.accept,
        csv_header: (body == BodyMode::Csv).then(|| csv_header(&node, &function.name)),
        range: node.range,
        count,
        max_rows: settings.max_rows,
        relation: function.name.clone(),
        location_keys: Vec::new(),
        keyed: false,
        head,
    })
}

/// The overload the arguments name (a POST body may also go whole to a single unnamed
/// parameter); `None` when none fits, `Some(Err)` when several do.
fn choose<'a>(
    overloads: &'a [Function],
    keys: &[&str],
    offered: Offered,
    post: bool,
) -> Option<Result<&'a Function, RestError>> {
    let mut named = Vec::new();
    let mut single = Vec::new();
    for f in overloads {
        if offered == Offered::Named && takes_names(f, keys) {
            named.push(f);
        } else if post && takes_body(f, offered) {
            single.push(f);
        }
    }
    let ambiguous = |fs: &[&Function]| {
        RestError::from(CatalogError::AmbiguousFunction {
            candidates: fs.iter().map(|f| signature(f)).collect(),
        })
    };
    match (named.as_slice(), single.as_slice()) {
        ([f], _) => Some(Ok(f)),
        ([_, _, ..], _) => Some(Err(ambiguous(&named))),
        ([], [f]) => Some(Ok(f)),
        ([], [_, _, ..]) => Some(Err(ambiguous(&single))),
        ([], []) => None,
    }
}

/// Whether `f` takes exactly these named arguments: every required input given, every key
/// an input.
fn takes_names(f: &Function, keys: &[&str]) -> bool {
    let all_known = keys
        .iter()
        .all(|k| f.inputs().any(|a| !a.name.is_empty() && a.name == *k));
    let required_given = f
        .required_inputs()
        .all(|a| !a.name.is_empty() && keys.contains(&a.name.as_str()));
    all_known && required_given
}

/// Whether `f` has one unnamed parameter of the type this body is.
fn takes_body(f: &Function, offered: Offered) -> bool {
    let mut inputs = f.inputs();
    let (Some(arg), None) = (inputs.next(), inputs.next()) else {
        return false;
    };
    if !arg.name.is_empty() {
        return false;
    }
    let ty = arg.data_type.name.as_str();
    match offered {
        Offered::Named | Offered::JsonValue => ty == "json" || ty == "jsonb",
        Offered::Raw(ContentType::Text) => ty == "text",
        Offered::Raw(ContentType::Binary) => ty == "bytea",
        Offered::Raw(_) => false,
    }
}

/// `schema.name(a => integer, …)` for PGRST203.
fn signature(f: &Function) -> String {
    let args: Vec<String> = f
        .inputs()
        .map(|a| format!("{} => {}", a.name, a.data_type.name))
        .collect();
    format!("{}.{}({})", f.schema, f.name, args.join(", "))
}

/// How the chosen function gets its arguments.
fn arguments<'a>(
    request: &'a ApiRequest,
    function: &'a Function,
    method: CallMethod,
    payload: Option<Payload>,
    keys: &[&str],
) -> Result<Args<'a>, RestError> {
    if method != CallMethod::Post {
        let mut args = Vec::new();
        for arg in function.inputs() {
            let Some(given) = request.rpc_args.iter().find(|a| a.name == arg.name) else {
                continue;
            };
            if given.values.len() > 1 && arg.mode != ArgMode::Variadic {
                return Err(QueryParamError::value(
                    ParamKind::RpcArgument,
                    &given.name,
                    "",
                    "given more than once, and the parameter is not VARIADIC",
                )
                .into());
            }
            args.push((arg, given.values.as_slice()));
        }
        return Ok(if args.is_empty() {
            Args::None
        } else {
            Args::Query(args)
        });
    }
    let unnamed = function.inputs().next().filter(|a| a.name.is_empty());
    match payload {
        Some(Payload::Raw { bytes, .. }) => match unnamed {
            Some(a) if a.data_type.name == "bytea" => Ok(Args::Bytes(bytes)),
            _ => Ok(Args::Single {
                text: String::from_utf8(bytes).map_err(|_| RestError::InvalidBody {
                    reason: "the text body is not valid UTF-8".to_owned(),
                })?,
                ty: "text",
            }),
        },
        Some(Payload::Json { text, .. }) => match unnamed {
            Some(a) => Ok(Args::Single {
                text,
                ty: a.data_type.name.as_str(),
            }),
            None if keys.is_empty() => Ok(Args::None),
            None => Ok(Args::Named {
                text,
                args: function
                    .inputs()
                    .filter(|a| keys.contains(&a.name.as_str()))
                    .collect(),
            }),
        },
        None => Ok(Args::None),
    }
}

/// The result's shape: columns when known, the relation whose rows it returns.
fn call_source<'a>(
    schema: &'a Schema,
    function: &'a Function,
) -> Result<CallSource<'a>, RestError> {
    let (relation, columns, scalar) = match &function.returns {
        ReturnType::Void => (None, None, true),
        ReturnType::Scalar(ty) if ty.kind == TypeKind::Pseudo && ty.name == "record" => {
            return Err(RestError::NotImplemented {
                details: format!(
                    "{} returns an anonymous record: declare OUT parameters or RETURNS TABLE",
                    function.name
                ),
            });
        }
        ReturnType::Scalar(_) => (None, None, true),
        ReturnType::Composite { relation, .. } => {
            let relation = relation.and_then(|oid| schema.relation_by_oid(oid));
            let columns = relation.map(|r| {
                r.columns
                    .iter()
                    .map(|c| (c.name.as_str(), &c.data_type))
                    .collect()
            });
            (relation, columns, false)
        }
        ReturnType::Table(args) => (
            None,
            Some(
                args.iter()
                    .map(|a| (a.name.as_str(), &a.data_type))
                    .collect(),
            ),
            false,
        ),
    };
    Ok(CallSource {
        function,
        relation,
        columns,
        scalar,
    })
}

/// `WITH src AS (SELECT * FROM <call>) `.
fn with_call(sql: &mut Sql, function: &Function, args: &Args, scalar: bool) {
    sql.push("WITH src AS (SELECT * FROM ");
    if let Args::Named { text, args } = args {
        sql.push("json_to_record(");
        sql.param_as(text.clone(), "json");
        sql.push(") AS a(");
        for (i, arg) in args.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.ident(&arg.name);
            sql.push(" ");
            sql.push(&arg.data_type.name);
        }
        sql.push("), LATERAL ");
    }
    sql.qualified(&function.schema, &function.name);
    sql.push("(");
    match args {
        Args::None => {}
        Args::Query(args) => {
            for (i, (arg, values)) in args.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                if arg.mode == ArgMode::Variadic {
                    sql.push("VARIADIC ");
                }
                sql.ident(&arg.name);
                sql.push(" := ");
                let value = if arg.mode == ArgMode::Variadic {
                    array_literal(values)
                } else {
                    values.first().cloned().unwrap_or_default()
                };
                sql.param_as(value, &arg.data_type.name);
            }
        }
        Args::Named { args, .. } => {
            for (i, arg) in args.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                if arg.mode == ArgMode::Variadic {
                    sql.push("VARIADIC ");
                }
                sql.ident(&arg.name);
                sql.push(" := a.");
                sql.ident(&arg.name);
            }
        }
        Args::Single { text, ty } => sql.param_as(text.clone(), ty),
        Args::Bytes(bytes) => sql.bytes_param(bytes.clone()),
    }
    sql.push(if scalar { ") AS f(v)) " } else { ") AS f) " });
}
