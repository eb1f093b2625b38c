//! The one error vocabulary of Fluxbase. Every error a client can see has a [`Code`]; the
//! code decides, in one table, the HTTP status and the stable text that goes out as
//! `{"error":{"code": …}}` over HTTP and as the `code` of a WebSocket `error` frame.
//! Library errors implement [`ErrorCode`], so the HTTP layer turns any of them into a
//! response with `?` and the realtime codecs into a frame, without a second table that
//! could drift.
//!
//! It lives in the database crate because that crate is the foundation every other crate
//! of the workspace already stands on.

use std::time::Duration;

/// Declares [`Code`] and its table in one place: variant, HTTP status, stable text.
macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $status:literal, $text:literal;)+) => {
        /// What kind of error a client sees.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[$doc])* $variant,)+
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)+];

            /// The HTTP status of this code.
            pub const fn status(self) -> u16 {
                match self { $(Code::$variant => $status,)+ }
            }

            /// The stable text of this code (HTTP `error.code`, WebSocket `error.code`).
            pub const fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $text,)+ }
            }
        }
    };
}

codes! {
    // Requests and routing.
    /// No route or resource at this path.
    NotFound = 404, "not_found";
    /// The route exists, not with this method.
    MethodNotAllowed = 405, "method_not_allowed";
    /// The request is malformed (syntax, types, unknown fields).
    BadRequest = 400, "bad_request";
    /// The body is over `server.body_limit` (or a service's own limit).
    PayloadTooLarge = 413, "payload_too_large";
    /// The client took longer than `server.body_timeout` to send its request.
    RequestTimeout = 408, "request_timeout";
    /// The body's media type is not one this route accepts.
    UnsupportedMediaType = 415, "unsupported_media_type";
    /// None of the representations in `Accept` can be produced.
    NotAcceptable = 406, "not_acceptable";
    /// A `Range` that cannot be satisfied.
    RangeNotSatisfiable = 416, "range_not_satisfiable";
    /// A precondition header (`If-Match`…) did not hold.
    PreconditionFailed = 412, "precondition_failed";

    // Credentials and permissions.
    /// No credential where one is needed.
    Unauthorized = 401, "unauthorized";
    /// A token whose signature, algorithm or structure is wrong, or not yet valid.
    InvalidToken = 401, "invalid_token";
    /// The credential's token has expired.
    TokenExpired = 401, "token_expired";
    /// Authenticated, but not allowed.
    Forbidden = 403, "forbidden";
    /// Wrong email or password: one answer for both, so accounts cannot be enumerated.
    InvalidCredentials = 401, "invalid_credentials";
    /// A refresh token that is unknown, expired, already used, or of a revoked session.
    InvalidRefreshToken = 401, "invalid_refresh_token";
    /// A valid access token whose session was revoked (signed out, or deleted by SQL).
    SessionNotFound = 401, "session_not_found";
    /// A dashboard account locked after too many failed logins.
    AccountLocked = 423, "account_locked";
    /// A wrong, reused or expired 2FA code (TOTP or backup code).
    InvalidTwoFactorCode = 401, "invalid_2fa_code";
    /// A 2FA call out of order: enabling twice, enabling before setup, disabling when off.
    TwoFactorState = 409, "invalid_2fa_state";

    // Input rules and conflicts.
    /// Well-formed input that breaks a rule; the message names the field.
    ValidationFailed = 422, "validation_failed";
    /// A password that fails the password policy.
    WeakPassword = 422, "weak_password";
    /// Signup or email change to an email that is taken.
    UserAlreadyExists = 409, "user_already_exists";
    /// The resource's state or a uniqueness rule forbids this.
    Conflict = 409, "conflict";

    // Limits and availability.
    /// A rate limit was exceeded (with `Retry-After`).
    RateLimited = 429, "rate_limited";
    /// A connection limit (`realtime.max_connections*`) was reached.
    ConnectionLimit = 429, "connection_limit";
    /// Too many subscriptions or channels on one connection.
    TooManySubscriptions = 429, "too_many_subscriptions";
    /// The server is at capacity for this kind of work (with `Retry-After`).
    Overloaded = 503, "overloaded";
    /// A service that is turned off or not running.
    ServiceUnavailable = 503, "service_unavailable";
    /// The database cannot be reached.
    DatabaseUnavailable = 503, "database_unavailable";
    /// A statement ran past its time limit.
    Timeout = 504, "timeout";

    // Realtime frames and subscriptions.
    /// A frame that is not valid JSON.
    InvalidJson = 400, "invalid_json";
    /// A frame of a type the protocol does not know.
    UnknownType = 400, "unknown_type";
    /// A frame that breaks the protocol (missing fields, wrong types, binary frames).
    InvalidMessage = 400, "invalid_message";
    /// A subscription filter that does not parse.
    InvalidFilter = 400, "invalid_filter";
    /// A subscription event other than INSERT, UPDATE, DELETE or `*`.
    InvalidEvent = 400, "invalid_event";
    /// A table that does not exist or may not be subscribed to.
    UnknownTable = 404, "unknown_table";
    /// A column that does not exist in the table.
    UnknownColumn = 400, "unknown_column";
    /// A table without a primary key or replica identity (realtime cannot carry its changes).
    NoPrimaryKey = 400, "no_primary_key";

    /// A bug or an unexpected failure; details are in the server log only.
    Internal = 500, "internal_error";
}

impl Code {
    /// Whether the details of an error of this code stay in the server log: the client
    /// gets a fixed message instead of the error's text.
    pub const fn is_private(self) -> bool {
        matches!(self, Code::Internal | Code::DatabaseUnavailable)
    }

    /// The fixed message a client sees for a private code.
    pub const fn private_message(self) -> &'static str {
        match self {
            Code::DatabaseUnavailable => "the database is unavailable; try again",
            _ => "internal error",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Implemented by every library error a client can see: its [`Code`], and what the client
/// may read of it. Display stays the full text for the server log.
pub trait ErrorCode: std::error::Error {
    /// The vocabulary entry of this error.
    fn code(&self) -> Code;

    /// The message a client sees: the error's text, unless its code is private (then a
    /// fixed message: internals, SQL and causes stay in the log).
    fn client_message(&self) -> String {
        let code = self.code();
        if code.is_private() {
            code.private_message().to_string()
        } else {
            self.to_string()
        }
    }

    /// How long the client should wait before trying again (`Retry-After`), if it should.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_unique_snake_case_and_statuses_are_errors() {
        let mut texts: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        for text in &texts {
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{text}"
            );
        }
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), Code::ALL.len(), "two codes share a text");
        assert!(Code::ALL.iter().all(|c| (400..600).contains(&c.status())));
    }

    #[test]
    fn private_codes_hide_their_text() {
        #[derive(Debug, thiserror::Error)]
        #[error("relation \"secret_table\" does not exist")]
        struct Leaky;
        impl ErrorCode for Leaky {
            fn code(&self) -> Code {
                Code::Internal
            }
        }
        assert_eq!(Leaky.client_message(), "internal error");
    }
}
