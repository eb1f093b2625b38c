-- Dashboard administrators (the Admin UI's accounts, apart from application users): TOTP
-- 2FA with single-use backup codes, lockout after failed logins, refresh-token sessions,
-- and the activity log of every security-relevant action. The schema `dashboard` is not
-- granted to the API roles: only the server reads these tables.

CREATE TABLE IF NOT EXISTS dashboard.users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- Stored lower-case by the server; unique whatever the case of rows written by hand.
  email text NOT NULL,
  -- argon2id PHC string (bcrypt `crypt(…, gen_salt('bf'))` hashes also verify).
  encrypted_password text NOT NULL,
  full_name text,
  role text NOT NULL DEFAULT 'dashboard_admin',
  -- The TOTP secret sealed with AES-256-GCM under a key derived from the server's JWT
  -- secret ("v1:" + hex); set by 2fa/setup, in force once totp_enabled. Never returned.
  totp_secret text,
  totp_enabled boolean NOT NULL DEFAULT false,
  -- The last time step whose code was accepted: a code is never accepted twice.
  totp_last_step bigint,
  -- Keyed hashes (HMAC-SHA-256) of the unused backup codes; a used code is removed.
  backup_codes text[] NOT NULL DEFAULT '{}',
  failed_login_attempts integer NOT NULL DEFAULT 0,
  locked_until timestamptz,
  last_login_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS dashboard_users_email_key ON dashboard.users (lower(email));

-- One row per login. Deleting a user's sessions (or the user) makes their refresh tokens
-- fail at once.
CREATE TABLE IF NOT EXISTS dashboard.sessions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES dashboard.users (id) ON DELETE CASCADE,
  ip inet,
  user_agent text,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz,
  revoked_reason text
);
CREATE INDEX IF NOT EXISTS dashboard_sessions_user_idx ON dashboard.sessions (user_id);

-- Refresh tokens, only as SHA-256, one family per session: each use revokes the token and
-- issues its child; presenting a revoked one revokes the whole session.
CREATE TABLE IF NOT EXISTS dashboard.refresh_tokens (
  id bigserial PRIMARY KEY,
  session_id uuid NOT NULL REFERENCES dashboard.sessions (id) ON DELETE CASCADE,
  token_hash text NOT NULL UNIQUE,
  parent_id bigint REFERENCES dashboard.refresh_tokens (id) ON DELETE SET NULL,
  revoked boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dashboard_refresh_tokens_session_idx ON dashboard.refresh_tokens (session_id);

-- Logins, failures, lockouts, 2FA changes, sessions. Kept when the user is deleted.
CREATE TABLE IF NOT EXISTS dashboard.activity_log (
  id bigserial PRIMARY KEY,
  user_id uuid REFERENCES dashboard.users (id) ON DELETE SET NULL,
  action text NOT NULL,
  success boolean NOT NULL,
  ip inet,
  user_agent text,
  details jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dashboard_activity_user_idx ON dashboard.activity_log (user_id, created_at DESC);
CREATE INDEX IF NOT EXISTS dashboard_activity_created_idx ON dashboard.activity_log (created_at);

REVOKE ALL ON ALL TABLES IN SCHEMA dashboard FROM PUBLIC, anon, authenticated;
