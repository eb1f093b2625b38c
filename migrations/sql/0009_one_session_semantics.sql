-- One session semantics for application users and dashboard administrators (issue 9):
-- a session ends when its row is deleted — sign-out, refresh-token reuse (the whole family
-- goes with it, ON DELETE CASCADE), an expired refresh token, a password change, or the
-- runbook's `DELETE FROM auth.sessions WHERE user_id = …`. Access tokens name their session
-- and are refused once it is gone.

-- Dashboard sessions revoked under the previous rule (revoked_at set) are ended the new
-- way, then the columns go: a session row is live by existing. (Guarded, as every
-- migration here can run again over its own result.)
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM information_schema.columns
             WHERE table_schema = 'dashboard' AND table_name = 'sessions'
               AND column_name = 'revoked_at') THEN
    DELETE FROM dashboard.sessions WHERE revoked_at IS NOT NULL;
  END IF;
END
$$;
ALTER TABLE dashboard.sessions DROP COLUMN IF EXISTS revoked_at;
ALTER TABLE dashboard.sessions DROP COLUMN IF EXISTS revoked_reason;

-- Rotation writes the same columns in both realms.
ALTER TABLE dashboard.refresh_tokens
  ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();

-- Ending a session deletes its token family; each deleted token sets its children's
-- parent_id to NULL (ON DELETE SET NULL), which needs an index to stay one probe per row.
CREATE INDEX IF NOT EXISTS refresh_tokens_parent_idx ON auth.refresh_tokens (parent_id);
CREATE INDEX IF NOT EXISTS dashboard_refresh_tokens_parent_idx
  ON dashboard.refresh_tokens (parent_id);
