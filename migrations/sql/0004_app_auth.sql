-- Application-user auth: refresh-token families per session, service keys, and the
-- lookups the auth service makes.

-- The service stores emails lower-case and looks them up by lower(email), so rows written
-- by hand in another case still sign in.
CREATE INDEX IF NOT EXISTS users_email_lower_idx ON auth.users (lower(email));

-- Refresh tokens, only as SHA-256. Each session's tokens form a family (parent → child on
-- every rotation). They reference their session with ON DELETE CASCADE: the runbook's
-- `DELETE FROM auth.sessions WHERE user_id = …` makes them fail at once.
CREATE TABLE IF NOT EXISTS auth.refresh_tokens (
  id bigserial PRIMARY KEY,
  session_id uuid NOT NULL REFERENCES auth.sessions (id) ON DELETE CASCADE,
  token_hash text NOT NULL UNIQUE,
  parent_id bigint REFERENCES auth.refresh_tokens (id) ON DELETE SET NULL,
  revoked boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS refresh_tokens_session_idx ON auth.refresh_tokens (session_id);

-- Service keys (`sk_…`), only as SHA-256 plus a short display prefix. After a rotation the
-- previous hash keeps working until previous_key_expires_at (auth.service_key_rotation_grace).
CREATE TABLE IF NOT EXISTS auth.service_keys (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  key_prefix text NOT NULL,
  key_hash text NOT NULL UNIQUE,
  previous_key_hash text UNIQUE,
  previous_key_expires_at timestamptz,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  expires_at timestamptz,
  rotated_at timestamptz,
  revoked_at timestamptz,
  revoked_reason text
);

-- Secrets' hashes are for the server only, never for the API roles.
REVOKE ALL ON auth.refresh_tokens, auth.service_keys FROM PUBLIC, anon, authenticated;
