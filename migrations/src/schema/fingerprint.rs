//! The catalog fingerprint the cache polls when no event trigger tells it about DDL (a
//! server without superuser rights cannot create one).
//!
//! Per catalog that a snapshot reads, the row count and a sum over the rows' `xmin`. Every
//! DDL statement inserts, updates or deletes catalog rows; an inserted or updated row
//! carries the xid of its (newer) transaction, so the sum of xids grows, and a delete
//! lowers the count and the sum: any committed change moves the fingerprint. (Hiding one
//! would take a transaction deleting rows and inserting others of exactly the same xid
//! total, which only xid wraparound could produce.) Freezing keeps `xmin` as it was
//! (PostgreSQL sets a flag), and VACUUM and ANALYZE update `pg_class` in place, so neither
//! reloads. Spurious changes (TRUNCATE gives a table a new file, temporary tables come and
//! go) only cost a reload.
//!
//! The sum is taken through `age(xmin)`, three to four times cheaper than converting each
//! xid to text: `age(x) - age('3')` is `3 - x` for every x within 2^31 transactions of now,
//! and `age` is fixed for the statement, so the sum of those is `Σ (3 - xmin)` whatever
//! other transactions do meanwhile. Rows with a permanent xid (created by initdb; `age`
//! gives them `i32::MAX`) never change and are left out of the sum, not the count. (Where
//! an old xid crosses the 2^31 horizon the value jumps once: a spurious reload every two
//! billion transactions.)
//!
//! Cost: one sequential scan per catalog, about 1 ms on a fresh database and ~5 ms with
//! 1,000 tables on the 2-core development machine (the `pg_attribute` scan dominates); see
//! the measurement test `schema::load_and_fingerprint_of_a_thousand_tables`.

use tokio_postgres::Client;

/// `(catalog, count, Σ (3 - xmin) over non-permanent xids)` of one catalog.
macro_rules! catalog {
    ($name:literal) => {
        concat!(
            "SELECT '",
            $name,
            "', count(*), coalesce(sum(age(xmin) - age('3'::xid)) \
             FILTER (WHERE age(xmin) < 2147483647), 0) FROM ",
            $name
        )
    };
}

/// Every catalog a snapshot reads, in one statement.
const FINGERPRINT: &str = concat!(
    catalog!("pg_namespace"),
    " UNION ALL ",
    catalog!("pg_class"),
    " UNION ALL ",
    catalog!("pg_attribute"),
    " UNION ALL ",
    catalog!("pg_attrdef"),
    " UNION ALL ",
    catalog!("pg_type"),
    " UNION ALL ",
    catalog!("pg_enum"),
    " UNION ALL ",
    catalog!("pg_constraint"),
    " UNION ALL ",
    catalog!("pg_index"),
    " UNION ALL ",
    catalog!("pg_proc"),
    " UNION ALL ",
    catalog!("pg_policy"),
    " UNION ALL ",
    catalog!("pg_description"),
    " UNION ALL ",
    catalog!("pg_rewrite"),
    " UNION ALL ",
    catalog!("pg_trigger"),
);

/// A fingerprint of the catalogs a snapshot is read from: equal fingerprints, same schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(Vec<(String, i64, i64)>);

impl Fingerprint {
    /// Reads the fingerprint (one statement, so one MVCC snapshot of all catalogs).
    pub async fn read(client: &Client) -> Result<Fingerprint, tokio_postgres::Error> {
        let mut parts: Vec<(String, i64, i64)> = client
            .query(FINGERPRINT, &[])
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect();
        // UNION ALL does not promise an order.
        parts.sort();
        Ok(Fingerprint(parts))
    }
}
