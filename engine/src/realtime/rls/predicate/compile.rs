//! Typing a parsed policy against its table: [`compile`].

use super::*;
use crate::realtime::rls::parser::Expr;
use crate::realtime::rls::value::{self, CmpKind, Datum, SqlType};

/// Compiles a parsed policy expression; parts outside the subset become
/// [`Predicate::Opaque`].
pub fn compile(expr: &Expr, env: &CompileEnv) -> Predicate {
    match expr {
        Expr::Bool(b) => Predicate::Const(Some(*b)),
        Expr::Null => Predicate::Const(None),
        Expr::Opaque(reason) => Predicate::Opaque(reason.clone()),
        Expr::Not(inner) => Predicate::Not(Box::new(compile(inner, env))),
        Expr::And(items) => Predicate::And(items.iter().map(|e| compile(e, env)).collect()),
        Expr::Or(items) => Predicate::Or(items.iter().map(|e| compile(e, env)).collect()),
        Expr::Binary { op, left, right } if CmpOp::parse(op).is_some() => {
            compile_comparison(op, left, right, env).unwrap_or_else(Predicate::Opaque)
        }
        Expr::Quantified {
            op,
            all,
            left,
            right,
        } => compile_quantified(op, *all, left, right, env).unwrap_or_else(Predicate::Opaque),
        Expr::Distinct {
            left,
            right,
            negated,
        } => (|| {
            let (kind, left, right) = comparable("=", left, right, env)?;
            Ok(Predicate::Distinct {
                kind,
                left,
                right,
                negated: *negated,
            })
        })()
        .unwrap_or_else(Predicate::Opaque),
        Expr::IsNull { expr, negated } => match operand(expr, env) {
            Ok(typed) => Predicate::IsNull {
                operand: typed.operand,
                negated: *negated,
            },
            Err(reason) => Predicate::Opaque(reason),
        },
        Expr::IsBool {
            expr,
            value,
            negated,
        } => Predicate::IsBool {
            inner: Box::new(compile(expr, env)),
            value: *value,
            negated: *negated,
        },
        other => match operand(other, env) {
            Ok(typed) if typed.ty == SqlType::Bool => Predicate::Value(typed.operand),
            Ok(typed) => {
                Predicate::Opaque(format!("non-boolean expression of type {:?}", typed.ty))
            }
            Err(reason) => Predicate::Opaque(reason),
        },
    }
}

fn compile_comparison(
    op: &str,
    left: &Expr,
    right: &Expr,
    env: &CompileEnv,
) -> Result<Predicate, String> {
    let (kind, left, right) = comparable(op, left, right, env)?;
    let op = CmpOp::parse(op).ok_or_else(|| format!("operator {op}"))?;
    Ok(Predicate::Compare {
        op,
        kind,
        left,
        right,
    })
}

/// Types both sides and picks how to compare them, refusing text ordering under a
/// collation that does not order bytewise.
fn comparable(
    op: &str,
    left: &Expr,
    right: &Expr,
    env: &CompileEnv,
) -> Result<(CmpKind, Operand, Operand), String> {
    let left = operand(left, env)?;
    let right = operand(right, env)?;
    let kind = comparison_kind(op, &left, &right, env)?;
    Ok((kind, left.operand, right.operand))
}

fn comparison_kind(
    op: &str,
    left: &Typed,
    right: &Typed,
    env: &CompileEnv,
) -> Result<CmpKind, String> {
    let kind = CmpKind::for_types(&left.ty, &right.ty)
        .ok_or_else(|| format!("comparison of {:?} with {:?}", left.ty, right.ty))?;
    if kind == CmpKind::Text {
        let collation = left
            .collation
            .or(right.collation)
            .unwrap_or(env.default_collation);
        if !collation.deterministic {
            return Err("text comparison under a nondeterministic collation".into());
        }
        let ordering = CmpOp::parse(op).is_some_and(CmpOp::is_ordering);
        if ordering && !collation.bytewise_order {
            return Err("text ordering under a collation other than C".into());
        }
    }
    Ok(kind)
}

fn compile_quantified(
    op: &str,
    all: bool,
    left: &Expr,
    right: &Expr,
    env: &CompileEnv,
) -> Result<Predicate, String> {
    let cmp = CmpOp::parse(op).ok_or_else(|| format!("operator {op} ANY/ALL"))?;
    let left = operand(left, env)?;
    // `(ARRAY[…])::text[]` casts every element.
    let (elements, element_cast) = match right {
        Expr::Array(items) => (items, None),
        Expr::Cast { expr, ty } if ty.array_dims == 1 && !ty.has_modifier => match &**expr {
            Expr::Array(items) => (items, Some(SqlType::from_cast_name(&ty.name, false, 0))),
            _ => return Err("ANY/ALL over a non-literal array".into()),
        },
        _ => return Err("ANY/ALL over a non-literal array".into()),
    };
    let mut kind = None;
    let mut items = Vec::with_capacity(elements.len());
    for element in elements {
        let mut typed = operand(element, env)?;
        if let Some(to) = &element_cast {
            typed = cast_operand(typed, to)?;
        }
        let k = comparison_kind(op, &left, &typed, env)?;
        if kind.is_some_and(|known| known != k) {
            return Err("array elements of mixed types".into());
        }
        kind = Some(k);
        items.push(typed.operand);
    }
    Ok(Predicate::Quantified {
        op: cmp,
        // An empty array has no element type to compare with: nothing to compare.
        kind: kind.unwrap_or(CmpKind::Exact),
        all,
        left: left.operand,
        items,
    })
}

