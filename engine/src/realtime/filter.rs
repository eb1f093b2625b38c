//! Subscription filters: `col=op.value`, op ∈ eq neq gt gte lt lte like ilike is in.

use std::cmp::Ordering;

use serde_json::Value;

use super::rls::RowRef;
use super::rls::predicate::ColumnInfo;
use super::rls::value::{self, CmpKind, Datum, SqlType, Undecided};

/// A filter operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    /// `=`
    Eq,
    /// `<>`
    Neq,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `LIKE` with `%` and `_`
    Like,
    /// `ILIKE`
    Ilike,
    /// `IS NULL`, `IS TRUE`, `IS FALSE`
    Is,
    /// `IN (…)`
    In,
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// Column name (checked against the table's columns at subscribe time).
    pub column: String,
    /// Operator.
    pub op: FilterOp,
    /// Operand(s) as text; several for `in`.
    pub values: Vec<String>,
    /// The operands read as the column's type, once bound to it (see [`Filter::bind`]).
    bound: Option<Bound>,
}

/// A filter bound to its column's type: PostgREST compares `col op 'value'`, the value
/// taking the column's type, so the operands are read with that type's input rules and
/// compared with the same comparison compiled policies use ([`CmpKind`]).
#[derive(Debug, Clone, PartialEq)]
struct Bound {
    /// The column's type.
    ty: SqlType,
    /// How values of that type compare; `None` when the subset cannot compare them.
    kind: Option<CmpKind>,
    /// Operands of the type (empty for `like`, `ilike`, `is`).
    operands: Vec<Datum<'static>>,
    /// The comparison cannot be made exactly in-process (a type outside the subset, an
    /// operand spelled in a way only PostgreSQL reads, text ordered by a collation other
    /// than C, ILIKE outside C): PostgreSQL decides, per change.
    defer: bool,
}

/// A filter's answer for one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterVerdict {
    /// The row passes.
    Match,
    /// It does not.
    NoMatch,
    /// Only PostgreSQL can tell (the dispatcher asks it).
    Defer,
}

/// Why a filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Not `col=op.value`.
    #[error("filter must look like column=op.value (e.g. user_id=eq.42), got {0:?}")]
    Syntax(String),
    /// Unknown operator.
    #[error("unknown filter operator {0:?}: use eq, neq, gt, gte, lt, lte, like, ilike, is or in")]
    Operator(String),
    /// Bad `in` list or `is` operand.
    #[error("{0}")]
    Operand(String),
}

impl FilterOp {
    /// The operator's name in the filter syntax.
    pub fn as_str(self) -> &'static str {
        match self {
            FilterOp::Eq => "eq",
            FilterOp::Neq => "neq",
            FilterOp::Gt => "gt",
            FilterOp::Gte => "gte",
            FilterOp::Lt => "lt",
            FilterOp::Lte => "lte",
            FilterOp::Like => "like",
            FilterOp::Ilike => "ilike",
            FilterOp::Is => "is",
            FilterOp::In => "in",
        }
    }

    fn holds(self, ordering: Ordering) -> bool {
        match self {
            FilterOp::Eq | FilterOp::In => ordering == Ordering::Equal,
            FilterOp::Neq => ordering != Ordering::Equal,
            FilterOp::Gt => ordering == Ordering::Greater,
            FilterOp::Gte => ordering != Ordering::Less,
            FilterOp::Lt => ordering == Ordering::Less,
            FilterOp::Lte => ordering != Ordering::Greater,
            FilterOp::Like | FilterOp::Ilike | FilterOp::Is => false,
        }
    }
}

