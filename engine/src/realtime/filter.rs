//! Subscription filters: `col=op.value`, op ∈ eq neq gt gte lt lte like ilike is in.

use std::cmp::Ordering;

use serde_json::Value;

use super::rls::RowRef;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Column name (checked against the table's columns at subscribe time).
    pub column: String,
    /// Operator.
    pub op: FilterOp,
    /// Operand(s) as text; several for `in`.
    pub values: Vec<String>,
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
        })
    }

    /// Whether `row` passes. A missing column (an unchanged TOAST value) or NULL does not
    /// pass, except `is.null`.
    pub fn matches(&self, row: RowRef<'_>) -> bool {
        let value = row.values.get(&self.column);
        match self.op {
            FilterOp::Is => match (self.values[0].as_str(), value) {
                // A JSON `null` literal is a value: `is.null` is false for it, as in SQL.
                ("null", _) => row.is_sql_null(&self.column) == Some(true),
                ("true", Some(Value::Bool(b))) => *b,
                ("false", Some(Value::Bool(b))) => !*b,
                _ => false,
            },
            _ => {
                let Some(value) = value.filter(|v| !v.is_null()) else {
                    return false;
                };
                match self.op {
                    FilterOp::Eq => compare(value, &self.values[0]) == Some(Ordering::Equal),
                    FilterOp::Neq => {
                        compare(value, &self.values[0]).is_some_and(|o| o != Ordering::Equal)
                    }
                    FilterOp::Gt => compare(value, &self.values[0]) == Some(Ordering::Greater),
                    FilterOp::Gte => {
                        compare(value, &self.values[0]).is_some_and(|o| o != Ordering::Less)
                    }
                    FilterOp::Lt => compare(value, &self.values[0]) == Some(Ordering::Less),
                    FilterOp::Lte => {
                        compare(value, &self.values[0]).is_some_and(|o| o != Ordering::Greater)
                    }
                    FilterOp::Like => like(&value_text(value), &self.values[0], false),
                    FilterOp::Ilike => like(&value_text(value), &self.values[0], true),
                    FilterOp::In => self
                        .values
                        .iter()
                        .any(|v| compare(value, v) == Some(Ordering::Equal)),
                    FilterOp::Is => unreachable!("handled above"),
                }
            }
        }
    }

    /// For `eq` filters: the key under which the subscription is indexed.
    pub fn eq_key(&self) -> Option<&str> {
        (self.op == FilterOp::Eq).then(|| self.values[0].as_str())
    }
}

/// The text form of a row value, as the eq index and `like` see it.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Compares a row value with a filter operand: numerically when both are numbers, else as
/// text. `None` when they cannot be compared.
fn compare(value: &Value, operand: &str) -> Option<Ordering> {
    match value {
        Value::Number(n) => {
            let left = n.as_f64()?;
            let right: f64 = operand.parse().ok()?;
            left.partial_cmp(&right)
        }
        Value::Bool(b) => match operand {
            "true" => Some(b.cmp(&true)),
            "false" => Some(b.cmp(&false)),
            _ => None,
        },
        Value::String(s) => {
            // numeric columns arrive as strings: compare numerically when both parse.
            if let (Ok(l), Ok(r)) = (s.parse::<f64>(), operand.parse::<f64>())
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
            {
                return l.partial_cmp(&r);
            }
            Some(s.as_str().cmp(operand))
        }
        _ => None,
    }
}

/// SQL LIKE: `%` any run, `_` one character.
fn like(text: &str, pattern: &str, case_insensitive: bool) -> bool {
    let (t, p): (Vec<char>, Vec<char>) = if case_insensitive {
        (
            text.to_lowercase().chars().collect(),
            pattern.to_lowercase().chars().collect(),
        )
    } else {
        (text.chars().collect(), pattern.chars().collect())
    };
    // Iterative wildcard matching with backtracking to the last `%`.
    let (mut ti, mut pi, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
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
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(Filter::parse("user_id=eq.42").unwrap().eq_key(), Some("42"));
    }
}
