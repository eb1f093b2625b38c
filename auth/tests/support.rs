//! A service over a fresh database.

use std::net::IpAddr;

use fluxbase_auth::{AuthService, AuthSettings, Client};
use fluxbase_migrations::test_utils::TestDb;
use fluxbase_migrations::{Db, PoolSettings};

/// The JWT secret of these tests.
pub const SECRET: &[u8] = b"a-test-secret-that-is-long-enough-for-hs256-0123456789";

/// A service over a fresh database, with `tweak`ed settings.
pub async fn service(tweak: impl FnOnce(&mut AuthSettings)) -> (AuthService, TestDb) {
    let db = TestDb::new().await;
    let mut settings = AuthSettings::default();
    tweak(&mut settings);
    let pool = Db::new(db.config(), PoolSettings::default());
    (AuthService::new(pool, Some(SECRET), settings), db)
}

/// A client on localhost.
pub fn client() -> Client {
    Client::new(IpAddr::from([127, 0, 0, 1]), Some("tests"))
}
