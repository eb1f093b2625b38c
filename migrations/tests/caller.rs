//! `caller::act_as`: role and claims hold for the transaction and never outlive it.

use fluxbase_migrations::caller::act_as;
use fluxbase_migrations::test_utils::TestDb;

#[tokio::test]
async fn role_and_claims_last_for_the_transaction_only() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    let tx = client.transaction().await.unwrap();
    act_as(
        &tx,
        "authenticated",
        r#"{"sub":"4f9c8a2e-1b3d-4c5e-8f70-123456789abc","role":"authenticated"}"#,
    )
    .await
    .unwrap();
    let row = tx
        .query_one(
            "SELECT current_user::text, auth.uid()::text, auth.role()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "authenticated");
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("4f9c8a2e-1b3d-4c5e-8f70-123456789abc")
    );
    assert_eq!(row.get::<_, String>(2), "authenticated");
    tx.commit().await.unwrap();
    let row = client
        .query_one(
            "SELECT current_user::text = session_user::text, \
             coalesce(current_setting('request.jwt.claims', true), '')",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the role outlived the transaction");
    assert_eq!(row.get::<_, String>(1), "");
}

#[tokio::test]
async fn an_unknown_role_is_refused() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    let tx = client.transaction().await.unwrap();
    let err = act_as(&tx, "no_such_role", "{}").await.unwrap_err();
    assert_eq!(
        err.kind(),
        fluxbase_migrations::DbErrorKind::InvalidInput,
        "{err}"
    );
}
