//! The text of one statement and its bind parameters, written left to right.
//!
//! Three kinds of names reach the text: identifiers from the schema snapshot, always
//! double-quoted with `"` doubled ([`Sql::ident`]); the builder's own aliases (`r0`, `q`,
//! `j`, `v`, `c0`…), lowercase words never quoted, so a quoted identifier in the text is
//! always a catalog name; and type names for casts, checked against an allowlist before
//! they get here. Every value a client sends is a parameter ([`Sql::param`]), sent in
//! PostgreSQL's text format so the server parses it as the type it infers from the
//! context (`col = $1` takes `col`'s type) or the cast written after it (`$1::json`).
//! Limits and offsets are parameters too: a statement's text depends only on the shape of
//! the request, which is what the prepared-statement cache keys on.

use std::fmt::Write as _;

use bytes::BytesMut;
use fluxbase_migrations::schema::Relation;
use tokio_postgres::types::{Format, IsNull, ToSql, Type};

/// One bind parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// Text in PostgreSQL's text format: parsed by the server as the parameter's type.
    Text(String),
    /// Bytes for a `bytea` parameter (a function's raw `application/octet-stream` body).
    Bytes(Vec<u8>),
}

impl Param {
    /// The parameter as tokio-postgres binds it.
    pub fn as_sql(&self) -> &(dyn ToSql + Sync) {
        self
    }
}

impl ToSql for Param {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Param::Text(text) => out.extend_from_slice(text.as_bytes()),
            Param::Bytes(bytes) => out.extend_from_slice(bytes),
        }
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        // Text goes to the server's input function of whatever type it inferred; bytes are
        // only ever bound where the statement casts the parameter to bytea.
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        match self {
            Param::Text(_) => Format::Text,
            Param::Bytes(_) => Format::Binary,
        }
    }

    tokio_postgres::types::to_sql_checked!();
}

/// Values up to this length written twice with the same cast share one parameter.
const SHARED_PARAM_LEN: usize = 256;

/// A statement being written: its text and its parameters (`$1` is `params[0]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sql {
    /// The statement text.
    pub text: String,
    /// The parameters, in `$n` order.
    pub params: Vec<Param>,
    /// `(value, type)` of the short cast parameters, to reuse them: an expression written
    /// twice (`data->>$1::text` in the select list, `GROUP BY` and `ORDER BY`) is then the
    /// same expression to PostgreSQL.
    shared: Vec<(String, String, usize)>,
}

impl Sql {
    /// Appends text the builder wrote itself (keywords, operators, its own aliases).
    pub fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// Appends an identifier from the schema snapshot, quoted.
    pub fn ident(&mut self, name: &str) {
        self.text.push('"');
        for c in name.chars() {
            if c == '"' {
                self.text.push('"');
            }
            self.text.push(c);
        }
        self.text.push('"');
    }

    /// Appends `"schema"."name"` of a relation.
    pub fn relation(&mut self, relation: &Relation) {
        self.qualified(&relation.schema, &relation.name);
    }

    /// Appends `"schema"."name"`.
    pub fn qualified(&mut self, schema: &str, name: &str) {
        self.ident(schema);
        self.text.push('.');
        self.ident(name);
    }

    /// Appends the builder's alias number `n` (`r3`).
    pub fn alias(&mut self, n: u32) {
        let _ = write!(self.text, "r{n}");
    }

    /// Appends `r{alias}."column"`.
    pub fn column(&mut self, alias: u32, column: &str) {
        self.alias(alias);
        self.text.push('.');
        self.ident(column);
    }

    /// Appends a placeholder for `value` (`$n`).
    pub fn param(&mut self, value: impl Into<String>) {
        self.params.push(Param::Text(value.into()));
        let _ = write!(self.text, "${}", self.params.len());
    }

    /// Appends a placeholder for `value` cast to `ty` (`$n::text`); `ty` is a type name
    /// the builder chose or one from the catalog. A short value already bound with the
    /// same cast reuses its parameter (the cast fixes its type, so sharing is safe).
    pub fn param_as(&mut self, value: impl Into<String>, ty: &str) {
        let value = value.into();
        if value.len() <= SHARED_PARAM_LEN {
            let found = self
                .shared
                .iter()
                .find(|(v, t, _)| *v == value && t == ty)
                .map(|(_, _, n)| *n);
            match found {
                Some(n) => {
                    let _ = write!(self.text, "${n}");
                }
                None => {
                    self.shared
                        .push((value.clone(), ty.to_owned(), self.params.len() + 1));
                    self.param(value);
                }
            }
        } else {
            self.param(value);
        }
        self.text.push_str("::");
        self.text.push_str(ty);
    }

    /// Appends a placeholder for binary `bytes` cast to bytea.
    pub fn bytes_param(&mut self, bytes: Vec<u8>) {
        self.params.push(Param::Bytes(bytes));
        let _ = write!(self.text, "${}::bytea", self.params.len());
    }

    /// Appends an integer the builder computed (never client text): used for `LIMIT`
    /// bounds that are part of a statement's shape, such as `rest.max_rows + 1`.
    pub fn number(&mut self, n: u64) {
        let _ = write!(self.text, "{n}");
    }
}

/// A PostgreSQL array literal (`{"a","b\"c"}`) of `values`, every element quoted, for one
/// `= ANY($1)` parameter however long the list (PostgREST's `pgBuildArrayLiteral`).
pub fn array_literal<S: AsRef<str>>(values: &[S]) -> String {
    let mut out = String::from("{");
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in value.as_ref().chars() {
            if matches!(c, '"' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_with_quotes_doubled() {
        let mut sql = Sql::default();
        sql.ident("a\"b");
        sql.push(" ");
        sql.qualified("s", "T x");
        assert_eq!(sql.text, r#""a""b" "s"."T x""#);
    }

    #[test]
    fn parameters_are_numbered_in_order() {
        let mut sql = Sql::default();
        sql.param("x");
        sql.push(" = ");
        sql.param_as("1", "int4");
        sql.push(", ");
        sql.param_as("1", "int4");
        sql.push(", ");
        sql.param_as("1", "text");
        assert_eq!(sql.text, "$1 = $2::int4, $2::int4, $3::text");
        assert_eq!(
            sql.params,
            vec![
                Param::Text("x".into()),
                Param::Text("1".into()),
                Param::Text("1".into())
            ]
        );
    }

    #[test]
    fn array_literals_quote_and_escape_every_element() {
        assert_eq!(array_literal::<&str>(&[]), "{}");
        assert_eq!(
            array_literal(&["a", "b,c", "d\"e", "f\\g", "null"]),
            r#"{"a","b,c","d\"e","f\\g","null"}"#
        );
    }
}
