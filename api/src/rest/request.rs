//! The whole request: method, resource path, query string and headers in; one validated
//! [`ApiRequest`] out, or the first [`RestError`] found.
//!
//! Method semantics follow PostgREST: GET/HEAD read, POST inserts (or calls a function),
//! PATCH updates, PUT upserts one row by primary key, DELETE deletes; functions take GET,
//! HEAD and POST only. Parameters that mean nothing for a method are refused rather than
//! ignored (see `check_method`). The schema is the path's (Fluxbase paths), else
//! `Accept-Profile` (GET/HEAD) or `Content-Profile` (writes), else the first exposed one.

use super::cursor::{Cursor, Syntax};
use super::error::{ParamKind, Part, QueryParamError, RestError, snippet};
use super::field::{Field, parse_json_path};
use super::filter::{Filter, Operation, Operator, ValueEnd, parse_op_expr};
use super::limits::Limits;
use super::logic::{Condition, parse_logic_value};
use super::media::{ContentType, MediaType, negotiate, parse_content_type};
use super::order::{OrderTerm, parse_order};
use super::prefer::{Preferences, parse_preferences};
use super::query::Query;
use super::query_string::{Role, classify, decode};
use super::range::{parse_bound, parse_range_header};
use super::rpc::{RpcArg, push_arg};
use super::select::{SelectItem, parse_select};
use super::target::{Action, CallMethod, Resource, Target, resolve_schema, resolve_target};

/// What the parser needs from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParserConfig {
    /// `rest.schemas`: the exposed schemas, the first being the default.
    pub schemas: Vec<String>,
    /// The parser's bounds.
    pub limits: Limits,
}

impl Default for ParserConfig {
    fn default() -> Self {
        ParserConfig {
            schemas: vec!["public".to_owned()],
            limits: Limits::default(),
        }
    }
}

/// The headers the parser reads (raw values; `None` when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers<'a> {
    /// Every `Prefer` header, in order.
    pub prefer: Vec<&'a str>,
    /// `Range`
    pub range: Option<&'a str>,
    /// `Range-Unit`
    pub range_unit: Option<&'a str>,
    /// `Accept`
    pub accept: Option<&'a str>,
    /// `Accept-Profile`
    pub accept_profile: Option<&'a str>,
    /// `Content-Profile`
    pub content_profile: Option<&'a str>,
    /// `Content-Type`
    pub content_type: Option<&'a str>,
}

/// The parts of an HTTP request the parser reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestParts<'a> {
    /// The HTTP method, as sent (`GET`).
    pub method: &'a str,
    /// The resource the path names.
    pub resource: Resource<'a>,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// The headers read.
    pub headers: Headers<'a>,
}

/// A parsed, validated request: everything a SQL builder needs besides the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest {
    /// What to do.
    pub action: Action,
    /// The schema, one of the exposed ones.
    pub schema: String,
    /// The table or function.
    pub target: Target,
    /// The root read node: select tree, conditions, order, range. For writes it shapes
    /// the representation; its conditions also choose the rows PATCH/DELETE/PUT change.
    pub query: Query,
    /// Function arguments from the query string (GET/HEAD calls only).
    pub rpc_args: Vec<RpcArg>,
    /// `columns=`: the payload keys to use (POST, PATCH, function POST).
    pub columns: Option<Vec<String>>,
    /// `on_conflict=`: the unique columns of an upsert (POST).
    pub on_conflict: Option<Vec<String>>,
    /// The `Prefer` header.
    pub preferences: Preferences,
    /// What the response body will be.
    pub accept: MediaType,
    /// What the body is, for actions with a body.
    pub content_type: Option<ContentType>,
}

/// Parses a request.
pub fn parse_request(parts: &RequestParts, config: &ParserConfig) -> Result<ApiRequest, RestError> {
    let limits = &config.limits;
    check_headers(&parts.headers, limits)?;
    let (action, target, path_schema) = resolve_target(parts.method, &parts.resource, limits)?;
    let schema = resolve_schema(action, path_schema, &parts.headers, config)?;
    let params = collect(parts.query, action, limits)?;

    let select = match &params.select {
        Some(text) => parse_whole(ParamKind::Select, "select", text, limits, |c| {
            parse_select(c, 0)
        })?,
        None => vec![SelectItem::Star],
    };
    let mut query = Query::selecting(select);
    for (path, condition) in params.conditions {
        query.node_mut(&path)?.filters.push(condition);
    }
    for (path, terms) in params.orders {
        query.node_mut(&path)?.order = terms;
    }
    for (path, limit) in params.limits {
        query.node_mut(&path)?.range.limit = Some(limit);
    }
    for (path, offset) in params.offsets {
        query.node_mut(&path)?.range.offset = offset;
    }
    query.check_related_order()?;

    let reads = matches!(
        action,
        Action::Read { .. } | Action::Call(CallMethod::Get | CallMethod::Head)
    );
    if let (true, Some(range)) = (reads, parts.headers.range) {
        let header = parse_range_header(range, parts.headers.range_unit)?;
        query.range = query.range.intersect(header);
    }

    let request = ApiRequest {
        action,
        schema,
        target,
        query,
        rpc_args: params.args,
        columns: params.columns,
        on_conflict: params.on_conflict,
        preferences: parse_preferences(&parts.headers.prefer)?,
        accept: negotiate(parts.headers.accept)?,
        content_type: if action.has_body() {
            let call = matches!(action, Action::Call(_));
            Some(parse_content_type(parts.headers.content_type, call)?)
        } else {
            None
        },
    };
    check_method(&request, params.root_range_given)?;
    Ok(request)
}

