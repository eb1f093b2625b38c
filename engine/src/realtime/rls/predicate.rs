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

use super::image::RowRef;
use super::parser::Expr;
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

#[cfg(test)]
#[path = "predicate_tests.rs"]
mod tests;