impl Filter {
    /// Parses `user_id=eq.42`, `status=in.(a,b)`, `deleted_at=is.null`.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let (column, rest) = text
            .split_once('=')
            .ok_or_else(|| FilterError::Syntax(text.to_string()))?;
        let (op, value) = rest
            .split_once('.')
            .ok_or_else(|| FilterError::Syntax(text.to_string()))?;
        let column = column.trim();
        if column.is_empty() {
            return Err(FilterError::Syntax(text.to_string()));
        }
        let op = match op {
            "eq" => FilterOp::Eq,
            "neq" => FilterOp::Neq,
            "gt" => FilterOp::Gt,
            "gte" => FilterOp::Gte,
            "lt" => FilterOp::Lt,
            "lte" => FilterOp::Lte,
            "like" => FilterOp::Like,
            "ilike" => FilterOp::Ilike,
            "is" => FilterOp::Is,
            "in" => FilterOp::In,
            other => return Err(FilterError::Operator(other.to_string())),
        };
        let values = match op {
            FilterOp::In => {
                let inner = value
                    .strip_prefix('(')
                    .and_then(|v| v.strip_suffix(')'))
                    .ok_or_else(|| {
                        FilterError::Operand(format!(
                            "in needs a list like in.(1,2), got {value:?}"
                        ))
                    })?;
                let items: Vec<String> = inner
                    .split(',')
                    .map(|s| s.trim().trim_matches('"').to_string())
                    .collect();
                if items.iter().any(String::is_empty) || items.len() > 100 {
                    return Err(FilterError::Operand(
                        "in needs 1 to 100 non-empty values".into(),
                    ));
                }
                items
            }
            FilterOp::Is => {
                let v = value.to_ascii_lowercase();
                if !matches!(v.as_str(), "null" | "true" | "false") {
                    return Err(FilterError::Operand(format!(
                        "is takes null, true or false, got {value:?}"
                    )));
                }
                vec![v]
            }
            _ => vec![value.to_string()],
        };
        Ok(Filter {
            column: column.to_string(),
            op,
            values,
            bound: None,
        })
    }

    /// Binds the filter to its column's type and collation (at subscribe time): operands
    /// are read as that type, and whatever cannot be compared exactly in-process is
    /// marked for PostgreSQL to decide.
    pub fn bind(mut self, column: &ColumnInfo) -> Filter {
        let ty = column.ty.clone();
        let kind = CmpKind::for_types(&ty, &ty);
        let collation = column.collation;
        let mut defer = false;
        let mut operands = Vec::new();
        match self.op {
            FilterOp::Is => {}
            FilterOp::Like => defer = ty != SqlType::Text || !collation.deterministic,
            // Case folding follows the collation; under C only ASCII letters fold.
            FilterOp::Ilike => defer = ty != SqlType::Text || !collation.bytewise_order,
            op => {
                let ordering = !matches!(op, FilterOp::Eq | FilterOp::Neq | FilterOp::In);
                defer = match kind {
                    None => true,
                    Some(CmpKind::Text) => {
                        !collation.deterministic || (ordering && !collation.bytewise_order)
                    }
                    Some(_) => false,
                };
                if !defer {
                    for text in &self.values {
                        match value::cast(Datum::Text(text.clone().into()), &ty) {
                            Ok(datum) => operands.push(owned(datum)),
                            Err(Undecided) => {
                                defer = true;
                                operands.clear();
                                break;
                            }
                        }
                    }
                }
            }
        }
        self.bound = Some(Bound {
            ty,
            kind,
            operands,
            defer,
        });
        self
    }

    /// Whether some rows may need PostgreSQL to decide ([`FilterVerdict::Defer`]).
    pub fn may_defer(&self) -> bool {
        self.bound.as_ref().is_some_and(|b| b.defer)
    }

    /// Whether `row` passes. A missing column (an unchanged TOAST value not recovered) or
    /// NULL does not pass, except `is.null`.
    pub fn matches(&self, row: RowRef<'_>) -> bool {
        self.verdict(row) == FilterVerdict::Match
    }

    /// Whether `row` passes, or that only PostgreSQL can tell.
    pub fn verdict(&self, row: RowRef<'_>) -> FilterVerdict {
        let verdict = |b: bool| {
            if b {
                FilterVerdict::Match
            } else {
                FilterVerdict::NoMatch
            }
        };
        let value = row.values.get(&self.column);
        if self.op == FilterOp::Is {
            return verdict(match (self.values[0].as_str(), value) {
                // A JSON `null` literal is a value: `is.null` is false for it, as in SQL.
                ("null", _) => row.is_sql_null(&self.column) == Some(true),
                ("true", Some(Value::Bool(b))) => *b,
                ("false", Some(Value::Bool(b))) => !*b,
                _ => false,
            });
        }
        let Some(value) = value else {
            return FilterVerdict::NoMatch;
        };
        if value.is_null() && !row.is_json_null(&self.column) {
            // SQL NULL: every comparison is NULL, the row does not pass.
            return FilterVerdict::NoMatch;
        }
        let Some(bound) = &self.bound else {
            return verdict(!value.is_null() && self.legacy(value));
        };
        if bound.defer {
            return FilterVerdict::Defer;
        }
        match self.op {
            FilterOp::Like | FilterOp::Ilike => match value {
                Value::String(s) => verdict(like(s, &self.values[0], self.op == FilterOp::Ilike)),
                _ => FilterVerdict::Defer,
            },
            op => {
                let Some(kind) = bound.kind else {
                    return FilterVerdict::Defer;
                };
                let datum = if value.is_null() {
                    // A JSON `null` literal (jsonb comparisons are deferred anyway).
                    return FilterVerdict::Defer;
                } else {
                    match value::datum_from_json(value, &bound.ty) {
                        Ok(d) => d,
                        Err(Undecided) => return FilterVerdict::Defer,
                    }
                };
                let mut any = false;
                for operand in &bound.operands {
                    match kind.compare(&datum, operand) {
                        Ok(ordering) => any |= op.holds(ordering),
                        Err(Undecided) => return FilterVerdict::Defer,
                    }
                }
                verdict(any)
            }
        }
    }

    /// Unbound filters (no catalog at hand: unit tests, benchmarks) compare JSON numbers
    /// as exact decimals and everything else as text.
    fn legacy(&self, value: &Value) -> bool {
        let compare = |operand: &str| -> Option<Ordering> {
            match value {
                Value::Number(n) => {
                    let text = n.to_string();
                    let left = value::Decimal::parse(&text).ok()?;
                    let right = value::Decimal::parse(operand).ok()?;
                    Some(left.cmp(&right))
                }
                Value::Bool(b) => match operand {
                    "true" => Some(b.cmp(&true)),
                    "false" => Some(b.cmp(&false)),
                    _ => None,
                },
                // numeric columns arrive as strings: numerically when both are numbers.
                Value::String(s) => {
                    match (value::Decimal::parse(s), value::Decimal::parse(operand)) {
                        (Ok(l), Ok(r)) => Some(l.cmp(&r)),
                        _ => Some(s.as_str().cmp(operand)),
                    }
                }
                _ => None,
            }
        };
        match self.op {
            FilterOp::Like => like(&value_text(value), &self.values[0], false),
            FilterOp::Ilike => like(&value_text(value), &self.values[0], true),
            FilterOp::In => self
                .values
                .iter()
                .any(|v| compare(v) == Some(Ordering::Equal)),
            op => compare(&self.values[0]).is_some_and(|o| op.holds(o)),
        }
    }

    /// For `eq` filters whose typed equality is equality of text forms (integers, text
    /// under a deterministic collation, uuids, booleans): the key under which the
    /// subscription is indexed, the operand's canonical text, as [`value_text`] prints a
    /// decoded value.
    pub fn eq_key(&self) -> Option<String> {
        if self.op != FilterOp::Eq {
            return None;
        }
        let Some(bound) = &self.bound else {
            return Some(self.values[0].clone());
        };
        if bound.defer {
            return None;
        }
        match bound.operands.first()? {
            Datum::Int(i) => Some(i.to_string()),
            Datum::Text(s) if bound.ty == SqlType::Text => Some(s.to_string()),
            Datum::Uuid(u) => Some(value::format_uuid(*u)),
            Datum::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

/// Detaches a datum from the operand text it was read from.
fn owned(datum: Datum<'_>) -> Datum<'static> {
    match datum {
        Datum::Null => Datum::Null,
        Datum::Bool(b) => Datum::Bool(b),
        Datum::Int(i) => Datum::Int(i),
        Datum::Numeric(d) => Datum::Numeric(d.into_owned()),
        Datum::Float(f) => Datum::Float(f),
        Datum::Text(s) => Datum::Text(s.into_owned().into()),
        Datum::Uuid(u) => Datum::Uuid(u),
        Datum::Json(v) => Datum::Json(std::borrow::Cow::Owned(v.into_owned())),
        Datum::Time(t) => Datum::Time(t),
        Datum::Date(d) => Datum::Date(d),
    }
}

/// The text form of a row value, as the eq index and `like` see it.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// SQL LIKE: `%` any run, `_` one character. ILIKE folds case as the C collation does:
/// ASCII letters only (other collations are deferred to PostgreSQL).
fn like(text: &str, pattern: &str, case_insensitive: bool) -> bool {
    let (t, p): (Vec<char>, Vec<char>) = if case_insensitive {
        (
            text.chars().map(|c| c.to_ascii_lowercase()).collect(),
            pattern.chars().map(|c| c.to_ascii_lowercase()).collect(),
        )
    } else {
        (text.chars().collect(), pattern.chars().collect())
    };
    // Backslash escapes the next pattern character (PostgreSQL's default ESCAPE).
    let mut pat: Vec<(char, bool)> = Vec::with_capacity(p.len());
    let mut chars = p.into_iter();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => pat.push((escaped, true)),
                None => pat.push(('\\', true)),
            },
            c => pat.push((c, false)),
        }
    }
    let any = |pi: usize| pat[pi] == ('%', false);
    let one = |pi: usize| pat[pi] == ('_', false);
    // Iterative wildcard matching with backtracking to the last `%`.
    let (mut ti, mut pi, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < pat.len() && !any(pi) && (one(pi) || pat[pi].0 == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < pat.len() && any(pi) {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < pat.len() && any(pi) {
        pi += 1;
    }
    pi == pat.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realtime::rls::predicate::Collation;
    use serde_json::json;

    fn row(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn parses_and_matches() {
        let r =
            row(json!({"id": 42, "name": "Ada", "price": "10.50", "done": false, "gone": null}));
        let t = |f: &str| Filter::parse(f).unwrap().matches(RowRef::plain(&r));
        assert!(t("id=eq.42"));
        assert!(!t("id=eq.43"));
        assert!(t("id=neq.43"));
        assert!(t("id=gt.41") && t("id=gte.42") && t("id=lt.43") && t("id=lte.42"));
        assert!(t("name=like.A%") && !t("name=like.a%") && t("name=ilike.a_a"));
        assert!(t("id=in.(1,42,3)") && !t("id=in.(1,2)"));
        assert!(t("gone=is.null") && t("done=is.false") && !t("done=is.true"));
        assert!(t("price=gt.9") && !t("price=gt.11"));
        assert!(!t("missing=eq.1"), "a column not in the row never matches");
        assert!(!t("gone=eq.1"));
    }

    #[test]
    fn refuses_bad_filters() {
        for bad in [
            "",
            "id",
            "id=42",
            "id=between.1",
            "id=in.1,2",
            "id=is.maybe",
            "=eq.1",
            "id=in.()",
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Filter::parse("user_id=eq.42").unwrap().eq_key().as_deref(),
            Some("42")
        );
    }

    fn column(ty: SqlType, collation: Collation) -> ColumnInfo {
        ColumnInfo {
            name: "c".into(),
            ty,
            collation,
        }
    }

    fn bound(f: &str, ty: SqlType) -> Filter {
        Filter::parse(f).unwrap().bind(&column(ty, Collation::C))
    }

    #[test]
    fn bound_filters_compare_like_postgres() {
        let r = |v: Value| row(json!({ "c": v }));
        let t = |f: &str, ty: SqlType, v: Value| bound(f, ty).verdict(RowRef::plain(&r(v)));
        use FilterVerdict::*;
        // Numbers exactly, not through f64.
        assert_eq!(t("c=eq.10.5", SqlType::Numeric, json!("10.50")), Match);
        assert_eq!(
            t(
                "c=gt.9007199254740992",
                SqlType::Int8,
                json!(9007199254740993i64)
            ),
            Match
        );
        assert_eq!(
            t(
                "c=eq.0.1",
                SqlType::Numeric,
                json!("0.1000000000000000055511151231257827")
            ),
            NoMatch
        );
        // real: the operand is a real too.
        assert_eq!(t("c=eq.0.1", SqlType::Float4, json!(0.1f32 as f64)), Match);
        assert_eq!(t("c=gt.1e308", SqlType::Float8, json!("NaN")), Match);
        // uuids by value, timestamps by instant, booleans.
        assert_eq!(
            t(
                "c=eq.A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
                SqlType::Uuid,
                json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
            ),
            Match
        );
        assert_eq!(
            t(
                "c=lt.2024-01-02 03:00:00+00",
                SqlType::TimestampTz,
                json!("2024-01-02T03:30:00+01:00")
            ),
            Match
        );
        assert_eq!(t("c=eq.true", SqlType::Bool, json!(true)), Match);
        // Text: bytewise under C; deferred under other collations and for other types.
        assert_eq!(t("c=lt.a", SqlType::Text, json!("B")), Match);
        let en = Collation {
            bytewise_order: false,
            deterministic: true,
        };
        let f = Filter::parse("c=lt.a")
            .unwrap()
            .bind(&column(SqlType::Text, en));
        assert_eq!(f.verdict(RowRef::plain(&r(json!("B")))), Defer);
        assert!(f.may_defer());
        let f = Filter::parse("c=eq.a")
            .unwrap()
            .bind(&column(SqlType::Text, en));
        assert_eq!(f.verdict(RowRef::plain(&r(json!("a")))), Match);
        assert_eq!(
            t("c=eq.{}", SqlType::Other("jsonb[]".into()), json!([])),
            Defer
        );
        // ILIKE folds ASCII only under C; LIKE honours backslash escapes.
        assert_eq!(t("c=ilike.É%", SqlType::Text, json!("éa")), NoMatch);
        assert_eq!(t("c=ilike.a%", SqlType::Text, json!("Ab")), Match);
        assert_eq!(t("c=like.a\\_b", SqlType::Text, json!("a_b")), Match);
        assert_eq!(t("c=like.a\\_b", SqlType::Text, json!("axb")), NoMatch);
        // JSON null literal vs SQL NULL.
        let literal = ["c".to_string()];
        let values = r(Value::Null);
        let json_null = RowRef {
            values: &values,
            json_nulls: &literal,
        };
        assert_eq!(
            bound("c=is.null", SqlType::Jsonb).verdict(json_null),
            NoMatch
        );
        assert_eq!(
            bound("c=is.null", SqlType::Jsonb).verdict(RowRef::plain(&values)),
            Match
        );
        // Canonical eq keys: the index finds 42 for eq.042 and a uuid in any case.
        assert_eq!(
            bound("c=eq.042", SqlType::Int4).eq_key().as_deref(),
            Some("42")
        );
        assert_eq!(
            bound("c=eq.A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", SqlType::Uuid)
                .eq_key()
                .as_deref(),
            Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        );
        assert_eq!(bound("c=eq.10.5", SqlType::Numeric).eq_key(), None);
    }
}