/// Refuses header values over the bound or holding control characters.
fn check_headers(headers: &Headers, limits: &Limits) -> Result<(), RestError> {
    let named = [
        ("Range", headers.range),
        ("Range-Unit", headers.range_unit),
        ("Accept", headers.accept),
        ("Accept-Profile", headers.accept_profile),
        ("Content-Profile", headers.content_profile),
        ("Content-Type", headers.content_type),
    ];
    let prefer = headers.prefer.iter().map(|p| ("Prefer", Some(*p)));
    for (name, value) in named.into_iter().chain(prefer) {
        let Some(value) = value else { continue };
        let reason = if value.len() > limits.max_header_len {
            format!("longer than {} bytes", limits.max_header_len)
        } else if value.chars().any(|c| c.is_control() && c != '\t') {
            "contains a control character".to_owned()
        } else {
            continue;
        };
        return Err(QueryParamError {
            kind: ParamKind::Header,
            param: name.to_owned(),
            value: String::new(),
            part: Part::Value,
            column: None,
            reason,
        }
        .into());
    }
    Ok(())
}

/// The query string, parsed parameter by parameter.
#[derive(Default)]
struct Params {
    /// `select=`, unparsed (parsed once the rest is known).
    select: Option<String>,
    /// `columns=`
    columns: Option<Vec<String>>,
    /// `on_conflict=`
    on_conflict: Option<Vec<String>>,
    /// Filters and logic trees with their embed paths, in query-string order.
    conditions: Vec<(Vec<String>, Condition)>,
    /// `order=` per embed path.
    orders: Vec<(Vec<String>, Vec<OrderTerm>)>,
    /// `limit=` per embed path.
    limits: Vec<(Vec<String>, u64)>,
    /// `offset=` per embed path.
    offsets: Vec<(Vec<String>, u64)>,
    /// Function arguments (GET/HEAD calls).
    args: Vec<RpcArg>,
    /// Whether the root has a `limit` or `offset`.
    root_range_given: bool,
}

/// Decodes and parses every parameter of the query string.
fn collect(query: &str, action: Action, limits: &Limits) -> Result<Params, RestError> {
    let mut params = Params::default();
    let call_read = matches!(action, Action::Call(CallMethod::Get | CallMethod::Head));
    for (key, value) in decode(query, limits)? {
        let twice = || {
            RestError::from(QueryParamError::value(
                ParamKind::QueryString,
                &key,
                &value,
                "the parameter is given twice",
            ))
        };
        match classify(&key, limits)? {
            Role::Select => {
                if params.select.replace(value.clone()).is_some() {
                    return Err(twice());
                }
            }
            Role::Columns | Role::OnConflict => {
                let kind = if key == "columns" {
                    ParamKind::Columns
                } else {
                    ParamKind::OnConflict
                };
                let names = parse_whole(kind, &key, &value, limits, parse_name_list)?;
                let slot = if key == "columns" {
                    &mut params.columns
                } else {
                    &mut params.on_conflict
                };
                if slot.replace(names).is_some() {
                    return Err(twice());
                }
            }
            Role::Order(path) => {
                let terms = parse_whole(ParamKind::Order, &key, &value, limits, parse_order)?;
                if params.orders.iter().any(|(p, _)| *p == path) {
                    return Err(twice());
                }
                params.orders.push((path, terms));
            }
            Role::Limit(path) | Role::Offset(path) => {
                let bound = parse_bound(&key, &value)?;
                params.root_range_given |= path.is_empty();
                let list = if key.ends_with("limit") {
                    &mut params.limits
                } else {
                    &mut params.offsets
                };
                if list.iter().any(|(p, _)| *p == path) {
                    return Err(twice());
                }
                list.push((path, bound));
            }
            Role::Logic {
                path,
                operator,
                negated,
            } => {
                let condition = parse_whole(ParamKind::Logic, &key, &value, limits, |c| {
                    parse_logic_value(c, operator, negated)
                })?;
                params.conditions.push((path, condition));
            }
            Role::Filter => {
                let (path, field) = parse_filter_key(&key, &value, limits)?;
                let op = parse_whole(ParamKind::Filter, &key, &value, limits, |c| {
                    parse_op_expr(c, ValueEnd::Rest)
                });
                match op {
                    Ok((negated, operation)) => {
                        let filter = Filter {
                            field,
                            negated,
                            operation,
                        };
                        params.conditions.push((path, Condition::Filter(filter)));
                    }
                    Err(_) if call_read && path.is_empty() && field.json_path.is_empty() => {
                        push_arg(&mut params.args, &key, value, limits)?;
                    }
                    Err(err) => return Err(err),
                }
            }
        }
    }
    Ok(params)
}

