//! The response of a successful statement, as PostgREST shapes it: status (200, 201, 204,
//! 206), `Content-Range` (`0-9/100`, `*/42`), `Content-Type`, `Location` for a single
//! insert with `return=headers-only`, `Preference-Applied`, `Content-Profile`, and the body
//! PostgreSQL built. The checks that can still fail a request once its statement ran —
//! exactly one row for `vnd.pgrst.object+json`, `max-affected`, PUT's key, a keyed row
//! that is not there — happen here, before a write commits.

use actix_web::http::StatusCode;
use actix_web::web::Bytes;

use super::build::{BodyMode, Plan, PlanKind};
use super::error::{RangeError, RestError};
use super::exec::Outcome;
use super::media::MediaType;
use super::prefer::{CountPreference, Handling, Preferences};
use super::request::ApiRequest;
use super::service::Flavour;

/// An HTTP response, ready for the HTTP layer to send.
#[derive(Debug, Clone, PartialEq)]
pub struct RestResponse {
    /// The status.
    pub status: StatusCode,
    /// Headers, in order (names as PostgREST spells them).
    pub headers: Vec<(&'static str, String)>,
    /// The body (empty for HEAD and 204).
    pub body: Bytes,
}

impl RestResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The actix response (the body moves, uncopied).
    pub fn into_http(self) -> actix_web::HttpResponse {
        let mut response = actix_web::HttpResponse::build(self.status);
        for (name, value) in self.headers {
            response.insert_header((name, value));
        }
        response.body(self.body)
    }
}

/// What the response needs besides the plan and the result.
pub(crate) struct Context<'a> {
    /// Which shape of API.
    pub flavour: Flavour,
    /// The request's schema.
    pub schema: &'a str,
    /// Several schemas are exposed: say which one answered (`Content-Profile`).
    pub profile: bool,
    /// The `timezone=` preference was valid and applied.
    pub timezone_applied: bool,
}

