//! Arguments of a function called with GET or HEAD (PostgREST's "Functions as RPC"):
//!
//! ```text
//! argument = name "=" value      -- a key without "." whose value is not a filter
//! ```
//!
//! `/rpc/f?a=1&b=x` calls `f(a => '1', b => 'x')`; a repeated key (`?v=1&v=2`) collects
//! its values in order, for a `VARIADIC` parameter (the builder refuses repeats for other
//! parameters). Values stay text; the builder binds each with the parameter's type.
//! A key that parses as a filter (`id=eq.1`) filters a set-returning function's rows.

use super::cursor::Cursor;
use super::error::{ParamKind, Part, QueryParamError, RestError, snippet};
use super::limits::Limits;

/// One named argument from the query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcArg {
    /// The parameter's name (an identifier for the schema cache).
    pub name: String,
    /// Its values in query-string order: one, or several for a `VARIADIC` parameter.
    pub values: Vec<String>,
}

/// Adds `key=value` to `args`, merging a repeated key.
pub(crate) fn push_arg(
    args: &mut Vec<RpcArg>,
    key: &str,
    value: String,
    limits: &Limits,
) -> Result<(), RestError> {
    let mut c = Cursor::new(key, limits);
    let name = c.name().and_then(|name| {
        if c.at_end() {
            Ok(name)
        } else {
            Err(c.unexpected("the end of the argument name"))
        }
    });
    let name = name.map_err(|syntax| QueryParamError {
        kind: ParamKind::RpcArgument,
        param: snippet(key),
        value: snippet(&value),
        part: Part::Name,
        column: Some(syntax.column(key)),
        reason: syntax.reason,
    })?;
    match args.iter_mut().find(|arg| arg.name == name) {
        Some(arg) if arg.values.len() == limits.max_list_len => Err(QueryParamError::value(
            ParamKind::RpcArgument,
            key,
            &value,
            format!("more than {} values for one argument", limits.max_list_len),
        )
        .into()),
        Some(arg) => {
            arg.values.push(value);
            Ok(())
        }
        None => {
            args.push(RpcArg {
                name,
                values: vec![value],
            });
            Ok(())
        }
    }
}
