//! Compiled predicates: a policy's syntax tree typed against its table's columns, and their
//! evaluation on a decoded row with SQL three-valued logic.
//!
//! Evaluation has a fourth outcome besides true, false and null: [`Truth::Unknown`], "we
//! cannot tell in-process" — an opaque construct (subquery…), a column absent from the
//! decoded row (unchanged TOAST), or a value PostgreSQL would raise an error on. Unknown is
//! combined so that a definite answer is only given when PostgreSQL could not answer
//! otherwise: `false AND unknown` is false (PostgreSQL returns false or raises, and the row
//! is invisible either way), but `true OR unknown` stays unknown (the unknown part might
//! raise an error — e.g. `auth.uid()` on a non-uuid `sub` — when PostgreSQL evaluates it,
//! on this row or another one it scans).

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::value::{self, CmpKind, Datum, SqlType, Undecided};

/// How a collation compares text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collation {
    /// `C`/`POSIX`: ordering is bytewise, so `<`/`>` can be evaluated in-process.
    pub bytewise_order: bool,
    /// Deterministic collations make equality bytewise (nondeterministic ICU ones do not).
    pub deterministic: bool,
}

impl Collation {
    /// The `C` collation.
    pub const C: Collation = Collation {
        bytewise_order: true,
        deterministic: true,
    };
}

/// A column as the compiler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// Its type (domains and unknown types are `Other`).
    pub ty: SqlType,
    /// Its collation, resolved (the database default when the column has none of its own).
    pub collation: Collation,
}

/// What compiling needs: the table's columns and the database's default collation.
#[derive(Debug, Clone, PartialEq)]
pub struct CompileEnv {
    /// The table's live columns.
    pub columns: Vec<ColumnInfo>,
    /// The database default collation (used for claims and constants).
    pub default_collation: Collation,
}

/// A key step in a jsonb path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonKey {
    /// `-> 'name'`
    Field(String),
    /// `-> 3`
    Index(usize),
}

/// A scalar operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A column of the row.
    Column { name: String, ty: SqlType },
    /// A constant.
    Const(Datum<'static>),
    /// `auth.uid()`: the `sub` claim as uuid.
    Uid,
    /// `auth.role()`: the `role` claim.
    Role,
    /// `auth.jwt()` followed by `->` steps, the last one `->>` when `text`.
    Claim { path: Vec<JsonKey>, text: bool },
    /// A cast.
    Cast { inner: Box<Operand>, to: SqlType },
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    fn parse(op: &str) -> Option<CmpOp> {
        Some(match op {
            "=" => CmpOp::Eq,
            "<>" => CmpOp::Ne,
            "<" => CmpOp::Lt,
            "<=" => CmpOp::Le,
            ">" => CmpOp::Gt,
            ">=" => CmpOp::Ge,
            _ => return None,
        })
    }

    fn holds(self, ordering: Ordering) -> bool {
        match self {
            CmpOp::Eq => ordering == Ordering::Equal,
            CmpOp::Ne => ordering != Ordering::Equal,
            CmpOp::Lt => ordering == Ordering::Less,
            CmpOp::Le => ordering != Ordering::Greater,
            CmpOp::Gt => ordering == Ordering::Greater,
            CmpOp::Ge => ordering != Ordering::Less,
        }
    }

    fn is_ordering(self) -> bool {
        !matches!(self, CmpOp::Eq | CmpOp::Ne)
    }
}

/// A compiled boolean expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// `true`, `false` or a null constant.
    Const(Option<bool>),
    /// A boolean-typed operand (`is_public`, `(auth.jwt() -> 'admin')::boolean`).
    Value(Operand),
    /// `left op right`.
    Compare {
        op: CmpOp,
        kind: CmpKind,
        left: Operand,
        right: Operand,
    },
    /// `left op ANY (items)` (`IN`) or `left op ALL (items)` (`NOT IN`).
    Quantified {
        op: CmpOp,
        kind: CmpKind,
        all: bool,
        left: Operand,
        items: Vec<Operand>,
    },
    /// `left IS [NOT] DISTINCT FROM right`.
    Distinct {
        kind: CmpKind,
        left: Operand,
        right: Operand,
        negated: bool,
    },
    /// `operand IS [NOT] NULL`.
    IsNull { operand: Operand, negated: bool },
    /// `inner IS [NOT] TRUE|FALSE`.
    IsBool {
        inner: Box<Predicate>,
        value: bool,
        negated: bool,
    },
    /// `NOT inner`.
    Not(Box<Predicate>),
    /// Conjunction.
    And(Vec<Predicate>),
    /// Disjunction.
    Or(Vec<Predicate>),
    /// Outside the subset: always [`Truth::Unknown`]. The reason is kept for logs.
    Opaque(String),
}

/// The result of evaluating a predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    /// True.
    True,
    /// False.
    False,
    /// SQL NULL (a row is visible only when its policy is true, so this hides it).
    Null,
    /// Cannot be decided in-process.
    Unknown,
}

impl Truth {
    fn from_bool(b: bool) -> Truth {
        if b { Truth::True } else { Truth::False }
    }

    fn not(self) -> Truth {
        match self {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            other => other,
        }
    }

