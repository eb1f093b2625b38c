//! The named workloads of `rest` (`--workload`): what each connection's user asks of
//! `/rest/v1` on the seeded owner-RLS table, the table's extra shape for them, the users'
//! live sessions, and the statement the server sends for each — which the baseline
//! (`--baseline`, [`super::rest_baseline`]) sends straight to PostgreSQL.
//!
//! Every connection is one application user with a row in `auth.users`, a live session in
//! `auth.sessions` and an access token shaped as the server issues them (`aud`,
//! `session_id`, `email`…), so the server runs its session check as it does for a real
//! user. The statements below are the server's own text for these requests (copied from
//! its SQL builder), except `$1::text::json` where the server binds text to `$1::json`.

use serde_json::{Map, Value, json};
use tokio_postgres::Client;
use uuid::Uuid;

use super::Context;
use crate::config::{RestWorkload, ScenarioConfig};
use crate::error::{Error, Result};
use crate::report::Report;

/// Rows of one insert in [`RestWorkload::Insert1000`].
pub const BULK_ROWS: usize = 1000;

/// `config` with the workload's path, method and body.
pub fn configured(config: &ScenarioConfig, workload: RestWorkload) -> ScenarioConfig {
    let mut c = config.clone();
    let row = format!(
        r#"{{"seq": {{seq}}, "payload": "{}"}}"#,
        "x".repeat(config.payload_bytes)
    );
    let (path, method, body) = match workload {
        RestWorkload::GetByPk => ("/rest/v1/{table}?id=eq.{id}", "GET", None),
        RestWorkload::ListEmbed => (
            "/rest/v1/{table}?select=id,seq,payload,{table}_lists(title)&order=id&limit=100",
            "GET",
            None,
        ),
        RestWorkload::InsertOne => ("/rest/v1/{table}", "POST", Some(row)),
        RestWorkload::Insert1000 => {
            let rows = vec![row; BULK_ROWS].join(",");
            ("/rest/v1/{table}", "POST", Some(format!("[{rows}]")))
        }
    };
    c.rest_path = path.to_owned();
    c.rest_method = method.to_owned();
    c.rest_body = body;
    c
}

/// Runs `workload` on the seeded table `name`: shapes it, gives every user a live session
/// and a token, then measures over HTTP, or the baseline; removes the users after.
pub async fn run(
    config: &ScenarioConfig,
    ctx: &Context,
    client: &Client,
    name: &str,
    users: &[Uuid],
    workload: RestWorkload,
) -> Result<Report> {
    prepare(client, name, users).await?;
    let sessions = create_sessions(client, users).await?;
    let result = async {
        let secret = config.jwt_secret.as_deref().unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let ttl = config.duration.as_secs() + 3600;
        let claims: Vec<Map<String, Value>> = users
            .iter()
            .zip(&sessions)
            .map(|(user, session)| claims(*user, *session, now, ttl))
            .collect();
        match config.rest_baseline {
            Some(kind) => {
                let texts: Vec<String> = claims
                    .iter()
                    .map(|c| Value::from(c.clone()).to_string())
                    .collect();
                super::rest_baseline::measure(config, ctx, name, workload, kind, &texts).await
            }
            None => {
                let tokens = claims
                    .iter()
                    .map(|c| sign(secret, c))
                    .collect::<Result<Vec<String>>>()?;
                wait_for_schema(ctx, name, &tokens[0]).await?;
                super::rest::measure(config, ctx, Some(name), users, Some(&tokens)).await
            }
        }
    }
    .await;
    drop_sessions(client, users).await;
    result
}

