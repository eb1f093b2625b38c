//! Table policies read from the catalog and combined as PostgreSQL combines them, plus the
//! per-(role, table) facts a decision needs: whether the role may SELECT at all, bypasses
//! RLS, and which policies apply to it.

use std::collections::HashMap;
use std::sync::Arc;

use fluxbase_auth::AuthContext;
use tokio_postgres::Client;

use super::RlsError;
use super::image::RowRef;
use super::owner::OwnerIndex;
use super::parser;
use super::predicate::{
    self, AuthUse, CmpOp, Collation, ColumnInfo, CompileEnv, EvalInput, Operand, Predicate, Truth,
};
use super::value::{CmpKind, SqlType};

/// A relation to load, by OID or by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RelationRef {
    /// The table's OID (the relation id replication reports).
    Oid(u32),
    /// Schema and table name, as in the catalog (no quoting).
    Name { schema: String, table: String },
}

/// One SELECT-relevant policy (`FOR SELECT` or `FOR ALL` with a `USING` expression).
#[derive(Debug, Clone)]
pub struct Policy {
    /// `pg_policy.oid`.
    pub oid: u32,
    /// Policy name.
    pub name: String,
    /// Permissive (ORed) or restrictive (ANDed).
    pub permissive: bool,
    /// Role OIDs it applies to; 0 is PUBLIC.
    pub roles: Vec<u32>,
    /// The `USING` expression as `pg_get_expr` prints it.
    pub qual: String,
    /// The compiled expression (opaque parts fall back to SQL).
    pub predicate: Predicate,
    /// The `auth.*` functions its compiled parts call.
    pub auth_use: AuthUse,
}

impl Policy {
    /// Whether the whole expression compiled (no SQL fallback needed for it).
    pub fn fully_compiled(&self) -> bool {
        self.predicate.opaque_reasons().is_empty()
    }
}

/// Everything known about one table's row security.
#[derive(Debug, Clone)]
pub struct TablePolicies {
    /// Table OID.
    pub relid: u32,
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// `relrowsecurity`: without it every role with SELECT sees every row.
    pub rls_enabled: bool,
    /// `relforcerowsecurity`: policies apply to the owner too.
    pub rls_forced: bool,
    /// SELECT-relevant policies, in name order (PostgreSQL's order for ORing them).
    pub policies: Vec<Policy>,
    /// Owner routing, when every permissive policy requires `col = auth.uid()`.
    pub owner_index: Option<OwnerIndex>,
    /// The table's live columns: an image lacking one cannot go to the SQL fallback.
    pub columns: Vec<String>,
    /// Their types and collations (filters are bound to them).
    pub column_info: Vec<ColumnInfo>,
}

/// A decision before SQL: allowed, denied, or only SQL can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Visible.
    Allow,
    /// Not visible.
    Deny,
    /// Needs the SQL fallback.
    NeedsSql,
}

/// What a role may do on one table, read once per (role, table) and policy generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAccess {
    /// The role exists and the session user may `SET ROLE` to it (otherwise that fails:
    /// nothing is visible).
    pub exists: bool,
    /// SELECT on the table and USAGE on its schema.
    pub can_select: bool,
    /// Superuser, BYPASSRLS, or owner of a table without FORCE ROW LEVEL SECURITY.
    pub bypasses_rls: bool,
    /// OIDs of the policies that apply to the role (PUBLIC or a role it has the
    /// privileges of).
    pub applicable: Vec<u32>,
    /// The `auth.*` functions the role may call (USAGE on schema `auth`, EXECUTE on the
    /// function and on `auth.jwt()` which `uid()` and `role()` inline).
    pub auth_callable: AuthUse,
}

impl RoleAccess {
    /// The facts for a role that does not exist.
    pub fn missing() -> RoleAccess {
        RoleAccess {
            exists: false,
            can_select: false,
            bypasses_rls: false,
            applicable: Vec::new(),
            auth_callable: AuthUse::default(),
        }
    }
}