    /// SQL AND, with `false` winning over `unknown` (see the module docs).
    pub fn all(items: impl IntoIterator<Item = Truth>) -> Truth {
        let (mut unknown, mut null) = (false, false);
        for t in items {
            match t {
                Truth::False => return Truth::False,
                Truth::Unknown => unknown = true,
                Truth::Null => null = true,
                Truth::True => {}
            }
        }
        if unknown {
            Truth::Unknown
        } else if null {
            Truth::Null
        } else {
            Truth::True
        }
    }

    /// SQL OR, with `unknown` winning over `true` (see the module docs).
    pub fn any(items: impl IntoIterator<Item = Truth>) -> Truth {
        let (mut truth, mut null) = (false, false);
        for t in items {
            match t {
                Truth::Unknown => return Truth::Unknown,
                Truth::True => truth = true,
                Truth::Null => null = true,
                Truth::False => {}
            }
        }
        if truth {
            Truth::True
        } else if null {
            Truth::Null
        } else {
            Truth::False
        }
    }
}

/// A typed operand during compilation.
struct Typed {
    operand: Operand,
    ty: SqlType,
    /// The column's collation when the operand derives from a column.
    collation: Option<Collation>,
}

/// The `auth.*` functions an expression calls, or that a role may call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthUse {
    /// `auth.uid()`
    pub uid: bool,
    /// `auth.role()`
    pub role: bool,
    /// `auth.jwt()`
    pub jwt: bool,
}

impl AuthUse {
    /// Whether every function `needed` uses is in `self` (read as "callable").
    pub fn covers(self, needed: AuthUse) -> bool {
        (!needed.uid || self.uid) && (!needed.role || self.role) && (!needed.jwt || self.jwt)
    }
}

impl Operand {
    fn collect_columns<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Operand::Column { name, .. } => out.push(name),
            Operand::Cast { inner, .. } => inner.collect_columns(out),
            _ => {}
        }
    }

    fn collect_auth(&self, used: &mut AuthUse) {
        match self {
            Operand::Column { .. } | Operand::Const(_) => {}
            Operand::Uid => used.uid = true,
            Operand::Role => used.role = true,
            Operand::Claim { .. } => used.jwt = true,
            Operand::Cast { inner, .. } => inner.collect_auth(used),
        }
    }

    /// Evaluates to a datum, `Undecided` when not computable exactly.
    pub fn eval<'a>(&'a self, input: EvalInput<'a>) -> Result<Datum<'a>, Undecided> {
        match self {
            Operand::Column { name, ty } => {
                let raw = input.row.values.get(name).ok_or(Undecided)?;
                if raw.is_null() && input.row.is_json_null(name) {
                    // The JSON `null` literal: a jsonb value, not SQL NULL.
                    return match ty {
                        SqlType::Jsonb => Ok(Datum::Json(std::borrow::Cow::Borrowed(raw))),
                        _ => Err(Undecided),
                    };
                }
                value::datum_from_json(raw, ty)
            }
            Operand::Const(datum) => Ok(datum.clone()),
            Operand::Uid if !input.auth_callable.uid => Err(Undecided),
            Operand::Role if !input.auth_callable.role => Err(Undecided),
            Operand::Claim { .. } if !input.auth_callable.jwt => Err(Undecided),
            // auth.uid(): nullif(jwt ->> 'sub', '')::uuid; a non-uuid sub raises an error.
            Operand::Uid => match claim_text(input.claims, "sub")? {
                None => Ok(Datum::Null),
                Some(s) if s.is_empty() => Ok(Datum::Null),
                Some(s) => value::parse_uuid(&s).map(Datum::Uuid).ok_or(Undecided),
            },
            // auth.role(): nullif(jwt ->> 'role', '').
            Operand::Role => match claim_text(input.claims, "role")? {
                Some(s) if !s.is_empty() => Ok(Datum::Text(s)),
                _ => Ok(Datum::Null),
            },
            Operand::Claim { path, text } => {
                let Some((first, rest)) = path.split_first() else {
                    return Ok(Datum::Json(std::borrow::Cow::Owned(Value::Object(
                        input.claims.clone(),
                    ))));
                };
                let JsonKey::Field(first) = first else {
                    return Ok(Datum::Null);
                };
                let mut current = match input.claims.get(first) {
                    Some(v) => v,
                    None => return Ok(Datum::Null),
                };
                for key in rest {
                    let next = match (key, current) {
                        (JsonKey::Field(f), Value::Object(map)) => map.get(f),
                        (JsonKey::Index(i), Value::Array(items)) => items.get(*i),
                        _ => None,
                    };
                    match next {
                        Some(v) => current = v,
                        None => return Ok(Datum::Null),
                    }
                }
                if *text {
                    Ok(value::json_as_text(current)?.map_or(Datum::Null, Datum::Text))
                } else {
                    Ok(Datum::Json(std::borrow::Cow::Borrowed(current)))
                }
            }
            Operand::Cast { inner, to } => value::cast(inner.eval(input)?, to),
        }
    }
}

fn claim_text<'a>(
    claims: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<std::borrow::Cow<'a, str>>, Undecided> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => value::json_as_text(v),
    }
}

mod compile;
mod eval;

pub use compile::compile;
pub use eval::EvalInput;

#[cfg(test)]
mod tests;
