//! Owner routing: when every permissive policy of a table requires `col = auth.uid()`, a
//! row can only be visible to contexts whose `sub` is the row's `col`, so the hub can look
//! the owner's subscriptions up by key instead of deciding for every subscriber.

use fluxbase_auth::{AuthContext, Role};
use serde_json::{Map, Value};

use super::value::parse_uuid;

/// The owner column of a table whose permissive policies all require `col = auth.uid()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerIndex {
    column: String,
}

/// Who may own a row, by the owner column's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOwner {
    /// Only contexts with this `auth.uid()` can see the row (if anyone).
    Owner(u128),
    /// The owner column is NULL: no routed context can see the row.
    Nobody,
    /// The column is absent from the decoded row (unchanged TOAST) or unreadable: route to
    /// every candidate and let the decider decide.
    Unknown,
}

impl OwnerIndex {
    /// The index of a column.
    pub fn new(column: String) -> OwnerIndex {
        OwnerIndex { column }
    }

    /// The owner column's name.
    pub fn column(&self) -> &str {
        &self.column
    }

    /// The row's owner key.
    pub fn row_owner(&self, row: &Map<String, Value>) -> RowOwner {
        match row.get(&self.column) {
            None => RowOwner::Unknown,
            Some(Value::Null) => RowOwner::Nobody,
            Some(Value::String(s)) => parse_uuid(s).map_or(RowOwner::Unknown, RowOwner::Owner),
            Some(_) => RowOwner::Unknown,
        }
    }

    /// A context's key: its `sub` as `auth.uid()` reads it. `None` (no `sub`, or one that
    /// is not a uuid and makes `auth.uid()` fail) means the context owns no row.
    pub fn context_owner(ctx: &AuthContext) -> Option<u128> {
        ctx.uid().and_then(parse_uuid)
    }
}

/// Owner routing for one table, valid for the roles listed: the roles for which the
/// table's policies apply (not bypassing RLS). Contexts of other roles (service_role, a
/// table owner, custom roles) must be decided whatever the row's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRoute {
    /// The owner column.
    pub index: OwnerIndex,
    /// Roles the routing is valid for.
    pub roles: Vec<Role>,
}

impl OwnerRoute {
    /// Whether this context may be routed by owner (otherwise decide it regardless).
    pub fn routes(&self, ctx: &AuthContext) -> bool {
        self.roles.contains(ctx.role())
    }

    /// Whether a routed context can possibly see a row with this owner; `true` for
    /// [`RowOwner::Unknown`].
    pub fn may_see(&self, ctx: &AuthContext, owner: RowOwner) -> bool {
        match owner {
            RowOwner::Unknown => true,
            RowOwner::Nobody => false,
            RowOwner::Owner(key) => OwnerIndex::context_owner(ctx) == Some(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_match_like_auth_uid() {
        let index = OwnerIndex::new("user_id".into());
        let row = json!({"user_id": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"});
        let owner = index.row_owner(row.as_object().unwrap());
        let ctx = AuthContext::from_claims(
            json!({"sub": "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "role": "authenticated"})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert_eq!(
            owner,
            RowOwner::Owner(OwnerIndex::context_owner(&ctx).unwrap())
        );
        assert_eq!(
            index.row_owner(json!({"user_id": null}).as_object().unwrap()),
            RowOwner::Nobody
        );
        assert_eq!(index.row_owner(&Map::new()), RowOwner::Unknown);
        let route = OwnerRoute {
            index,
            roles: vec![Role::Authenticated],
        };
        assert!(route.routes(&ctx));
        assert!(route.may_see(&ctx, owner));
        assert!(!route.routes(&AuthContext::service_role()));
        assert!(!route.may_see(&AuthContext::anon(), owner));
    }
}
