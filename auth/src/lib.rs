//! fluxbase-auth: passwords (argon2id, bcrypt verify), JWT, sessions and refresh rotation,
//! TOTP and backup codes, service keys, and the `AuthContext` (role + claims) of a request.
//!
//! Nothing is implemented here yet: application and dashboard auth are issue 6, token
//! verification for realtime issue 4.
