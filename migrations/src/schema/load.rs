//! Reading the catalog into a [`Schema`]: one query per kind of object (types, schemas,
//! relations, columns, keys, foreign keys, functions, policies), pipelined in one
//! read-only repeatable-read transaction so they see one consistent catalog, whatever the
//! number of tables. Names are resolved (attnums, type OIDs) in memory afterwards.

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use tokio_postgres::{Client, IsolationLevel, Row, Transaction};

use super::function::{ArgMode, Function, FunctionArg, ReturnType, Volatility};
use super::policy::{Policy, PolicyCommand};
use super::relation::{Column, Identity, Relation, RelationKind, ReplicaIdentity, UniqueKey};
use super::relationship::{self, ForeignKey};
use super::snapshot::{Namespace, Schema};
use super::types::{RawType, TypeTable};

/// Why a schema could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// No connection to read it with.
    #[error("cannot connect to PostgreSQL to read the schema: {0}")]
    Connect(#[source] tokio_postgres::Error),
    /// A catalog query failed.
    #[error("reading the schema ({what}) failed: {source}")]
    Query {
        /// Which kind of object was being read.
        what: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
}

/// The schemas the cache leaves out, as a predicate on `pg_namespace n`.
macro_rules! user_schema {
    () => {
        "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
         AND n.nspname !~ '^pg_(toast_)?temp_'"
    };
}

/// `pg_type.oid` of `void` and `record` (fixed in `pg_type.dat`).
const VOID_OID: u32 = 2278;
const RECORD_OID: u32 = 2249;

/// Every type: columns and arguments are resolved against it in memory.
const TYPES: &str = "
SELECT t.oid, format_type(t.oid, NULL), t.typtype::text, t.typbasetype, t.typtypmod,
       CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END,
       CASE WHEN t.typelem <> 0 AND t.typlen = -1 THEN t.typelem ELSE 0 END::oid,
       t.typrelid,
       CASE WHEN t.typtype = 'e' THEN ARRAY(SELECT e.enumlabel::text FROM pg_enum e
                                          WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) END
FROM pg_type t";

const NAMESPACES: &str = concat!(
    "SELECT n.oid, n.nspname::text, d.description
     FROM pg_namespace n
     LEFT JOIN pg_description d
       ON d.objoid = n.oid AND d.classoid = 'pg_namespace'::regclass AND d.objsubid = 0
     WHERE ",
    user_schema!()
);

/// Updatability only asks `pg_relation_is_updatable` where the answer is not fixed: views,
/// and foreign tables whose wrapper has a handler (without one the function errors).
const RELATIONS: &str = concat!(
    "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text, d.description,
            c.relrowsecurity, c.relforcerowsecurity, c.relreplident::text,
            c.relkind IN ('r', 'p') AND CASE c.relreplident
              WHEN 'f' THEN true WHEN 'i' THEN true
              WHEN 'd' THEN EXISTS (SELECT 1 FROM pg_index i
                                    WHERE i.indrelid = c.oid AND i.indisprimary)
              ELSE false END,
            c.relispartition,
            CASE WHEN c.relkind IN ('r', 'p') THEN 28
                 WHEN c.relkind = 'v' THEN pg_relation_is_updatable(c.oid, true)
                 WHEN c.relkind = 'f' AND EXISTS (
                   SELECT 1 FROM pg_foreign_table ft
                   JOIN pg_foreign_server s ON s.oid = ft.ftserver
                   JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
                   WHERE ft.ftrelid = c.oid AND w.fdwhandler <> 0)
                 THEN pg_relation_is_updatable(c.oid, true)
                 ELSE 0 END
     FROM pg_class c
     JOIN pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_description d
       ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0
     WHERE c.relkind IN ('r', 'v', 'm', 'f', 'p') AND ",
    user_schema!()
);

/// `max_length` is computed from `atttypmod` in memory (through domains): the
/// `information_schema` helpers cost more than the rest of this query together.
const COLUMNS: &str = concat!(
    "SELECT a.attrelid, a.attnum, a.attname::text, a.atttypid, format_type(a.atttypid, a.atttypmod),
            NOT a.attnotnull,
            CASE WHEN a.attgenerated = '' THEN pg_get_expr(ad.adbin, ad.adrelid) END,
            a.attidentity::text, a.attgenerated <> '',
            a.atttypmod, d.description
     FROM pg_attribute a
     JOIN pg_class c ON c.oid = a.attrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
     LEFT JOIN pg_description d
       ON d.objoid = a.attrelid AND d.classoid = 'pg_class'::regclass AND d.objsubid = a.attnum
     WHERE a.attnum > 0 AND NOT a.attisdropped
       AND c.relkind IN ('r', 'v', 'm', 'f', 'p') AND ",
    user_schema!(),
    " ORDER BY a.attrelid, a.attnum"
);

/// Primary keys and unique indexes usable as conflict targets (no expression, no
/// predicate); INCLUDE columns are not key columns.
const KEYS: &str = concat!(
    "SELECT i.indrelid, ic.relname::text, i.indisprimary,
            (i.indkey::int2[])[0:i.indnkeyatts - 1],
            EXISTS (SELECT 1 FROM pg_constraint k
                    WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid
                      AND k.contype IN ('p', 'u'))
     FROM pg_index i
     JOIN pg_class ic ON ic.oid = i.indexrelid
     JOIN pg_class c ON c.oid = i.indrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL AND ",
    user_schema!()
);

/// Foreign keys as declared (the copies PostgreSQL makes on partitions are left out).
const FOREIGN_KEYS: &str = concat!(
    "SELECT k.conname::text, k.conrelid, k.conkey, k.confrelid, k.confkey
     FROM pg_constraint k
     JOIN pg_class c ON c.oid = k.conrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE k.contype = 'f' AND k.conparentid = 0 AND ",
    user_schema!()
);

/// Plain functions only; trigger functions cannot be called.
const FUNCTIONS: &str = concat!(
    "SELECT p.oid, n.nspname::text, p.proname::text,
            coalesce(p.proallargtypes, p.proargtypes::oid[]), p.proargmodes::text[], p.proargnames,
            p.pronargdefaults, p.prorettype, p.proretset, p.provolatile::text, p.prosecdef,
            d.description
     FROM pg_proc p
     JOIN pg_namespace n ON n.oid = p.pronamespace
     LEFT JOIN pg_description d
       ON d.objoid = p.oid AND d.classoid = 'pg_proc'::regclass AND d.objsubid = 0
     WHERE p.prokind = 'f'
       AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype) AND ",
    user_schema!()
);

