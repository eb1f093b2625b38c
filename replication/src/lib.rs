//! fluxbase-replication: the PostgreSQL logical replication client (pgoutput, wal2json),
//! slot and publication management. Emits ordered, typed transactions.