/// The response to `request`, whose statement gave `out`; an error when the result breaks
/// what the request demanded (the write is then rolled back).
pub(crate) fn respond(
    plan: &Plan,
    request: &ApiRequest,
    out: &Outcome,
    ctx: &Context,
) -> Result<RestResponse, RestError> {
    let page = u64::try_from(out.page).unwrap_or(0);
    let prefs = &request.preferences;
    let writes_rows = matches!(
        plan.kind,
        PlanKind::Update | PlanKind::Delete | PlanKind::Call { .. }
    );
    if let (Some(max), Some(Handling::Strict), true) =
        (prefs.max_affected, prefs.handling, writes_rows)
        && page > max
    {
        return Err(RestError::MaxAffected { rows: page });
    }
    if plan.kind == PlanKind::Put && page != 1 {
        return Err(RestError::PutMismatch);
    }
    if plan.keyed && page == 0 {
        return Err(RestError::RowNotFound {
            relation: format!("{}.{}", ctx.schema, plan.relation),
        });
    }
    let single = plan.keyed || matches!(plan.media, MediaType::SingleObject { .. });
    if single && plan.body != BodyMode::First && page != 1 {
        return Err(RestError::Singular { rows: page });
    }

    let mut headers: Vec<(&'static str, String)> = Vec::new();
    let body = body(plan, out, single);
    let has_body = plan.body != BodyMode::None;
    let count_asked = prefs.count.is_some();
    let status = match plan.kind {
        PlanKind::Read | PlanKind::Call { void: false, .. } => {
            let total = total(plan, out);
            let (status, range) = range_status(plan.range.offset, page, total);
            headers.push(("Content-Range", range));
            if status == StatusCode::RANGE_NOT_SATISFIABLE {
                return Err(RestError::InvalidRange(RangeError::OutOfBounds {
                    offset: plan.range.offset,
                    total: total.unwrap_or(0),
                }));
            }
            status
        }
        PlanKind::Call { void: true, .. } => StatusCode::NO_CONTENT,
        PlanKind::Insert { merge } => {
            headers.push((
                "Content-Range",
                content_range(1, 0, count_asked.then_some(page)),
            ));
            if let Some(location) = location(plan, out, ctx, page) {
                headers.push(("Location", location));
            }
            if merge && out.inserted.unwrap_or(0) <= 0 {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            }
        }
        PlanKind::Put if has_body => {
            if out.inserted.unwrap_or(0) > 0 {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            }
        }
        PlanKind::Put => StatusCode::NO_CONTENT,
        PlanKind::Update | PlanKind::Delete => {
            let (lower, upper) = match plan.kind {
                PlanKind::Update => (0, page as i128 - 1),
                _ => (1, 0),
            };
            headers.push((
                "Content-Range",
                content_range(lower, upper, count_asked.then_some(page)),
            ));
            if has_body {
                StatusCode::OK
            } else {
                StatusCode::NO_CONTENT
            }
        }
    };
    if has_body {
        let content_type = match (plan.media, plan.keyed) {
            (MediaType::SingleObject { .. }, false) | (MediaType::Csv, _) => {
                plan.media.content_type()
            }
            _ => "application/json; charset=utf-8",
        };
        headers.push(("Content-Type", content_type.to_owned()));
    }
    if let Some(applied) = applied(plan, request, ctx.timezone_applied) {
        headers.push(("Preference-Applied", applied));
    }
    if ctx.profile {
        headers.push(("Content-Profile", ctx.schema.to_owned()));
    }
    let body = if plan.head || !has_body || status == StatusCode::NO_CONTENT {
        Bytes::new()
    } else {
        body
    };
    Ok(RestResponse {
        status,
        headers,
        body,
    })
}

/// The body bytes: the statement's text, the single object out of its array, the CSV
/// header before its lines.
fn body(plan: &Plan, out: &Outcome, single: bool) -> Bytes {
    let text = out.body.as_deref().unwrap_or("");
    match plan.body {
        BodyMode::None => Bytes::new(),
        BodyMode::Array if single => {
            let inner = text
                .strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .unwrap_or(text);
            Bytes::copy_from_slice(inner.trim().as_bytes())
        }
        BodyMode::Array | BodyMode::First => Bytes::copy_from_slice(text.as_bytes()),
        BodyMode::Csv => {
            let header = plan.csv_header.as_deref().unwrap_or("");
            let mut csv = String::with_capacity(header.len() + text.len());
            csv.push_str(header);
            csv.push_str(text);
            Bytes::from(csv)
        }
    }
}

/// The total of `Content-Range`, as the count preference asked.
fn total(plan: &Plan, out: &Outcome) -> Option<u64> {
    let exact = out.total.and_then(|t| u64::try_from(t).ok());
    let planned = out.planned.and_then(|t| u64::try_from(t).ok());
    match plan.count? {
        CountPreference::Exact => exact,
        CountPreference::Planned => planned,
        CountPreference::Estimated => match (plan.max_rows, exact) {
            (Some(max), Some(t)) if t > max => Some(planned.map_or(t, |p| p.max(t))),
            _ => exact,
        },
    }
}

/// PostgREST's `rangeStatusHeader`: 206 for a partial page, 416 past the end.
fn range_status(offset: u64, page: u64, total: Option<u64>) -> (StatusCode, String) {
    let lower = i128::from(offset);
    let upper = lower + i128::from(page) - 1;
    let header = content_range(lower, upper, total);
    let status = match total.map(i128::from) {
        None => StatusCode::OK,
        Some(t) if lower > t => StatusCode::RANGE_NOT_SATISFIABLE,
        Some(t) if 1 + upper - lower < t => StatusCode::PARTIAL_CONTENT,
        Some(_) => StatusCode::OK,
    };
    (status, header)
}

/// `lower-upper/total`, `*` for an empty range or an unknown total.
fn content_range(lower: i128, upper: i128, total: Option<u64>) -> String {
    let range = if total != Some(0) && lower <= upper {
        format!("{lower}-{upper}")
    } else {
        "*".to_owned()
    };
    match total {
        Some(t) => format!("{range}/{t}"),
        None => format!("{range}/*"),
    }
}

/// The `Location` of a single inserted row.
fn location(plan: &Plan, out: &Outcome, ctx: &Context, page: u64) -> Option<String> {
    let values = out.location.as_ref()?;
    if page != 1 || plan.location_keys.is_empty() {
        return None;
    }
    if let (Flavour::Fluxbase, [Some(value)]) = (ctx.flavour, values.as_slice()) {
        return Some(format!(
            "/api/v1/tables/{}/{}/{}",
            encode(ctx.schema),
            encode(&plan.relation),
            encode(value)
        ));
    }
    let filters: Vec<String> = plan
        .location_keys
        .iter()
        .zip(values)
        .map(|(key, value)| match value {
            Some(v) => format!("{}=eq.{}", encode(key), encode(v)),
            None => format!("{}=is.null", encode(key)),
        })
        .collect();
    let path = match ctx.flavour {
        Flavour::PostgRest => format!("/{}", encode(&plan.relation)),
        Flavour::Fluxbase => format!(
            "/api/v1/tables/{}/{}",
            encode(ctx.schema),
            encode(&plan.relation)
        ),
    };
    Some(format!("{path}?{}", filters.join("&")))
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `Preference-Applied`: the preferences honoured for this kind of request.
fn applied(plan: &Plan, request: &ApiRequest, timezone_applied: bool) -> Option<String> {
    let prefs = &request.preferences;
    let write = !matches!(plan.kind, PlanKind::Read | PlanKind::Call { .. });
    let insert_or_update = matches!(
        plan.kind,
        PlanKind::Insert { .. } | PlanKind::Put | PlanKind::Update
    );
    let shown = Preferences {
        return_: prefs.return_.filter(|_| write),
        count: prefs.count,
        resolution: prefs
            .resolution
            .filter(|_| matches!(plan.kind, PlanKind::Insert { .. })),
        missing: prefs.missing.filter(|_| insert_or_update),
        tx: prefs.tx,
        handling: prefs.handling,
        timezone: prefs.timezone.clone().filter(|_| timezone_applied),
        max_affected: prefs.max_affected.filter(|_| {
            matches!(
                plan.kind,
                PlanKind::Update | PlanKind::Delete | PlanKind::Call { .. }
            )
        }),
        invalid: Vec::new(),
    };
    shown.applied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_follow_postgrest() {
        assert_eq!(content_range(0, 9, Some(100)), "0-9/100");
        assert_eq!(content_range(0, 9, None), "0-9/*");
        assert_eq!(content_range(0, -1, Some(0)), "*/0");
        assert_eq!(content_range(1, 0, Some(3)), "*/3");
        assert_eq!(
            range_status(0, 10, Some(100)).0,
            StatusCode::PARTIAL_CONTENT
        );
        assert_eq!(range_status(0, 3, Some(3)).0, StatusCode::OK);
        assert_eq!(
            range_status(5, 0, Some(3)).0,
            StatusCode::RANGE_NOT_SATISFIABLE
        );
        assert_eq!(range_status(3, 0, Some(3)).0, StatusCode::PARTIAL_CONTENT);
        assert_eq!(range_status(0, 5, None).0, StatusCode::OK);
    }

    #[test]
    fn locations_are_percent_encoded() {
        assert_eq!(encode("a b/é"), "a%20b%2F%C3%A9");
    }
}
