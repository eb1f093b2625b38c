//! Row-level security policies, as text: realtime compiles the SELECT ones it can into
//! in-process predicates (and sends the rest to PostgreSQL); REST only needs to know they
//! exist, since PostgreSQL enforces them on every statement it runs as the caller.

/// Which commands a policy applies to (`pg_policy.polcmd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyCommand {
    /// `FOR ALL`.
    All,
    /// `FOR SELECT`.
    Select,
    /// `FOR INSERT`.
    Insert,
    /// `FOR UPDATE`.
    Update,
    /// `FOR DELETE`.
    Delete,
}

impl PolicyCommand {
    pub(super) fn from_polcmd(value: &str) -> PolicyCommand {
        match value {
            "r" => PolicyCommand::Select,
            "a" => PolicyCommand::Insert,
            "w" => PolicyCommand::Update,
            "d" => PolicyCommand::Delete,
            _ => PolicyCommand::All,
        }
    }

    /// Whether the policy governs which rows SELECT sees (`FOR SELECT` or `FOR ALL`).
    pub fn applies_to_select(self) -> bool {
        matches!(self, PolicyCommand::All | PolicyCommand::Select)
    }
}

/// One policy on one relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// OID of the relation it protects.
    pub relation: u32,
    /// Policy name (unique per relation).
    pub name: String,
    /// Commands it applies to.
    pub command: PolicyCommand,
    /// `AS PERMISSIVE` (any permissive policy may allow) rather than `AS RESTRICTIVE`
    /// (every restrictive policy must allow).
    pub permissive: bool,
    /// Roles it applies to, in declaration order; `public` for everyone.
    pub roles: Vec<String>,
    /// The `USING` expression as `pg_get_expr` prints it.
    pub using: Option<String>,
    /// The `WITH CHECK` expression as `pg_get_expr` prints it.
    pub with_check: Option<String>,
}

impl Policy {
    /// Whether it applies to `role` (named, or through `public`). Membership in other
    /// roles is not followed: the API roles are NOINHERIT.
    pub fn applies_to_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == "public" || r == role)
    }
}
