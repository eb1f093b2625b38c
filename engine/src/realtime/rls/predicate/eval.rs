//! Evaluating a compiled predicate on a decoded row and claims.

use super::*;
use crate::realtime::rls::image::RowRef;
use crate::realtime::rls::value::{CmpKind, Datum, Undecided};
use serde_json::{Map, Value};
use std::cmp::Ordering;

/// The row and claims a predicate is evaluated on.
#[derive(Debug, Clone, Copy)]
pub struct EvalInput<'a> {
    /// The decoded row; an absent column is unknown (unchanged TOAST), not NULL.
    pub row: RowRef<'a>,
    /// The context's JWT claims.
    pub claims: &'a Map<String, Value>,
    /// The `auth.*` functions the role may call; a call to another one is unknown (it
    /// raises a permission error when PostgreSQL plans it).
    pub auth_callable: AuthUse,
}

impl Predicate {
    /// Evaluates with three-valued logic plus [`Truth::Unknown`].
    pub fn eval(&self, input: EvalInput<'_>) -> Truth {
        match self {
            Predicate::Const(Some(b)) => Truth::from_bool(*b),
            Predicate::Const(None) => Truth::Null,
            Predicate::Opaque(_) => Truth::Unknown,
            Predicate::Value(operand) => match operand.eval(input) {
                Ok(Datum::Bool(b)) => Truth::from_bool(b),
                Ok(Datum::Null) => Truth::Null,
                _ => Truth::Unknown,
            },
            Predicate::Compare {
                op,
                kind,
                left,
                right,
            } => compare(*op, *kind, left, right, input),
            Predicate::Quantified {
                op,
                kind,
                all,
                left,
                items,
            } => {
                let results = items
                    .iter()
                    .map(|item| compare(*op, *kind, left, item, input));
                if *all {
                    Truth::all(results)
                } else {
                    Truth::any(results)
                }
            }
            Predicate::Distinct {
                kind,
                left,
                right,
                negated,
            } => {
                let (Ok(l), Ok(r)) = (left.eval(input), right.eval(input)) else {
                    return Truth::Unknown;
                };
                let distinct = match (&l, &r) {
                    (Datum::Null, Datum::Null) => false,
                    (Datum::Null, _) | (_, Datum::Null) => true,
                    _ => match kind.compare(&l, &r) {
                        Ok(ordering) => ordering != Ordering::Equal,
                        Err(Undecided) => return Truth::Unknown,
                    },
                };
                Truth::from_bool(distinct != *negated)
            }
            Predicate::IsNull { operand, negated } => {
                let is_null = match operand {
                    // Any column type, without decoding it.
                    Operand::Column { name, .. } => match input.row.is_sql_null(name) {
                        None => return Truth::Unknown,
                        Some(is_null) => is_null,
                    },
                    other => match other.eval(input) {
                        Ok(d) => matches!(d, Datum::Null),
                        Err(Undecided) => return Truth::Unknown,
                    },
                };
                Truth::from_bool(is_null != *negated)
            }
            Predicate::IsBool {
                inner,
                value,
                negated,
            } => match inner.eval(input) {
                Truth::Unknown => Truth::Unknown,
                t => Truth::from_bool((t == Truth::from_bool(*value)) != *negated),
            },
            Predicate::Not(inner) => inner.eval(input).not(),
            Predicate::And(items) => Truth::all(items.iter().map(|p| p.eval(input))),
            Predicate::Or(items) => Truth::any(items.iter().map(|p| p.eval(input))),
        }
    }

    /// Which `auth.*` functions the compiled parts call.
    pub fn auth_use(&self) -> AuthUse {
        let mut used = AuthUse::default();
        self.collect_auth(&mut used);
        used
    }

    fn collect_auth(&self, used: &mut AuthUse) {
        match self {
            Predicate::Const(_) | Predicate::Opaque(_) => {}
            Predicate::Value(operand) | Predicate::IsNull { operand, .. } => {
                operand.collect_auth(used)
            }
            Predicate::Compare { left, right, .. } | Predicate::Distinct { left, right, .. } => {
                left.collect_auth(used);
                right.collect_auth(used);
            }
            Predicate::Quantified { left, items, .. } => {
                left.collect_auth(used);
                items.iter().for_each(|i| i.collect_auth(used));
            }
            Predicate::Not(inner) | Predicate::IsBool { inner, .. } => inner.collect_auth(used),
            Predicate::And(items) | Predicate::Or(items) => {
                items.iter().for_each(|p| p.collect_auth(used))
            }
        }
    }

    /// The columns the expression reads; `None` when it has opaque parts (which may read
    /// any column).
    pub fn columns(&self) -> Option<Vec<&str>> {
        let mut out = Vec::new();
        self.collect_columns(&mut out).then_some(out)
    }

    fn collect_columns<'a>(&'a self, out: &mut Vec<&'a str>) -> bool {
        match self {
            Predicate::Const(_) => true,
            Predicate::Opaque(_) => false,
            Predicate::Value(operand) | Predicate::IsNull { operand, .. } => {
                operand.collect_columns(out);
                true
            }
            Predicate::Compare { left, right, .. } | Predicate::Distinct { left, right, .. } => {
                left.collect_columns(out);
                right.collect_columns(out);
                true
            }
            Predicate::Quantified { left, items, .. } => {
                left.collect_columns(out);
                items.iter().for_each(|i| i.collect_columns(out));
                true
            }
            Predicate::Not(inner) | Predicate::IsBool { inner, .. } => inner.collect_columns(out),
            Predicate::And(items) | Predicate::Or(items) => {
                items.iter().all(|p| p.collect_columns(out))
            }
        }
    }

    /// Reasons of the opaque parts, empty when fully compiled.
    pub fn opaque_reasons(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_opaque(&mut out);
        out
    }

    fn collect_opaque<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Predicate::Opaque(reason) => out.push(reason),
            Predicate::Not(inner) | Predicate::IsBool { inner, .. } => inner.collect_opaque(out),
            Predicate::And(items) | Predicate::Or(items) => {
                items.iter().for_each(|p| p.collect_opaque(out))
            }
            _ => {}
        }
    }
}

fn compare(
    op: CmpOp,
    kind: CmpKind,
    left: &Operand,
    right: &Operand,
    input: EvalInput<'_>,
) -> Truth {
    let (Ok(l), Ok(r)) = (left.eval(input), right.eval(input)) else {
        return Truth::Unknown;
    };
    if matches!(l, Datum::Null) || matches!(r, Datum::Null) {
        return Truth::Null;
    }
    match kind.compare(&l, &r) {
        Ok(ordering) => Truth::from_bool(op.holds(ordering)),
        Err(Undecided) => Truth::Unknown,
    }
}