/// Waits until the server's schema cache holds the shaped table (the embed answers 200):
/// the DDL of [`prepare`] reaches it through a notification, a moment later.
async fn wait_for_schema(ctx: &Context, name: &str, token: &str) -> Result<()> {
    let path = format!("/rest/v1/{name}?select=id,{name}_lists(title)&limit=1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut http = crate::http::HttpConnection::new(ctx.target.clone());
    loop {
        let status = http
            .request("GET", &path, Some(token), None)
            .await
            .map(|r| r.status);
        match status {
            Ok(200) => return Ok(()),
            _ if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            other => {
                return Err(Error::config(
                    "workload",
                    format!("the server does not serve the workload's table: {other:?}"),
                ));
            }
        }
    }
}

/// The table's extra shape: users insert their own rows (`user_id` defaults to
/// `auth.uid()`), and each row points at its owner's list in `<name>_lists`, readable by
/// its owner only. Runs after the rows are seeded.
pub async fn prepare(client: &Client, name: &str, users: &[Uuid]) -> Result<()> {
    let sql = format!(
        "BEGIN;
         CREATE TABLE public.{name}_lists (
             id bigserial PRIMARY KEY, user_id uuid NOT NULL, title text NOT NULL);
         ALTER TABLE public.{name}_lists ENABLE ROW LEVEL SECURITY;
         CREATE POLICY owner_read ON public.{name}_lists FOR SELECT TO authenticated
             USING (user_id = auth.uid());
         GRANT SELECT ON public.{name}_lists TO authenticated;
         ALTER TABLE public.{name} ADD COLUMN list_id bigint
             REFERENCES public.{name}_lists (id);
         ALTER TABLE public.{name} ALTER COLUMN user_id SET DEFAULT auth.uid();
         CREATE POLICY owner_insert ON public.{name} FOR INSERT TO authenticated
             WITH CHECK (user_id = auth.uid());
         GRANT INSERT ON public.{name} TO authenticated;
         GRANT USAGE ON SEQUENCE public.{name}_id_seq TO authenticated;
         COMMIT;"
    );
    client
        .batch_execute(&sql)
        .await
        .map_err(Error::database("shaping the rest table for the workloads"))?;
    client
        .execute(
            &format!(
                "INSERT INTO public.{name}_lists (user_id, title)
                 SELECT u, 'list of ' || u FROM unnest($1::uuid[]) u"
            ),
            &[&users.to_vec()],
        )
        .await
        .map_err(Error::database("seeding the lists"))?;
    client
        .batch_execute(&format!(
            "UPDATE public.{name} t SET list_id = l.id FROM public.{name}_lists l
             WHERE l.user_id = t.user_id;
             ANALYZE public.{name}; ANALYZE public.{name}_lists;"
        ))
        .await
        .map_err(Error::database("linking the rows to their lists"))?;
    Ok(())
}

/// Drops what [`prepare`] added (after the table itself).
pub async fn drop_lists(client: &Client, name: &str) {
    if let Err(err) = client
        .batch_execute(&format!("DROP TABLE IF EXISTS public.{name}_lists"))
        .await
    {
        eprintln!("warning: could not drop table {name}_lists: {err}");
    }
}

/// An `auth.users` row and a live `auth.sessions` row for each user; the session ids.
pub async fn create_sessions(client: &Client, users: &[Uuid]) -> Result<Vec<Uuid>> {
    let sessions: Vec<Uuid> = users.iter().map(|_| Uuid::new_v4()).collect();
    client
        .execute(
            "INSERT INTO auth.users (id, email)
             SELECT u, 'loadtest-' || u || '@example.invalid' FROM unnest($1::uuid[]) u",
            &[&users.to_vec()],
        )
        .await
        .map_err(Error::database("creating the workload's users"))?;
    client
        .execute(
            "INSERT INTO auth.sessions (id, user_id)
             SELECT s, u FROM unnest($1::uuid[], $2::uuid[]) AS t(s, u)",
            &[&sessions, &users.to_vec()],
        )
        .await
        .map_err(Error::database("creating the workload's sessions"))?;
    Ok(sessions)
}

/// Removes the users (their sessions go with them).
pub async fn drop_sessions(client: &Client, users: &[Uuid]) {
    if let Err(err) = client
        .execute(
            "DELETE FROM auth.users WHERE id = ANY($1::uuid[])",
            &[&users.to_vec()],
        )
        .await
    {
        eprintln!("warning: could not remove the workload's users: {err}");
    }
}

/// The claims of `user`'s access token for `session`, as the server issues them.
pub fn claims(user: Uuid, session: Uuid, now: u64, ttl: u64) -> Map<String, Value> {
    let Value::Object(claims) = json!({
        "sub": user.to_string(),
        "role": "authenticated",
        "aud": "authenticated",
        "exp": now + ttl,
        "iat": now,
        "session_id": session.to_string(),
        "email": format!("loadtest-{user}@example.invalid"),
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {},
    }) else {
        unreachable!("an object literal")
    };
    claims
}

/// An HS256 token of `claims`.
pub fn sign(secret: &str, claims: &Map<String, Value>) -> Result<String> {
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

/// The statement the server sends for one request of `workload` on `name`.
pub fn statement(workload: RestWorkload, name: &str) -> String {
    let read = "SELECT NULL::int8, count(*)::int8, coalesce(json_agg(q.j), '[]')::text, \
                NULL::text[], NULL::int4 FROM (SELECT ";
    let write = |from: &str| {
        format!(
            "WITH src AS (INSERT INTO \"public\".\"{name}\" AS r1 (\"seq\", \"payload\") \
             SELECT r2.\"seq\", r2.\"payload\" FROM {from}($1::text::json) AS r2(\"seq\" \
             bigint, \"payload\" text) RETURNING 1) SELECT NULL::int8, count(*)::int8, \
             NULL::text, NULL::text[], NULL::int4 FROM (SELECT NULL AS j FROM src r0) q"
        )
    };
    match workload {
        RestWorkload::GetByPk => format!(
            "{read}row_to_json(r0) AS j FROM \"public\".\"{name}\" r0 WHERE r0.\"id\" = $1) q"
        ),
        RestWorkload::ListEmbed => format!(
            "{read}json_build_object($1::text, r0.\"id\", $2::text, r0.\"seq\", $3::text, \
             r0.\"payload\", $4::text, (SELECT json_build_object($5::text, r1.\"title\") \
             FROM \"public\".\"{name}_lists\" r1 WHERE r1.\"id\" = r0.\"list_id\")) AS j \
             FROM \"public\".\"{name}\" r0 ORDER BY r0.\"id\" LIMIT $6) q"
        ),
        RestWorkload::InsertOne => write("json_to_record"),
        RestWorkload::Insert1000 => write("json_to_recordset"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_fill_path_method_and_body() {
        let base = ScenarioConfig::new(crate::config::Scenario::Rest);
        let c = configured(&base, RestWorkload::Insert1000);
        assert_eq!(c.rest_method, "POST");
        let body = c.rest_body.unwrap().replace("{seq}", "1");
        let rows: Vec<Value> = serde_json::from_str(&body).unwrap();
        assert_eq!(rows.len(), BULK_ROWS);
        let c = configured(&base, RestWorkload::GetByPk);
        assert_eq!((c.rest_method.as_str(), c.rest_body), ("GET", None));
        assert!(statement(RestWorkload::ListEmbed, "t").contains("\"t_lists\""));
    }
}