const POLICIES: &str = concat!(
    "SELECT pol.polrelid, pol.polname::text, pol.polcmd::text, pol.polpermissive,
            ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END
                  FROM unnest(pol.polroles) WITH ORDINALITY AS u(r, i) ORDER BY i),
            pg_get_expr(pol.polqual, pol.polrelid), pg_get_expr(pol.polwithcheck, pol.polrelid)
     FROM pg_policy pol
     JOIN pg_class c ON c.oid = pol.polrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE ",
    user_schema!(),
    " ORDER BY pol.polrelid, pol.polname"
);

impl Schema {
    /// Reads the whole user schema through `client` (version 0: a cache numbers its own).
    pub async fn load(client: &mut Client) -> Result<Schema, SchemaError> {
        let started = Instant::now();
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|source| SchemaError::Query {
                what: "transaction",
                source,
            })?;
        // Issued together: tokio-postgres pipelines them on the one connection.
        let (types, schemas, relations, columns, keys, fkeys, procs, policies) = tokio::try_join!(
            query(&tx, "types", TYPES),
            query(&tx, "schemas", NAMESPACES),
            query(&tx, "relations", RELATIONS),
            query(&tx, "columns", COLUMNS),
            query(&tx, "keys", KEYS),
            query(&tx, "foreign keys", FOREIGN_KEYS),
            query(&tx, "functions", FUNCTIONS),
            query(&tx, "policies", POLICIES),
        )?;
        tx.commit().await.map_err(|source| SchemaError::Query {
            what: "transaction",
            source,
        })?;
        let types = type_table(&types);
        let mut schema = Schema {
            version: 0,
            loaded_at: SystemTime::now(),
            load_duration: Default::default(),
            namespaces: namespaces_from(&schemas),
            relations: Vec::new(),
            relations_by_name: HashMap::new(),
            relations_by_oid: HashMap::new(),
            functions: Vec::new(),
            functions_by_name: HashMap::new(),
        };
        schema.set_relations(&types, &relations, &columns);
        schema.add_keys(&keys, &fkeys);
        schema.add_policies(&policies);
        relationship::derive(&mut schema.relations, &schema.relations_by_oid);
        schema.set_functions(&types, &procs);
        schema.loaded_at = SystemTime::now();
        schema.load_duration = started.elapsed();
        Ok(schema)
    }

    fn set_relations(&mut self, types: &TypeTable, relations: &[Row], columns: &[Row]) {
        let mut list: Vec<Relation> = relations
            .iter()
            .filter_map(|row| {
                let kind = RelationKind::from_relkind(row.get::<_, &str>(3))?;
                let mut r = Relation::empty(row.get(0), row.get(1), row.get(2), kind);
                r.comment = row.get(4);
                r.rls_enabled = row.get(5);
                r.rls_forced = row.get(6);
                r.replica_identity = ReplicaIdentity::from_relreplident(row.get(7));
                r.has_replica_identity = row.get(8);
                r.is_partition = row.get(9);
                // pg_relation_is_updatable's bits: 1 << CMD_UPDATE (2), CMD_INSERT (3),
                // CMD_DELETE (4).
                let mask: i32 = row.get::<_, Option<i32>>(10).unwrap_or(0);
                r.insertable = mask & (1 << 3) != 0;
                r.updatable = mask & (1 << 2) != 0;
                r.deletable = mask & (1 << 4) != 0;
                Some(r)
            })
            .collect();
        list.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        self.relations_by_oid = list.iter().enumerate().map(|(i, r)| (r.oid, i)).collect();
        for row in columns {
            let Some(&index) = self.relations_by_oid.get(&row.get::<_, u32>(0)) else {
                continue;
            };
            let identity = match row.get::<_, &str>(7) {
                "a" => Some(Identity::Always),
                "d" => Some(Identity::ByDefault),
                _ => None,
            };
            list[index].push_column(Column {
                name: row.get(2),
                attnum: row.get(1),
                data_type: types.resolve(row.get(3), row.get(4)),
                nullable: row.get(5),
                default: row.get(6),
                identity,
                generated: row.get(8),
                max_length: types.max_length(row.get(3), row.get(9)),
                comment: row.get(10),
            });
        }
        for (index, relation) in list.iter().enumerate() {
            self.relations_by_name
                .entry(relation.schema.clone())
                .or_default()
                .insert(relation.name.clone(), index);
        }
        self.relations = list;
    }

    fn add_keys(&mut self, keys: &[Row], foreign_keys: &[Row]) {
        for row in keys {
            let Some(&index) = self.relations_by_oid.get(&row.get::<_, u32>(0)) else {
                continue;
            };
            let relation = &mut self.relations[index];
            let Some(columns) = names_at(relation, &row.get::<_, Vec<i16>>(3)) else {
                continue;
            };
            let key = UniqueKey {
                name: row.get(1),
                columns,
                is_constraint: row.get(4),
            };
            if row.get(2) {
                relation.primary_key = Some(key);
            } else {
                relation.unique_keys.push(key);
            }
        }
        for relation in &mut self.relations {
            relation.unique_keys.sort_by(|a, b| a.name.cmp(&b.name));
        }
        for row in foreign_keys {
            let (Some(&source), Some(&target)) = (
                self.relations_by_oid.get(&row.get::<_, u32>(1)),
                self.relations_by_oid.get(&row.get::<_, u32>(3)),
            ) else {
                continue;
            };
            let (Some(columns), Some(foreign_columns)) = (
                names_at(&self.relations[source], &row.get::<_, Vec<i16>>(2)),
                names_at(&self.relations[target], &row.get::<_, Vec<i16>>(4)),
            ) else {
                continue;
            };
            let target = &self.relations[target];
            let fk = ForeignKey {
                name: row.get(0),
                columns,
                foreign_relation: target.oid,
                foreign_schema: target.schema.clone(),
                foreign_name: target.name.clone(),
                foreign_columns,
            };
            self.relations[source].foreign_keys.push(fk);
        }
        for relation in &mut self.relations {
            relation.foreign_keys.sort_by(|a, b| a.name.cmp(&b.name));
        }
    }

    fn add_policies(&mut self, policies: &[Row]) {
        for row in policies {
            let relation: u32 = row.get(0);
            let Some(&index) = self.relations_by_oid.get(&relation) else {
                continue;
            };
            self.relations[index].policies.push(Policy {
                relation,
                name: row.get(1),
                command: PolicyCommand::from_polcmd(row.get(2)),
                permissive: row.get(3),
                roles: row.get(4),
                using: row.get(5),
                with_check: row.get(6),
            });
        }
    }

    fn set_functions(&mut self, types: &TypeTable, rows: &[Row]) {
        let mut functions: Vec<Function> =
            rows.iter().map(|row| self.function(types, row)).collect();
        functions.sort_by(|a, b| (&a.schema, &a.name, a.oid).cmp(&(&b.schema, &b.name, b.oid)));
        let mut start = 0;
        while start < functions.len() {
            let (schema, name) = (&functions[start].schema, &functions[start].name);
            let end = start
                + functions[start..]
                    .iter()
                    .take_while(|f| &f.schema == schema && &f.name == name)
                    .count();
            self.functions_by_name
                .entry(schema.clone())
                .or_default()
                .insert(name.clone(), start..end);
            start = end;
        }
        self.functions = functions;
    }

    fn function(&self, types: &TypeTable, row: &Row) -> Function {
        let arg_types: Vec<u32> = row.get(3);
        let modes: Option<Vec<String>> = row.get(4);
        let names: Option<Vec<String>> = row.get(5);
        let mut args: Vec<FunctionArg> = arg_types
            .iter()
            .enumerate()
            .map(|(i, &oid)| FunctionArg {
                name: names
                    .as_ref()
                    .and_then(|n| n.get(i).cloned())
                    .unwrap_or_default(),
                data_type: types.resolve_oid(oid),
                mode: modes
                    .as_ref()
                    .and_then(|m| m.get(i))
                    .map_or(ArgMode::In, |m| ArgMode::from_proargmode(m)),
                has_default: false,
            })
            .collect();
        // Defaults belong to the last `pronargdefaults` inputs.
        let defaults = usize::try_from(row.get::<_, i16>(6)).unwrap_or(0);
        for arg in args
            .iter_mut()
            .rev()
            .filter(|a| a.mode.is_input())
            .take(defaults)
        {
            arg.has_default = true;
        }
        let rettype: u32 = row.get(7);
        let return_type = types.resolve_oid(rettype);
        let outputs = |keep: fn(ArgMode) -> bool| -> Vec<FunctionArg> {
            args.iter().filter(|a| keep(a.mode)).cloned().collect()
        };
        let returns = if rettype == VOID_OID {
            ReturnType::Void
        } else if args.iter().any(|a| a.mode == ArgMode::Table) {
            ReturnType::Table(outputs(|m| m == ArgMode::Table))
        } else if rettype == RECORD_OID && args.iter().any(|a| a.mode.is_output()) {
            ReturnType::Table(outputs(ArgMode::is_output))
        } else if let Some(relid) = types.relid(rettype) {
            ReturnType::Composite {
                data_type: return_type.clone(),
                relation: self.relations_by_oid.contains_key(&relid).then_some(relid),
            }
        } else {
            ReturnType::Scalar(return_type.clone())
        };
        Function {
            oid: row.get(0),
            schema: row.get(1),
            name: row.get(2),
            args,
            defaults,
            return_type,
            returns,
            returns_set: row.get(8),
            volatility: Volatility::from_provolatile(row.get(9)),
            security_definer: row.get(10),
            comment: row.get(11),
        }
    }
}

