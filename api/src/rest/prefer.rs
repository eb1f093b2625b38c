//! The `Prefer` header (RFC 7240) as PostgREST reads it:
//!
//! ```text
//! Prefer     = preference ("," preference)*        -- several Prefer headers concatenate
//! preference = "return=" ("representation" | "minimal" | "headers-only")
//!            | "count=" ("exact" | "planned" | "estimated")
//!            | "resolution=" ("merge-duplicates" | "ignore-duplicates")
//!            | "missing=" ("default" | "null")
//!            | "tx=" ("commit" | "rollback")
//!            | "handling=" ("strict" | "lenient")
//!            | "timezone=" tz-name                  -- validated by the builder
//!            | "max-affected=" digit+
//! ```
//!
//! The first occurrence of a preference wins. Anything else is an invalid preference:
//! ignored under `handling=lenient` (the default), PGRST122 under `handling=strict`.

use super::error::{RestError, snippet};

/// Most invalid preferences an error lists.
const MAX_LISTED_INVALID: usize = 8;

/// `return=`: what a write answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnPreference {
    /// `return=representation`: the written rows, shaped by `select=`.
    Representation,
    /// `return=minimal`: no body.
    Minimal,
    /// `return=headers-only`: no body, a `Location` header for an insert.
    HeadersOnly,
}

/// `count=`: how `Content-Range`'s total is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountPreference {
    /// `count(*)` of the filtered rows.
    Exact,
    /// The planner's estimate.
    Planned,
    /// Exact below `rest.max_rows`, else the planner's estimate.
    Estimated,
}

/// `resolution=`: an insert's `ON CONFLICT` action (upsert).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// `ON CONFLICT … DO UPDATE`.
    MergeDuplicates,
    /// `ON CONFLICT … DO NOTHING`.
    IgnoreDuplicates,
}

/// `missing=`: what a column of `columns=` absent from a payload object gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Its default value.
    Default,
    /// NULL (PostgREST's default).
    Null,
}

/// `tx=`: how the request's transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxEnd {
    /// Commit (the default).
    Commit,
    /// Roll back after answering (dry runs, tests).
    Rollback,
}

/// `handling=`: what to do with preferences not understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// PGRST122.
    Strict,
    /// Ignore them (the default).
    Lenient,
}

/// Every preference of a request; `None` where the client said nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Preferences {
    /// `return=`
    pub return_: Option<ReturnPreference>,
    /// `count=`
    pub count: Option<CountPreference>,
    /// `resolution=`
    pub resolution: Option<Resolution>,
    /// `missing=`
    pub missing: Option<Missing>,
    /// `tx=`
    pub tx: Option<TxEnd>,
    /// `handling=`
    pub handling: Option<Handling>,
    /// `timezone=`: a name the builder checks against `pg_timezone_names`.
    pub timezone: Option<String>,
    /// `max-affected=`: with `handling=strict`, the most rows a write may change.
    pub max_affected: Option<u64>,
    /// Preferences not understood (bounded snippets, at most a few).
    pub invalid: Vec<String>,
}

/// Parses every `Prefer` header of a request.
pub(crate) fn parse_preferences(headers: &[&str]) -> Result<Preferences, RestError> {
    let mut prefs = Preferences::default();
    let mut invalid_total = 0usize;
    for token in headers.iter().flat_map(|h| h.split(',')) {
        let token = token.trim();
        if token.is_empty() {
            continue;
        }
        if !apply(&mut prefs, token) {
            invalid_total += 1;
            if prefs.invalid.len() < MAX_LISTED_INVALID {
                prefs.invalid.push(snippet(token));
            }
        }
    }
    if prefs.handling == Some(Handling::Strict) && invalid_total > 0 {
        return Err(RestError::InvalidPreferences {
            prefs: prefs.invalid,
        });
    }
    Ok(prefs)
}

/// Records one preference (the first of each kind wins); false if it is not understood.
fn apply(prefs: &mut Preferences, token: &str) -> bool {
    fn set<T>(slot: &mut Option<T>, value: T) -> bool {
        if slot.is_none() {
            *slot = Some(value);
        }
        true
    }
    match token {
        "return=representation" => set(&mut prefs.return_, ReturnPreference::Representation),
        "return=minimal" => set(&mut prefs.return_, ReturnPreference::Minimal),
        "return=headers-only" => set(&mut prefs.return_, ReturnPreference::HeadersOnly),
        "count=exact" => set(&mut prefs.count, CountPreference::Exact),
        "count=planned" => set(&mut prefs.count, CountPreference::Planned),
        "count=estimated" => set(&mut prefs.count, CountPreference::Estimated),
        "resolution=merge-duplicates" => set(&mut prefs.resolution, Resolution::MergeDuplicates),
        "resolution=ignore-duplicates" => set(&mut prefs.resolution, Resolution::IgnoreDuplicates),
        "missing=default" => set(&mut prefs.missing, Missing::Default),
        "missing=null" => set(&mut prefs.missing, Missing::Null),
        "tx=commit" => set(&mut prefs.tx, TxEnd::Commit),
        "tx=rollback" => set(&mut prefs.tx, TxEnd::Rollback),
        "handling=strict" => set(&mut prefs.handling, Handling::Strict),
        "handling=lenient" => set(&mut prefs.handling, Handling::Lenient),
        _ => {
            if let Some(tz) = token.strip_prefix("timezone=") {
                let valid = !tz.is_empty()
                    && tz.len() <= 64
                    && tz
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b));
                return valid && set(&mut prefs.timezone, tz.to_owned());
            }
            if let Some(n) = token.strip_prefix("max-affected=") {
                return match n.parse::<u64>() {
                    Ok(n) if n <= i64::MAX as u64 => set(&mut prefs.max_affected, n),
                    _ => false,
                };
            }
            false
        }
    }
}

impl Preferences {
    /// The `Preference-Applied` header PostgREST sends: the recognised preferences
    /// (`max-affected` only with `handling=strict`), or `None` when there are none.
    pub fn applied(&self) -> Option<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(r) = self.resolution {
            out.push(match r {
                Resolution::MergeDuplicates => "resolution=merge-duplicates".into(),
                Resolution::IgnoreDuplicates => "resolution=ignore-duplicates".into(),
            });
        }
        if let Some(m) = self.missing {
            out.push(match m {
                Missing::Default => "missing=default".into(),
                Missing::Null => "missing=null".into(),
            });
        }
        if let Some(r) = self.return_ {
            out.push(match r {
                ReturnPreference::Representation => "return=representation".into(),
                ReturnPreference::Minimal => "return=minimal".into(),
                ReturnPreference::HeadersOnly => "return=headers-only".into(),
            });
        }
        if let Some(c) = self.count {
            out.push(match c {
                CountPreference::Exact => "count=exact".into(),
                CountPreference::Planned => "count=planned".into(),
                CountPreference::Estimated => "count=estimated".into(),
            });
        }
        if let Some(t) = self.tx {
            out.push(match t {
                TxEnd::Commit => "tx=commit".into(),
                TxEnd::Rollback => "tx=rollback".into(),
            });
        }
        if let Some(h) = self.handling {
            out.push(match h {
                Handling::Strict => "handling=strict".into(),
                Handling::Lenient => "handling=lenient".into(),
            });
        }
        if let Some(tz) = &self.timezone {
            out.push(format!("timezone={tz}"));
        }
        if let (Some(Handling::Strict), Some(n)) = (self.handling, self.max_affected) {
            out.push(format!("max-affected={n}"));
        }
        (!out.is_empty()).then(|| out.join(", "))
    }
}
