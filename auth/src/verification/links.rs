//! The links of the email flow: the action link in an email (`/auth/v1/verify?token=…`) and
//! where a verified link lands (`redirect_to`, only if allowed: the open-redirect rule).
//!
//! A `redirect_to` is allowed when it is an `http(s)` URL under `auth.site_url`'s origin or
//! under one of `auth.redirect_urls` (prefixes; a trailing `*` is ignored). "Under" means
//! the prefix is followed by nothing, `/`, `?` or `#` (or the prefix itself ends with `/`),
//! so `https://app.example.com.evil.net` and `https://app.example.com@evil.net` are not
//! under `https://app.example.com`. Anything else lands on `auth.site_url`.

use crate::AuthService;
use crate::one_time::Purpose;

/// Where the links of one email point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    /// The public URL of `/auth/v1/verify`.
    pub verify_url: String,
    /// The allowed landing page after verification, if any.
    pub redirect_to: Option<String>,
}

impl Links {
    /// The link of a token of `purpose`.
    pub fn action_link(&self, purpose: Purpose, link_token: &str) -> String {
        let mut link = format!(
            "{}?token={}&type={}",
            self.verify_url,
            encode(link_token),
            purpose.verify_type().as_str()
        );
        if let Some(target) = &self.redirect_to {
            link.push_str("&redirect_to=");
            link.push_str(&encode(target));
        }
        link
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (a query value).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `scheme://authority` of an absolute http(s) URL.
fn origin(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&url[..url.len() - rest.len() + end])
}

/// Whether `candidate` is `prefix` or lies under it.
fn under(candidate: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('*');
    if prefix.is_empty() || !candidate.starts_with(prefix) {
        return false;
    }
    prefix.ends_with('/')
        || candidate[prefix.len()..]
            .chars()
            .next()
            .is_none_or(|c| matches!(c, '/' | '?' | '#'))
}

/// Whether `candidate` may be redirected to, given the site URL and the allow list.
pub fn is_allowed(candidate: &str, site_url: Option<&str>, allowed: &[String]) -> bool {
    let well_formed = origin(candidate).is_some()
        && candidate
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '\\');
    if !well_formed {
        return false;
    }
    site_url
        .and_then(origin)
        .is_some_and(|o| under(candidate, o))
        || allowed.iter().any(|a| under(candidate, a))
}

impl AuthService {
    /// Where a verified link lands: `candidate` when allowed, else `auth.site_url`.
    pub fn redirect_target(&self, candidate: Option<&str>) -> Option<String> {
        let email = &self.settings().email;
        candidate
            .map(str::trim)
            .filter(|c| is_allowed(c, email.site_url.as_deref(), &email.redirect_urls))
            .map(str::to_string)
            .or_else(|| email.site_url.clone())
    }

    /// The links of an email: to `/auth/v1/verify` under `server.base_url` (or, when that
    /// is unset, `fallback_verify_url`, which the HTTP layer builds from the request), landing
    /// on [`AuthService::redirect_target`] of `redirect_to`.
    pub fn links(&self, fallback_verify_url: Option<&str>, redirect_to: Option<&str>) -> Links {
        let verify_url = self
            .settings()
            .email
            .verify_url
            .clone()
            .or_else(|| fallback_verify_url.map(str::to_string))
            .unwrap_or_else(|| "/auth/v1/verify".to_string());
        Links {
            verify_url,
            redirect_to: self.redirect_target(redirect_to),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_stay_on_the_site_or_the_allow_list() {
        let site = Some("https://app.example.com/welcome");
        let allowed = vec![
            "http://localhost:3000/*".to_string(),
            "https://admin.example.org/cb".to_string(),
        ];
        for ok in [
            "https://app.example.com",
            "https://app.example.com/",
            "https://app.example.com/reset?x=1",
            "http://localhost:3000/callback",
            "https://admin.example.org/cb",
            "https://admin.example.org/cb?next=/",
        ] {
            assert!(is_allowed(ok, site, &allowed), "{ok}");
        }
        for bad in [
            "https://app.example.com.evil.net/",
            "https://app.example.com@evil.net/",
            "http://app.example.com/",
            "https://admin.example.org/cbx",
            "javascript:alert(1)",
            "//evil.net",
            "https://app.example.com/\\evil",
            "https://app.example.com/a b",
            "",
        ] {
            assert!(!is_allowed(bad, site, &allowed), "{bad}");
        }
        assert!(!is_allowed("https://anything.example", None, &[]));
    }

    #[test]
    fn action_links_encode_their_values() {
        let links = Links {
            verify_url: "https://api.example.com/auth/v1/verify".into(),
            redirect_to: Some("https://app.example.com/a?b=c&d=e".into()),
        };
        assert_eq!(
            links.action_link(Purpose::Recovery, "tok_en-1"),
            "https://api.example.com/auth/v1/verify?token=tok_en-1&type=recovery\
             &redirect_to=https%3A%2F%2Fapp.example.com%2Fa%3Fb%3Dc%26d%3De"
        );
        assert_eq!(encode("é "), "%C3%A9%20");
    }
}
