//! Bounds of the REST request parser: every size a client controls has a ceiling here, so a
//! request is refused with a typed error long before it can cost memory, stack or time.
//!
//! The defaults are generous for real clients (`@supabase/postgrest-js` URLs are far below
//! them) and tight enough that a hostile query string stays cheap to reject.

/// Longest raw query string accepted, in bytes (before percent-decoding).
pub const DEFAULT_MAX_QUERY_LEN: usize = 32 * 1024;
/// Most `key=value` pairs in one query string.
pub const DEFAULT_MAX_PARAMS: usize = 256;
/// Most values in one `in.(…)` list or `columns=` / `on_conflict=` list.
pub const DEFAULT_MAX_LIST_LEN: usize = 1_000;
/// Deepest nesting of `and(…)` / `or(…)` trees.
pub const DEFAULT_MAX_LOGIC_DEPTH: usize = 8;
/// Deepest nesting of embedded resources in `select=` (the issue asks for at least two).
pub const DEFAULT_MAX_EMBED_DEPTH: usize = 6;
/// Longest identifier, in bytes: PostgreSQL's `NAMEDATALEN - 1`.
pub const DEFAULT_MAX_IDENTIFIER_LEN: usize = 63;
/// Most `->`/`->>` steps in one JSON path.
pub const DEFAULT_MAX_JSON_PATH_LEN: usize = 16;
/// Longest value of one header the parser reads (`Prefer`, `Accept`, `Range`...).
pub const DEFAULT_MAX_HEADER_LEN: usize = 4 * 1024;
/// Most keys in a write's payload (PostgreSQL tables have at most 1,600 columns).
pub const DEFAULT_MAX_PAYLOAD_KEYS: usize = 1_600;

/// The parser's bounds; [`Limits::default`] holds the `DEFAULT_*` constants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest raw query string, in bytes.
    pub max_query_len: usize,
    /// Most `key=value` pairs.
    pub max_params: usize,
    /// Most values in an `in.(…)`, `columns=` or `on_conflict=` list.
    pub max_list_len: usize,
    /// Deepest `and`/`or` nesting.
    pub max_logic_depth: usize,
    /// Deepest embedding in `select=`.
    pub max_embed_depth: usize,
    /// Longest identifier, in bytes.
    pub max_identifier_len: usize,
    /// Most steps in a JSON path.
    pub max_json_path_len: usize,
    /// Longest header value read, in bytes.
    pub max_header_len: usize,
    /// Most keys in a payload object.
    pub max_payload_keys: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_query_len: DEFAULT_MAX_QUERY_LEN,
            max_params: DEFAULT_MAX_PARAMS,
            max_list_len: DEFAULT_MAX_LIST_LEN,
            max_logic_depth: DEFAULT_MAX_LOGIC_DEPTH,
            max_embed_depth: DEFAULT_MAX_EMBED_DEPTH,
            max_identifier_len: DEFAULT_MAX_IDENTIFIER_LEN,
            max_json_path_len: DEFAULT_MAX_JSON_PATH_LEN,
            max_header_len: DEFAULT_MAX_HEADER_LEN,
            max_payload_keys: DEFAULT_MAX_PAYLOAD_KEYS,
        }
    }
}
