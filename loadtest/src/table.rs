//! The harness's own tables: created fresh per run under a unique suffix, dropped after.

use tokio_postgres::{Client, NoTls};

use crate::error::{Error, Result};

/// Which policy a table gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// RLS on, `owner_read`: `user_id = auth.uid()` for `authenticated`.
    Owner,
    /// No RLS: every subscriber sees every row.
    Public,
}

/// Opens a connection (its driver task runs in the background).
pub async fn connect(config: &tokio_postgres::Config) -> Result<Client> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(Error::database("connecting to --database-url"))?;
    tokio::spawn(async move {
        // The error surfaces on the client's next query; nothing to add here.
        let _ = connection.await;
    });
    Ok(client)
}

/// The table name for a scenario prefix and a run suffix (`lt_owner_3fa2c1d0`).
/// Both parts are `[a-z0-9_]` (validated in the config), so the name needs no quoting.
pub fn table_name(prefix: &str, suffix: &str) -> String {
    format!("lt_{prefix}_{suffix}")
}

/// Creates `public.<name>` with the contract's columns and policy.
pub async fn create(client: &Client, name: &str, kind: TableKind) -> Result<()> {
    let mut sql = format!(
        "DROP TABLE IF EXISTS public.{name};
         CREATE TABLE public.{name} (
             id bigserial PRIMARY KEY,
             user_id uuid NOT NULL,
             seq bigint NOT NULL,
             written_at timestamptz NOT NULL DEFAULT clock_timestamp(),
             payload text
         );
         CREATE INDEX ON public.{name} (user_id);
         GRANT SELECT ON public.{name} TO authenticated, anon;"
    );
    if kind == TableKind::Owner {
        sql.push_str(&format!(
            "ALTER TABLE public.{name} ENABLE ROW LEVEL SECURITY;
             CREATE POLICY owner_read ON public.{name} FOR SELECT TO authenticated
                 USING (user_id = auth.uid());"
        ));
    }
    let transaction = format!("BEGIN; {sql} COMMIT;");
    if let Err(err) = client.batch_execute(&transaction).await {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(Error::Database {
            context: "creating the harness table (needs the roles anon/authenticated and auth.uid(): run `fluxbase migrate`)",
            source: err,
        });
    }
    Ok(())
}

/// Seeds `rows` rows (ids 1..=rows on the fresh table) for the `rest` scenario.
pub async fn seed(client: &Client, name: &str, rows: u64, payload_bytes: usize) -> Result<()> {
    let sql = format!(
        "INSERT INTO public.{name} (user_id, seq, payload)
         SELECT gen_random_uuid(), g, repeat('x', $2::int) FROM generate_series(1, $1::bigint) g"
    );
    client
        .execute(&sql, &[&(rows as i64), &(payload_bytes as i32)])
        .await
        .map_err(Error::database("seeding the rest table"))?;
    Ok(())
}

/// Drops the table; failures only warn, the run's figures stand.
pub async fn drop_table(client: &Client, name: &str) {
    if let Err(err) = client
        .batch_execute(&format!("DROP TABLE IF EXISTS public.{name}"))
        .await
    {
        eprintln!("warning: could not drop table {name}: {err}");
    }
}

/// A fresh random run suffix: 8 lowercase hex digits.
pub fn random_suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}
