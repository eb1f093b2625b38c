-- Background jobs (issue 14): the queue (`jobs.jobs`), the worker instances that drain it
-- (`jobs.workers`), recurring schedules (`jobs.schedules`) and database-webhook rules
-- (`jobs.webhooks`). The engine's `jobs` module is the only writer besides an operator's SQL;
-- the runbook's queries and its redrive `UPDATE jobs.jobs SET status = 'pending',
-- attempts = 0, error = NULL WHERE id = …` do what they promise (a trigger wakes a worker).

-- One row per server process running job workers. A process that stops heart-beating is
-- marked `stopped` by any other instance once its lease has passed.
CREATE TABLE IF NOT EXISTS jobs.workers (
  id uuid PRIMARY KEY,
  hostname text NOT NULL,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'stopped')),
  started_at timestamptz NOT NULL DEFAULT now(),
  last_heartbeat_at timestamptz NOT NULL DEFAULT now(),
  concurrency integer NOT NULL CHECK (concurrency >= 0)
);
-- The runbook's `SELECT * FROM jobs.workers WHERE status = 'active'`, and the stale sweep.
CREATE INDEX IF NOT EXISTS workers_active_idx ON jobs.workers (last_heartbeat_at)
  WHERE status = 'active';

CREATE TABLE IF NOT EXISTS jobs.jobs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- A label chosen by the submitter (`send-welcome-email`); redrive works per name.
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
  -- The handler: `http`, `sql` or a built-in (`auth.purge_sessions`, `storage.sweep`).
  kind text NOT NULL CHECK (length(kind) BETWEEN 1 AND 100),
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
  payload jsonb NOT NULL DEFAULT '{}'::jsonb,
  -- Hex SHA-256 of payload::text at submit, checked before each run.
  payload_sha256 text NOT NULL,
  idempotency_key text UNIQUE CHECK (octet_length(idempotency_key) BETWEEN 1 AND 255),
  -- Runs started so far (incremented when a worker claims the job).
  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  max_attempts integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
  -- Higher runs first; then the oldest scheduled_at.
  priority integer NOT NULL DEFAULT 0,
  -- Not run before this (a delayed submit, or the backoff of a retry).
  scheduled_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz,
  -- The jobs.workers row running it (no foreign key: stopped workers are deleted later).
  worker_id uuid,
  -- A running job whose lease passes is re-queued by any instance.
  lease_expires_at timestamptz,
  -- The last failure, `reason: message`.
  error text,
  result jsonb,
  -- The app user who submitted it (NULL for service keys, admins, schedules, webhooks):
  -- users see only their own jobs.
  owner uuid,
  -- Who submitted it: `user:<id>`, `service:<name>`, `admin:<id>`, `schedule:<id>`, `webhook:<id>`.
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- What workers claim: pending and due, highest priority first, then oldest.
CREATE INDEX IF NOT EXISTS jobs_claim_idx ON jobs.jobs (priority DESC, scheduled_at)
  WHERE status = 'pending';
-- The runbook's `WHERE status = 'pending' ORDER BY scheduled_at` and listing by status.
CREATE INDEX IF NOT EXISTS jobs_status_scheduled_idx ON jobs.jobs (status, scheduled_at);
-- The runbook's `WHERE status = 'failed' ORDER BY updated_at DESC` (the dead letters).
CREATE INDEX IF NOT EXISTS jobs_failed_idx ON jobs.jobs (updated_at DESC)
  WHERE status = 'failed';
-- The lease reaper and the heartbeat's lease renewal.
CREATE INDEX IF NOT EXISTS jobs_running_idx ON jobs.jobs (worker_id, lease_expires_at)
  WHERE status = 'running';
-- A user's own jobs, newest first; redrive and listing by name.
CREATE INDEX IF NOT EXISTS jobs_owner_idx ON jobs.jobs (owner, created_at DESC)
  WHERE owner IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_name_idx ON jobs.jobs (name, status);

-- updated_at follows every change, including an operator's SQL (the engine sets it itself,
-- so the trigger only runs when a statement left it untouched).
CREATE OR REPLACE FUNCTION jobs.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS jobs_touch_updated_at ON jobs.jobs;
CREATE TRIGGER jobs_touch_updated_at BEFORE UPDATE ON jobs.jobs
  FOR EACH ROW WHEN (OLD.updated_at IS NOT DISTINCT FROM NEW.updated_at)
  EXECUTE FUNCTION jobs.touch_updated_at();

-- A job becoming pending wakes the workers of every instance (LISTEN fluxbase_jobs): an
-- insert (once per statement, however many rows), a retry, and the runbook's redrive.
-- Identical notifications of one transaction are folded by PostgreSQL.
CREATE OR REPLACE FUNCTION jobs.notify_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM added WHERE status = 'pending') THEN
    PERFORM pg_notify('fluxbase_jobs', '');
  END IF;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION jobs.notify_pending() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('fluxbase_jobs', '');
  RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS jobs_notify_insert ON jobs.jobs;
CREATE TRIGGER jobs_notify_insert AFTER INSERT ON jobs.jobs
  REFERENCING NEW TABLE AS added
  FOR EACH STATEMENT EXECUTE FUNCTION jobs.notify_inserted();

DROP TRIGGER IF EXISTS jobs_notify_update ON jobs.jobs;
CREATE TRIGGER jobs_notify_update AFTER UPDATE OF status, scheduled_at ON jobs.jobs
  FOR EACH ROW WHEN (NEW.status = 'pending')
  EXECUTE FUNCTION jobs.notify_pending();

-- Recurring jobs. `next_run_at` is the next tick (in UTC) of `cron` read in `timezone`; an
-- instance fires a tick by moving next_run_at on (`… WHERE next_run_at = <due>`), so each
-- tick fires once across all instances, and ticks missed while every instance was down fire
-- once, not once per missed tick.
CREATE TABLE IF NOT EXISTS jobs.schedules (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 255),
  -- 5 fields (minute …) or 6 (second minute …).
  cron text NOT NULL,
  -- IANA zone name the cron fields are read in.
  timezone text NOT NULL DEFAULT 'UTC',
  kind text NOT NULL CHECK (length(kind) BETWEEN 1 AND 100),
  payload jsonb NOT NULL DEFAULT '{}'::jsonb,
  max_attempts integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
  priority integer NOT NULL DEFAULT 0,
  enabled boolean NOT NULL DEFAULT true,
  -- NULL: not computed yet (a row written by SQL); the scheduler fills it in.
  next_run_at timestamptz,
  last_run_at timestamptz,
  last_job_id uuid,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS schedules_due_idx ON jobs.schedules (next_run_at) WHERE enabled;

-- Database webhooks: "on INSERT/UPDATE/DELETE of schema.table (optionally a realtime filter
-- `col=op.value`) → an `http` job POSTing the change to url". Fed by the replication stream,
-- not by triggers.
CREATE TABLE IF NOT EXISTS jobs.webhooks (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 255),
  schema_name text NOT NULL DEFAULT 'public',
  table_name text NOT NULL,
  events text[] NOT NULL
    CHECK (cardinality(events) > 0 AND events <@ ARRAY['INSERT', 'UPDATE', 'DELETE']),
  filter text,
  url text NOT NULL,
  -- Extra request headers (e.g. the receiver's own Authorization).
  headers jsonb NOT NULL DEFAULT '{}'::jsonb,
  max_attempts integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
  enabled boolean NOT NULL DEFAULT true,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Schedules and webhook rules changed (by the API or by SQL): every instance reloads them.
CREATE OR REPLACE FUNCTION jobs.notify_config() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('fluxbase_jobs_config', TG_TABLE_NAME);
  RETURN NULL;
END
$$;

-- Firing a tick (next_run_at, last_run_at, last_job_id) is not a change of the schedule.
DROP TRIGGER IF EXISTS schedules_notify ON jobs.schedules;
CREATE TRIGGER schedules_notify AFTER INSERT OR DELETE OR TRUNCATE ON jobs.schedules
  FOR EACH STATEMENT EXECUTE FUNCTION jobs.notify_config();
DROP TRIGGER IF EXISTS schedules_notify_update ON jobs.schedules;
CREATE TRIGGER schedules_notify_update
  AFTER UPDATE OF name, cron, timezone, kind, payload, max_attempts, priority, enabled
  ON jobs.schedules
  FOR EACH STATEMENT EXECUTE FUNCTION jobs.notify_config();
DROP TRIGGER IF EXISTS webhooks_notify ON jobs.webhooks;
CREATE TRIGGER webhooks_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON jobs.webhooks
  FOR EACH STATEMENT EXECUTE FUNCTION jobs.notify_config();

-- Access. The jobs API filters by owner itself (users see only their own jobs); the tables
-- are not granted to anon or authenticated at all (payloads may carry receivers' headers).
-- RLS is on with no policy, so even a later grant to those roles shows nothing until a
-- policy says what. service_role (BYPASSRLS) is the server's trusted context: it may read
-- and manage everything, like the admin API.
ALTER TABLE jobs.jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs.workers ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs.schedules ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs.webhooks ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON ALL TABLES IN SCHEMA jobs FROM PUBLIC, anon, authenticated;
GRANT USAGE ON SCHEMA jobs TO service_role;
GRANT ALL ON ALL TABLES IN SCHEMA jobs TO service_role;