fn operand(expr: &Expr, env: &CompileEnv) -> Result<Typed, String> {
    match expr {
        Expr::Column(parts) => {
            let [name] = parts.as_slice() else {
                return Err(format!("qualified column {}", parts.join(".")));
            };
            let column = env
                .columns
                .iter()
                .find(|c| &c.name == name)
                .ok_or_else(|| format!("unknown column {name}"))?;
            Ok(Typed {
                operand: Operand::Column {
                    name: column.name.clone(),
                    ty: column.ty.clone(),
                },
                ty: column.ty.clone(),
                collation: Some(column.collation),
            })
        }
        Expr::Num(text) => {
            let (datum, ty) = if text.contains(['.', 'e', 'E']) {
                let d = value::Decimal::parse(text).map_err(|_| format!("number {text}"))?;
                (Datum::Numeric(d.into_owned()), SqlType::Numeric)
            } else {
                // pg_get_expr prints integers outside int4 as quoted, cast constants.
                let i: i32 = text.parse().map_err(|_| format!("number {text}"))?;
                (Datum::Int(i64::from(i)), SqlType::Int4)
            };
            Ok(constant(datum, ty))
        }
        Expr::Bool(b) => Ok(constant(Datum::Bool(*b), SqlType::Bool)),
        Expr::Cast { expr, ty } => {
            let to = SqlType::from_cast_name(&ty.name, ty.has_modifier, ty.array_dims);
            if let SqlType::Other(_) = to {
                return Err(format!("cast to {ty}"));
            }
            match &**expr {
                // A quoted literal takes the type's input function; for the subset's
                // types that is the text → type cast.
                Expr::Str(s) => {
                    let datum = value::cast(Datum::Text(s.clone().into()), &to)
                        .map_err(|_| format!("constant '{s}'::{ty}"))?;
                    Ok(constant(datum, to))
                }
                Expr::Null => Ok(constant(Datum::Null, to)),
                inner => cast_operand(operand(inner, env)?, &to),
            }
        }
        Expr::Call { name, args } => {
            let qualified: Vec<&str> = name.iter().map(String::as_str).collect();
            match (qualified.as_slice(), args.is_empty()) {
                (["auth", "uid"], true) => Ok(function(Operand::Uid, SqlType::Uuid)),
                (["auth", "role"], true) => Ok(function(Operand::Role, SqlType::Text)),
                (["auth", "jwt"], true) => Ok(function(
                    Operand::Claim {
                        path: Vec::new(),
                        text: false,
                    },
                    SqlType::Jsonb,
                )),
                _ => Err(format!("function {}()", name.join("."))),
            }
        }
        Expr::Binary { op, left, right } if op == "->" || op == "->>" => {
            let base = operand(left, env)?;
            let Operand::Claim {
                mut path,
                text: false,
            } = base.operand
            else {
                return Err(format!("{op} on something other than auth.jwt()"));
            };
            path.push(json_key(right)?);
            let text = op == "->>";
            Ok(function(
                Operand::Claim { path, text },
                if text { SqlType::Text } else { SqlType::Jsonb },
            ))
        }
        Expr::Opaque(reason) => Err(reason.clone()),
        Expr::Str(s) => Err(format!("untyped literal '{s}'")),
        other => Err(format!("expression {other:?}")),
    }
}

fn constant(datum: Datum<'static>, ty: SqlType) -> Typed {
    Typed {
        operand: Operand::Const(datum),
        ty,
        collation: None,
    }
}

fn function(operand: Operand, ty: SqlType) -> Typed {
    Typed {
        operand,
        ty,
        collation: None,
    }
}

fn json_key(expr: &Expr) -> Result<JsonKey, String> {
    match expr {
        Expr::Cast { expr, ty } if ty.name == "text" => match &**expr {
            Expr::Str(s) => Ok(JsonKey::Field(s.clone())),
            _ => Err("non-constant jsonb key".into()),
        },
        Expr::Num(n) => n
            .parse()
            .map(JsonKey::Index)
            .map_err(|_| format!("jsonb index {n}")),
        _ => Err("non-constant jsonb key".into()),
    }
}

fn cast_operand(typed: Typed, to: &SqlType) -> Result<Typed, String> {
    if !value::cast_supported(&typed.ty, to) {
        return Err(format!("cast from {:?} to {:?}", typed.ty, to));
    }
    let operand = match typed.operand {
        // Fold constant casts now, as PostgreSQL's planner would.
        Operand::Const(datum) => {
            Operand::Const(value::cast(datum, to).map_err(|_| format!("constant cast to {to:?}"))?)
        }
        other => Operand::Cast {
            inner: Box::new(other),
            to: to.clone(),
        },
    };
    Ok(Typed {
        operand,
        ty: to.clone(),
        collation: typed.collation,
    })
}
