//! The identity a request or a socket acts as: a database role plus the JWT claims that
//! `auth.uid()`, `auth.role()` and `auth.jwt()` read.

use std::hash::{Hash, Hasher};

use serde_json::{Map, Value};

/// The database role a context switches to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    /// No token.
    Anon,
    /// A signed-in application user.
    Authenticated,
    /// The server's trusted context: bypasses RLS.
    ServiceRole,
    /// Any other role named in the token's `role` claim.
    Custom(String),
}

impl Role {
    /// Parses the `role` claim.
    pub fn from_claim(name: &str) -> Role {
        match name {
            "anon" => Role::Anon,
            "authenticated" => Role::Authenticated,
            "service_role" => Role::ServiceRole,
            other => Role::Custom(other.to_string()),
        }
    }

    /// The role's name in PostgreSQL.
    pub fn as_str(&self) -> &str {
        match self {
            Role::Anon => "anon",
            Role::Authenticated => "authenticated",
            Role::ServiceRole => "service_role",
            Role::Custom(name) => name,
        }
    }
}

/// Role + claims, with a fingerprint that groups identical contexts (all anon sockets share
/// one; a user's sockets share one).
#[derive(Debug, Clone)]
pub struct AuthContext {
    role: Role,
    claims: Map<String, Value>,
    fingerprint: u64,
}

impl PartialEq for AuthContext {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint && self.role == other.role
    }
}

impl Eq for AuthContext {}

impl AuthContext {
    /// The context of a request without a token.
    pub fn anon() -> Self {
        let mut claims = Map::new();
        claims.insert("role".into(), Value::String("anon".into()));
        Self::new(Role::Anon, claims)
    }

    /// The trusted server context.
    pub fn service_role() -> Self {
        let mut claims = Map::new();
        claims.insert("role".into(), Value::String("service_role".into()));
        Self::new(Role::ServiceRole, claims)
    }

    /// The context of verified claims: the role from the `role` claim (anon when absent).
    pub fn from_claims(claims: Map<String, Value>) -> Self {
        let role = claims
            .get("role")
            .and_then(Value::as_str)
            .map(Role::from_claim)
            .unwrap_or(Role::Anon);
        Self::new(role, claims)
    }

    fn new(role: Role, claims: Map<String, Value>) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        role.hash(&mut hasher);
        // serde_json's Map is ordered (BTreeMap without preserve_order): stable hashing.
        // Every claim takes part, `exp`, `iat`, `nbf` and `jti` included: a policy may read
        // any of them (`auth.jwt() ->> 'exp'`), so two tokens that differ anywhere must not
        // share a decision. Hashed once per token, not per change.
        for (key, value) in &claims {
            key.hash(&mut hasher);
            value.to_string().hash(&mut hasher);
        }
        AuthContext {
            role,
            claims,
            fingerprint: hasher.finish(),
        }
    }

    /// The role.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// All claims.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// One claim (`auth.jwt() -> 'name'`).
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }

    /// The `sub` claim (`auth.uid()`), if any.
    pub fn uid(&self) -> Option<&str> {
        self.claims.get("sub").and_then(Value::as_str)
    }

    /// Groups identical contexts: same role and exactly the same claims.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Whether RLS is bypassed.
    pub fn bypasses_rls(&self) -> bool {
        self.role == Role::ServiceRole
    }

    /// The claims as the JSON text for `set_config('request.jwt.claims', …)`.
    pub fn claims_json(&self) -> String {
        Value::Object(self.claims.clone()).to_string()
    }

    /// Expiry (`exp`, seconds since the epoch), if the token had one.
    pub fn expires_at(&self) -> Option<u64> {
        self.claims.get("exp").and_then(Value::as_u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(v: Value) -> AuthContext {
        AuthContext::from_claims(v.as_object().unwrap().clone())
    }

    #[test]
    fn fingerprint_groups_same_identity_and_separates_others() {
        let a1 = ctx(json!({"sub": "u1", "role": "authenticated", "exp": 100, "iat": 1}));
        let a1_again = ctx(json!({"iat": 1, "role": "authenticated", "exp": 100, "sub": "u1"}));
        let b = ctx(json!({"sub": "u2", "role": "authenticated", "exp": 100}));
        let c = ctx(json!({"sub": "u1", "role": "authenticated", "tenant": "x"}));
        assert_eq!(a1.fingerprint(), a1_again.fingerprint());
        // A policy may read any claim: tokens differing only in exp/iat/nbf/jti differ.
        for claim in ["exp", "iat", "nbf", "jti"] {
            let mut other = a1.claims().clone();
            other.insert(claim.into(), json!(999));
            assert_ne!(
                a1.fingerprint(),
                ctx(Value::Object(other)).fingerprint(),
                "{claim}"
            );
        }
        assert_ne!(a1.fingerprint(), b.fingerprint());
        assert_ne!(a1.fingerprint(), c.fingerprint());
        assert_eq!(
            AuthContext::anon().fingerprint(),
            AuthContext::anon().fingerprint()
        );
        assert_ne!(AuthContext::anon().fingerprint(), a1.fingerprint());
    }

    #[test]
    fn roles() {
        assert_eq!(ctx(json!({})).role(), &Role::Anon);
        assert_eq!(
            ctx(json!({"role": "service_role"})).role(),
            &Role::ServiceRole
        );
        assert!(AuthContext::service_role().bypasses_rls());
        assert_eq!(
            ctx(json!({"role": "editor"})).role(),
            &Role::Custom("editor".into())
        );
        assert_eq!(ctx(json!({"sub": "u"})).uid(), Some("u"));
    }
}