impl TablePolicies {
    /// Compiles the policies of one table.
    pub fn new(
        relid: u32,
        schema: String,
        table: String,
        rls_enabled: bool,
        rls_forced: bool,
        mut raw: Vec<RawPolicy>,
        env: &CompileEnv,
    ) -> TablePolicies {
        raw.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        let policies: Vec<Policy> = raw
            .into_iter()
            .map(|p| {
                let predicate = match parser::parse(&p.qual) {
                    Ok(expr) => predicate::compile(&expr, env),
                    Err(err) => Predicate::Opaque(err.to_string()),
                };
                Policy {
                    auth_use: predicate.auth_use(),
                    oid: p.oid,
                    name: p.name,
                    permissive: p.permissive,
                    roles: p.roles,
                    qual: p.qual,
                    predicate,
                }
            })
            .collect();
        let owner_index = owner_column(&policies).map(OwnerIndex::new);
        TablePolicies {
            relid,
            schema,
            table,
            rls_enabled,
            rls_forced,
            policies,
            owner_index,
            columns: env.columns.iter().map(|c| c.name.clone()).collect(),
            column_info: env.columns.clone(),
        }
    }

    /// The columns a decision on this table may read: those of its compiled policies, or
    /// every column when a policy is opaque (only SQL knows what it reads). Empty without
    /// RLS.
    pub fn columns_read(&self) -> Vec<String> {
        if !self.rls_enabled {
            return Vec::new();
        }
        let mut out: Vec<String> = Vec::new();
        for policy in &self.policies {
            match policy.predicate.columns() {
                Some(columns) => out.extend(columns.into_iter().map(str::to_string)),
                None => return self.columns.clone(),
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Whether RLS filters rows for a role with these facts.
    pub fn rls_applies(&self, access: &RoleAccess) -> bool {
        self.rls_enabled && !access.bypasses_rls
    }

    /// Evaluates the applicable policies on a row for a context whose role is subject to
    /// RLS: visible iff some permissive policy is true and every restrictive one is; no
    /// applicable permissive policy means nothing is visible.
    pub fn evaluate(&self, access: &RoleAccess, row: RowRef<'_>, ctx: &AuthContext) -> Verdict {
        let input = EvalInput {
            row,
            claims: ctx.claims(),
            auth_callable: access.auth_callable,
        };
        let applicable = self
            .policies
            .iter()
            .filter(|p| access.applicable.contains(&p.oid));
        // PostgreSQL inlines auth.uid()/role()/jwt() while planning, checking the role's
        // privileges then: calling one the role may not call fails the whole query, unless
        // constant folding dropped that branch first (`… OR true`). Such calls evaluate as
        // unknown, so a denial stands either way, but an allow must be confirmed by SQL.
        let blocked = applicable
            .clone()
            .any(|p| !access.auth_callable.covers(p.auth_use));
        let mut permissive = Vec::new();
        let mut restrictive = Vec::new();
        for policy in applicable {
            let truth = policy.predicate.eval(input);
            if policy.permissive {
                permissive.push(truth);
            } else {
                restrictive.push(truth);
            }
        }
        match Truth::all([Truth::any(permissive), Truth::all(restrictive)]) {
            Truth::True if blocked => Verdict::NeedsSql,
            Truth::True => Verdict::Allow,
            Truth::False | Truth::Null => Verdict::Deny,
            Truth::Unknown => Verdict::NeedsSql,
        }
    }
}

/// The column `c` when every permissive policy has a top-level conjunct `c = auth.uid()`
/// with `c` a uuid column, the same `c` in all of them.
fn owner_column(policies: &[Policy]) -> Option<String> {
    let mut column: Option<&str> = None;
    let mut any = false;
    for policy in policies.iter().filter(|p| p.permissive) {
        any = true;
        let conjuncts: &[Predicate] = match &policy.predicate {
            Predicate::And(items) => items,
            single => std::slice::from_ref(single),
        };
        let found = conjuncts.iter().find_map(|p| match p {
            Predicate::Compare {
                op: CmpOp::Eq,
                kind: CmpKind::Uuid,
                left,
                right,
            } => match (left, right) {
                (
                    Operand::Column {
                        name,
                        ty: SqlType::Uuid,
                    },
                    Operand::Uid,
                )
                | (
                    Operand::Uid,
                    Operand::Column {
                        name,
                        ty: SqlType::Uuid,
                    },
                ) => Some(name.as_str()),
                _ => None,
            },
            _ => None,
        })?;
        if column.is_some_and(|c| c != found) {
            return None;
        }
        column = Some(found);
    }
    column.filter(|_| any).map(str::to_string)
}

/// A policy row as read from `pg_policy`, before compiling.
#[derive(Debug, Clone)]
pub struct RawPolicy {
    /// `pg_policy.oid`.
    pub oid: u32,
    /// Name.
    pub name: String,
    /// Permissive or restrictive.
    pub permissive: bool,
    /// Role OIDs (0 = PUBLIC).
    pub roles: Vec<u32>,
    /// `pg_get_expr(polqual, polrelid)`.
    pub qual: String,
}

/// The loaded tables.
#[derive(Debug, Default, Clone)]
pub struct PolicySet {
    tables: HashMap<u32, Arc<TablePolicies>>,
}

impl PolicySet {
    /// A table by OID.
    pub fn table(&self, relid: u32) -> Option<&Arc<TablePolicies>> {
        self.tables.get(&relid)
    }

    /// All loaded tables.
    pub fn tables(&self) -> impl Iterator<Item = &Arc<TablePolicies>> {
        self.tables.values()
    }

    /// Adds or replaces tables.
    pub fn extend(&mut self, other: PolicySet) {
        self.tables.extend(other.tables);
    }

    /// Reads the given relations' RLS flags, columns and SELECT policies from the catalog
    /// and compiles them. Relations that do not exist are skipped.
    pub async fn load(client: &Client, relations: &[RelationRef]) -> Result<PolicySet, RlsError> {
        let mut oids = Vec::new();
        let (mut schemas, mut names) = (Vec::new(), Vec::new());
        for relation in relations {
            match relation {
                RelationRef::Oid(oid) => oids.push(*oid),
                RelationRef::Name { schema, table } => {
                    schemas.push(schema.as_str());
                    names.push(table.as_str());
                }
            }
        }
        let db = client
            .query_one(
                "SELECT datcollate::text, to_jsonb(d) ->> 'datlocprovider'
                 FROM pg_catalog.pg_database d WHERE datname = current_database()",
                &[],
            )
            .await
            .map_err(RlsError::catalog("read the database collation"))?;
        let provider: Option<String> = db.get(1);
        let default_collation = Collation {
            bytewise_order: provider.as_deref().is_none_or(|p| p == "c")
                && is_c_locale(db.get::<_, String>(0).as_str()),
            // PostgreSQL requires database default collations to be deterministic.
            deterministic: true,
        };
        let rows = client
            .query(
                "SELECT c.oid, n.nspname::text, c.relname::text, c.relrowsecurity, c.relforcerowsecurity
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.oid = ANY($1::oid[])
                    OR EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[]) AS r(s, t)
                               WHERE r.s = n.nspname AND r.t = c.relname)",
                &[&oids, &schemas, &names],
            )
            .await
            .map_err(RlsError::catalog("read tables"))?;
        let relids: Vec<u32> = rows.iter().map(|r| r.get(0)).collect();
        let columns = load_columns(client, &relids, default_collation).await?;
        let mut policies = load_policies(client, &relids).await?;
        let mut tables = HashMap::new();
        for row in rows {
            let relid: u32 = row.get(0);
            let env = CompileEnv {
                columns: columns.get(&relid).cloned().unwrap_or_default(),
                default_collation,
            };
            let table = TablePolicies::new(
                relid,
                row.get(1),
                row.get(2),
                row.get(3),
                row.get(4),
                policies.remove(&relid).unwrap_or_default(),
                &env,
            );
            tables.insert(relid, Arc::new(table));
        }
        Ok(PolicySet { tables })
    }
}

/// Whether a libc locale name is the C locale (bytewise `strcmp` ordering).
fn is_c_locale(name: &str) -> bool {
    matches!(name, "C" | "POSIX")
}

async fn load_columns(
    client: &Client,
    relids: &[u32],
    default_collation: Collation,
) -> Result<HashMap<u32, Vec<ColumnInfo>>, RlsError> {
    let rows = client
        .query(
            "SELECT a.attrelid, a.attname::text, a.atttypid, t.typname::text, a.attcollation,
                    co.collprovider::text, coalesce(co.collcollate, ''), co.collisdeterministic
             FROM pg_catalog.pg_attribute a
             JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
             LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
             WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped",
            &[&relids],
        )
        .await
        .map_err(RlsError::catalog("read columns"))?;
    let mut out: HashMap<u32, Vec<ColumnInfo>> = HashMap::new();
    for row in rows {
        let collation_oid: u32 = row.get(4);
        // 100 is the database default; 950 and 951 are C and POSIX.
        let collation = match collation_oid {
            0 | 100 => default_collation,
            950 | 951 => Collation::C,
            _ => Collation {
                bytewise_order: row.get::<_, Option<String>>(5).as_deref() == Some("c")
                    && is_c_locale(row.get::<_, String>(6).as_str()),
                deterministic: row.get::<_, Option<bool>>(7).unwrap_or(false),
            },
        };
        out.entry(row.get(0)).or_default().push(ColumnInfo {
            name: row.get(1),
            ty: SqlType::from_oid(row.get(2), row.get::<_, String>(3).as_str()),
            collation,
        });
    }
    Ok(out)
}

async fn load_policies(
    client: &Client,
    relids: &[u32],
) -> Result<HashMap<u32, Vec<RawPolicy>>, RlsError> {
    // A policy without USING is ignored for SELECT (its WITH CHECK does not filter reads).
    let rows = client
        .query(
            "SELECT p.oid, p.polrelid, p.polname::text, p.polpermissive, p.polroles,
                    pg_catalog.pg_get_expr(p.polqual, p.polrelid)
             FROM pg_catalog.pg_policy p
             WHERE p.polrelid = ANY($1::oid[]) AND p.polcmd IN ('r', '*')
               AND p.polqual IS NOT NULL",
            &[&relids],
        )
        .await
        .map_err(RlsError::catalog("read policies"))?;
    let mut out: HashMap<u32, Vec<RawPolicy>> = HashMap::new();
    for row in rows {
        out.entry(row.get(1)).or_default().push(RawPolicy {
            oid: row.get(0),
            name: row.get(2),
            permissive: row.get(3),
            roles: row.get(4),
            qual: row.get(5),
        });
    }
    Ok(out)
}

/// Reads [`RoleAccess`] for several roles on one table in one query. Roles that do not
/// exist, or that this connection's session user cannot `SET ROLE` to, get
/// [`RoleAccess::missing`]; a table that no longer exists gives every role `missing` too
/// (nothing can be selected from it).
pub async fn load_access(
    client: &Client,
    relid: u32,
    roles: &[&str],
) -> Result<HashMap<String, RoleAccess>, RlsError> {
    let rows = client
        .query(
            "SELECT r.rolname::text,
                    r.rolsuper OR r.rolbypassrls
                      OR (pg_catalog.pg_has_role(r.oid, c.relowner, 'USAGE')
                          AND NOT c.relforcerowsecurity),
                    pg_catalog.has_table_privilege(r.oid, c.oid, 'SELECT')
                      AND pg_catalog.has_schema_privilege(r.oid, c.relnamespace, 'USAGE'),
                    ARRAY(SELECT p.oid FROM pg_catalog.pg_policy p
                          WHERE p.polrelid = c.oid
                            AND EXISTS (SELECT 1 FROM unnest(p.polroles) AS pr(roleid)
                                        WHERE CASE WHEN pr.roleid = 0 THEN true
                                              ELSE pg_catalog.pg_has_role(r.oid, pr.roleid, 'USAGE')
                                              END)),
                    coalesce(pg_catalog.has_schema_privilege(r.oid, a.nsp, 'USAGE'), false),
                    coalesce(pg_catalog.has_function_privilege(r.oid, a.uid, 'EXECUTE'), false),
                    coalesce(pg_catalog.has_function_privilege(r.oid, a.role, 'EXECUTE'), false),
                    coalesce(pg_catalog.has_function_privilege(r.oid, a.jwt, 'EXECUTE'), false)
             FROM pg_catalog.pg_roles r CROSS JOIN pg_catalog.pg_class c
             CROSS JOIN (SELECT pg_catalog.to_regnamespace('auth')::oid AS nsp,
                                pg_catalog.to_regprocedure('auth.uid()')::oid AS uid,
                                pg_catalog.to_regprocedure('auth.role()')::oid AS role,
                                pg_catalog.to_regprocedure('auth.jwt()')::oid AS jwt) a
             WHERE r.rolname = ANY($1::text[]) AND c.oid = $2::oid
               -- SET ROLE needs the session user to be a member: a role the server cannot
               -- assume cannot read anything through it.
               AND pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER')",
            &[&roles, &relid],
        )
        .await
        .map_err(RlsError::catalog("read role privileges"))?;
    let mut out: HashMap<String, RoleAccess> = roles
        .iter()
        .map(|r| (r.to_string(), RoleAccess::missing()))
        .collect();
    for row in rows {
        out.insert(
            row.get(0),
            RoleAccess {
                exists: true,
                bypasses_rls: row.get(1),
                can_select: row.get(2),
                applicable: row.get(3),
                auth_callable: {
                    let (usage, uid, role, jwt): (bool, bool, bool, bool) =
                        (row.get(4), row.get(5), row.get(6), row.get(7));
                    AuthUse {
                        uid: usage && uid && jwt,
                        role: usage && role && jwt,
                        jwt: usage && jwt,
                    }
                },
            },
        );
    }
    Ok(out)
}
