-- The email flow of application users (GoTrue's /auth/v1/recover, /otp, /verify, signup
-- confirmation, email change): one-time tokens, sent by email, used once.
--
-- A row is one token sent to one address for one purpose. The link token (256 random bits)
-- and the 6-digit code are stored only as SHA-256; `relates_to` is the address it was sent
-- to (the new address for an email change). A token is spent by setting `used_at`; it is
-- refused once spent, past `expires_at` (auth.otp_ttl), or after too many wrong codes
-- (`attempts`). Issuing a new token of a purpose replaces the user's earlier ones.
CREATE TABLE IF NOT EXISTS auth.one_time_tokens (
  id bigserial PRIMARY KEY,
  user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  token_type text NOT NULL
    CHECK (token_type IN ('confirmation', 'magiclink', 'recovery', 'email_change', 'invite')),
  token_hash text NOT NULL UNIQUE,
  code_hash text NOT NULL,
  relates_to text NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at timestamptz
);
CREATE INDEX IF NOT EXISTS one_time_tokens_relates_to_idx
  ON auth.one_time_tokens (relates_to, token_type);
CREATE INDEX IF NOT EXISTS one_time_tokens_user_idx ON auth.one_time_tokens (user_id, token_type);
CREATE INDEX IF NOT EXISTS one_time_tokens_expires_idx ON auth.one_time_tokens (expires_at);

-- Secrets' hashes are for the server only, never for the API roles.
REVOKE ALL ON auth.one_time_tokens FROM PUBLIC, anon, authenticated;

-- Until now no address was ever confirmed (there was no email flow): every existing account
-- counts as confirmed, so turning auth.email_confirmation on later locks nobody out.
UPDATE auth.users SET email_confirmed_at = created_at
WHERE email_confirmed_at IS NULL AND email IS NOT NULL;