async fn query(
    tx: &Transaction<'_>,
    what: &'static str,
    sql: &str,
) -> Result<Vec<Row>, SchemaError> {
    tx.query(sql, &[])
        .await
        .map_err(|source| SchemaError::Query { what, source })
}

fn type_table(rows: &[Row]) -> TypeTable {
    let types = rows
        .iter()
        .map(|row| {
            let typtype: &str = row.get(2);
            let raw = RawType {
                name: row.get(1),
                typtype: typtype.bytes().next().unwrap_or(b'b'),
                base: row.get(3),
                typmod: row.get(4),
                base_name: row.get(5),
                element: row.get(6),
                relid: row.get(7),
                labels: row.get::<_, Option<Vec<String>>>(8).unwrap_or_default(),
            };
            (row.get::<_, u32>(0), raw)
        })
        .collect();
    TypeTable { types }
}

fn namespaces_from(rows: &[Row]) -> Vec<Namespace> {
    let mut list: Vec<Namespace> = rows
        .iter()
        .map(|row| Namespace {
            oid: row.get(0),
            name: row.get(1),
            comment: row.get(2),
        })
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}

/// The names of the columns at `attnums`; `None` if one is missing (dropped concurrently).
fn names_at(relation: &Relation, attnums: &[i16]) -> Option<Vec<String>> {
    attnums
        .iter()
        .map(|&n| relation.column_at(n).map(str::to_string))
        .collect()
}
