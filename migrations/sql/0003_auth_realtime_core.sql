-- Application users and their sessions (the columns the runbook's SQL uses), and the DDL
-- notification the realtime engine listens to. The auth service extends these tables.

CREATE TABLE IF NOT EXISTS auth.users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text UNIQUE,
  encrypted_password text,
  role text NOT NULL DEFAULT 'authenticated',
  raw_app_meta_data jsonb NOT NULL DEFAULT '{}'::jsonb,
  raw_user_meta_data jsonb NOT NULL DEFAULT '{}'::jsonb,
  email_confirmed_at timestamptz,
  last_sign_in_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per refresh-token family. Deleting a user's rows revokes their refresh tokens
-- and, through the replication stream, closes their sockets: the engine needs user_id in
-- the old row of a DELETE, hence REPLICA IDENTITY FULL.
CREATE TABLE IF NOT EXISTS auth.sessions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  not_after timestamptz,
  user_agent text,
  ip inet
);
CREATE INDEX IF NOT EXISTS sessions_user_id_idx ON auth.sessions (user_id);
ALTER TABLE auth.sessions REPLICA IDENTITY FULL;

CREATE TABLE IF NOT EXISTS auth.identities (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  provider text NOT NULL,
  provider_id text NOT NULL,
  identity_data jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (provider, provider_id)
);

CREATE TABLE IF NOT EXISTS auth.audit_log_entries (
  id bigserial PRIMARY KEY,
  actor_id uuid,
  action text NOT NULL,
  ip inet,
  payload jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS audit_log_actor_idx ON auth.audit_log_entries (actor_id, created_at DESC);

-- DDL → NOTIFY fluxbase_ddl, so the engine re-reads the catalog and RLS policies at once.
-- Creating an event trigger needs a superuser; without one the engine polls instead.
CREATE OR REPLACE FUNCTION realtime.notify_ddl() RETURNS event_trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('fluxbase_ddl', tg_tag);
END
$$;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'fluxbase_ddl') THEN
    CREATE EVENT TRIGGER fluxbase_ddl ON ddl_command_end EXECUTE FUNCTION realtime.notify_ddl();
  END IF;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'fluxbase: no event trigger (not a superuser); realtime polls the catalog instead';
END
$$;

-- auth.uid()/auth.role() of 0001 preferred request.jwt.claim.sub/role when set; once a
-- session has set them transaction-locally they read '' afterwards and hid the claims.
-- Treat '' as unset.
CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid
LANGUAGE sql STABLE
AS $$
  SELECT nullif(
    coalesce(
      nullif(current_setting('request.jwt.claim.sub', true), ''),
      auth.jwt() ->> 'sub'
    ),
    ''
  )::uuid
$$;

CREATE OR REPLACE FUNCTION auth.role() RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT nullif(
    coalesce(
      nullif(current_setting('request.jwt.claim.role', true), ''),
      auth.jwt() ->> 'role'
    ),
    ''
  )::text
$$;