/// Runs `parse` over the whole of `value`, turning a syntax error into PGRST100.
fn parse_whole<T>(
    kind: ParamKind,
    key: &str,
    value: &str,
    limits: &Limits,
    parse: impl FnOnce(&mut Cursor) -> Result<T, Syntax>,
) -> Result<T, RestError> {
    let mut c = Cursor::new(value, limits);
    let parsed = parse(&mut c).and_then(|parsed| {
        if c.at_end() {
            Ok(parsed)
        } else {
            Err(c.unexpected("the end of the value"))
        }
    });
    parsed.map_err(|syntax| {
        QueryParamError {
            kind,
            param: snippet(key),
            value: snippet(value),
            part: Part::Value,
            column: Some(syntax.column(value)),
            reason: syntax.reason,
        }
        .into()
    })
}

/// `col`, `embed.col`, `embed.col->a->>b`: the embed path and the filtered field.
fn parse_filter_key(
    key: &str,
    value: &str,
    limits: &Limits,
) -> Result<(Vec<String>, Field), RestError> {
    let mut c = Cursor::new(key, limits);
    let parsed = (|| {
        let mut names = vec![c.name()?];
        while c.eat(".") {
            if names.len() > limits.max_embed_depth {
                return Err(c.error(format!(
                    "embed path deeper than {} levels",
                    limits.max_embed_depth
                )));
            }
            names.push(c.name()?);
        }
        let json_path = parse_json_path(&mut c)?;
        if !c.at_end() {
            return Err(c.unexpected("'.', '->' or '->>'"));
        }
        let name = names.pop().unwrap_or_default();
        Ok((names, Field { name, json_path }))
    })();
    parsed.map_err(|syntax| {
        QueryParamError {
            kind: ParamKind::Filter,
            param: snippet(key),
            value: snippet(value),
            part: Part::Name,
            column: Some(syntax.column(key)),
            reason: syntax.reason,
        }
        .into()
    })
}

/// `a,b,"c d"`: the names of `columns=` and `on_conflict=`.
fn parse_name_list(c: &mut Cursor) -> Result<Vec<String>, Syntax> {
    let mut names = Vec::new();
    loop {
        c.skip_ws();
        if names.len() == c.limits.max_list_len {
            return Err(c.error(format!("more than {} names", c.limits.max_list_len)));
        }
        names.push(c.name()?);
        c.skip_ws();
        if !c.eat(",") {
            return Ok(names);
        }
    }
}

/// Refuses parameters that mean nothing for the request's method.
fn check_method(request: &ApiRequest, root_range_given: bool) -> Result<(), RestError> {
    let refuse = |param: &str, reason: &str| {
        Err(RestError::from(QueryParamError::value(
            ParamKind::NotAllowed,
            param,
            "",
            reason,
        )))
    };
    let action = request.action;
    if request.columns.is_some()
        && !matches!(
            action,
            Action::Insert | Action::Update | Action::Call(CallMethod::Post)
        )
    {
        return refuse("columns", "columns is only valid with POST and PATCH");
    }
    if request.on_conflict.is_some() && action != Action::Insert {
        return refuse(
            "on_conflict",
            "on_conflict is only valid with POST on a table",
        );
    }
    let root = &request.query;
    match action {
        Action::Insert if root_range_given => refuse(
            "limit",
            "limit and offset are not valid with POST on a table",
        ),
        Action::Update | Action::Delete if root_range_given && root.order.is_empty() => {
            Err(RestError::LimitWithoutOrder)
        }
        Action::Upsert => check_put(request, root_range_given),
        _ => Ok(()),
    }
}

/// PUT names one row by primary key: only `eq` filters on plain root columns, no range.
fn check_put(request: &ApiRequest, root_range_given: bool) -> Result<(), RestError> {
    if root_range_given {
        return Err(RestError::PutLimit);
    }
    let root = &request.query;
    for condition in &root.filters {
        let plain_eq = matches!(
            condition,
            Condition::Filter(Filter {
                field,
                negated: false,
                operation: Operation::Compare {
                    operator: Operator::Eq,
                    quantifier: None,
                    ..
                },
            }) if field.json_path.is_empty()
        );
        if !plain_eq {
            return Err(RestError::InvalidPut {
                reason: "PUT takes only col=eq.value filters on primary-key columns".to_owned(),
            });
        }
    }
    let keyed = matches!(&request.target, Target::Table { key: Some(_), .. });
    if root.filters.is_empty() && !keyed {
        return Err(RestError::InvalidPut {
            reason: "PUT needs the primary key as col=eq.value filters".to_owned(),
        });
    }
    Ok(())
}
