//! Object names, bucket ids and listing prefixes, validated once at the edge of the
//! service. Names are NFC-normalised (so `é` typed two ways is one object) and refused when
//! they could mean something other than a plain key: `.`/`..` segments, a leading `/`, empty
//! segments, backslashes, NUL and other control characters, Unicode noncharacters, more
//! than [`MAX_NAME_BYTES`]. The HTTP layer percent-decodes once; a `%2e%2e%2f` that arrives
//! decoded as `../` is refused here like any `..`.
//!
//! Names never become file paths (the backend stores bytes under the bucket id and a
//! version uuid), so these rules are defence in depth and hygiene, not the only wall.

use unicode_normalization::UnicodeNormalization;

use crate::error::StorageError;

/// Longest object name in bytes (after normalisation), as in Supabase and S3.
pub const MAX_NAME_BYTES: usize = 1024;

/// Longest bucket id (S3's bucket-name limit).
pub const MAX_BUCKET_ID_BYTES: usize = 63;

/// A validated, NFC-normalised object name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectName(String);

impl ObjectName {
    /// Validates and normalises `raw`.
    pub fn parse(raw: &str) -> Result<ObjectName, StorageError> {
        let name = normalise(raw, "object name")?;
        if name.is_empty() {
            return Err(invalid("object name", "must not be empty"));
        }
        if name.ends_with('/') {
            return Err(invalid("object name", "must not end with '/'"));
        }
        check_segments(&name, "object name")?;
        Ok(ObjectName(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ObjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated bucket id: ASCII letters, digits, `_`, `-` and `.` (not first), 1–63 bytes.
/// Narrower than Supabase (which allows spaces and punctuation) because the id is the first
/// segment of the bucket's keys in the backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BucketId(String);

impl BucketId {
    /// Validates `raw`.
    pub fn parse(raw: &str) -> Result<BucketId, StorageError> {
        if raw.is_empty() || raw.len() > MAX_BUCKET_ID_BYTES {
            return Err(invalid("bucket id", "must be 1 to 63 characters"));
        }
        if raw.starts_with('.') {
            return Err(invalid("bucket id", "must not start with '.'"));
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.');
        if !raw.bytes().all(allowed) {
            return Err(invalid(
                "bucket id",
                "may contain only ASCII letters, digits, '_', '-' and '.'",
            ));
        }
        Ok(BucketId(raw.to_string()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for BucketId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A listing prefix: a folder path (`""` for the root, `a/b` or `a/b/`), normalised to ""
/// or a string ending in `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix(String);

impl Prefix {
    /// Validates and normalises `raw`.
    pub fn parse(raw: &str) -> Result<Prefix, StorageError> {
        let trimmed = raw.trim_end_matches('/');
        if trimmed.is_empty() {
            return Ok(Prefix(String::new()));
        }
        let folder = normalise(trimmed, "prefix")?;
        check_segments(&folder, "prefix")?;
        Ok(Prefix(format!("{folder}/")))
    }

    /// `""` or the folder path with its trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// NFC-normalises and applies the character rules shared by names and prefixes.
fn normalise(raw: &str, field: &'static str) -> Result<String, StorageError> {
    // Check the raw text too: normalisation never introduces or removes these characters,
    // but refusing before allocating keeps hostile input cheap.
    if raw.len() > 4 * MAX_NAME_BYTES {
        return Err(invalid(field, "is longer than 1024 bytes"));
    }
    let name: String = raw.nfc().collect();
    if name.len() > MAX_NAME_BYTES {
        return Err(invalid(field, "is longer than 1024 bytes"));
    }
    for c in name.chars() {
        if c == '\0' {
            return Err(invalid(field, "must not contain NUL"));
        }
        if c.is_control() {
            return Err(invalid(field, "must not contain control characters"));
        }
        if c == '\\' {
            return Err(invalid(field, "must not contain '\\'"));
        }
        if is_noncharacter(c) {
            return Err(invalid(field, "must not contain Unicode noncharacters"));
        }
    }
    Ok(name)
}

/// Refuses absolute paths, empty segments and `.`/`..` segments.
fn check_segments(name: &str, field: &'static str) -> Result<(), StorageError> {
    if name.starts_with('/') {
        return Err(invalid(field, "must not start with '/'"));
    }
    for segment in name.split('/') {
        match segment {
            "" => return Err(invalid(field, "must not contain empty segments ('//')")),
            "." | ".." => return Err(invalid(field, "must not contain '.' or '..' segments")),
            _ => {}
        }
    }
    Ok(())
}

/// U+FDD0..U+FDEF and the last two code points of every plane: "not for interchange", and
/// keeping them out lets `prefix || U+10FFFF` bound a prefix scan.
fn is_noncharacter(c: char) -> bool {
    let cp = c as u32;
    (0xFDD0..=0xFDEF).contains(&cp) || (cp & 0xFFFE) == 0xFFFE
}

fn invalid(field: &'static str, reason: &'static str) -> StorageError {
    StorageError::InvalidName { field, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_and_unicode_names_normalised() {
        assert_eq!(
            ObjectName::parse("a/b/c.png").unwrap().as_str(),
            "a/b/c.png"
        );
        assert_eq!(
            ObjectName::parse("%2e%2e%2f").unwrap().as_str(),
            "%2e%2e%2f"
        );
        // e + combining acute accent becomes U+00E9.
        assert_eq!(
            ObjectName::parse("cafe\u{301}").unwrap().as_str(),
            "caf\u{e9}"
        );
        assert_eq!(ObjectName::parse("...").unwrap().as_str(), "...");
        assert_eq!(
            ObjectName::parse("a/.hidden").unwrap().as_str(),
            "a/.hidden"
        );
    }

    #[test]
    fn refuses_traversal_and_tricks() {
        for bad in [
            "",
            "../../etc/passwd",
            "a/../b",
            "./a",
            "a/.",
            "/etc/passwd",
            "a//b",
            "a/",
            "a\\..\\b",
            "a\0b",
            "a\nb",
            "a\u{7f}",
            "a\u{85}",
            "a\u{ffff}",
            "a\u{fdd0}",
            "a\u{10ffff}",
        ] {
            assert!(ObjectName::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(ObjectName::parse(&"x".repeat(1024)).is_ok());
        assert!(ObjectName::parse(&"x".repeat(1025)).is_err());
        // 512 two-byte characters are 1024 bytes; 513 are too many.
        assert!(ObjectName::parse(&"é".repeat(512)).is_ok());
        assert!(ObjectName::parse(&"é".repeat(513)).is_err());
    }

    #[test]
    fn bucket_ids() {
        for good in ["avatars", "temp-uploads", "a", "A_1.b", "_x"] {
            assert!(BucketId::parse(good).is_ok(), "{good}");
        }
        for bad in ["", ".fluxbase", "..", "a/b", "a b", "é", &"x".repeat(64)] {
            assert!(BucketId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(Prefix::parse("").unwrap().as_str(), "");
        assert_eq!(Prefix::parse("/").unwrap().as_str(), "");
        assert_eq!(Prefix::parse("a/b").unwrap().as_str(), "a/b/");
        assert_eq!(Prefix::parse("a/b/").unwrap().as_str(), "a/b/");
        assert!(Prefix::parse("../x").is_err());
        assert!(Prefix::parse("/abs").is_err());
    }
}
