-- DDL notifications for the schema cache (migrations/src/schema), on the channel the
-- realtime engine already listens to: `fluxbase_ddl`, payload the command tag, as in 0003.
--
-- Every DDL statement that changes what the cache holds fires ddl_command_end, drops
-- included (DROP TABLE, ALTER TABLE ... DROP COLUMN, DROP POLICY, DROP OWNED), and so do
-- GRANT, REVOKE, COMMENT and ALTER POLICY; so no sql_drop trigger is added: it would only
-- repeat the same notification. What changes:
--   * REFRESH MATERIALIZED VIEW changes rows, not the schema: it no longer makes every
--     server reload its schema (a refresh every few seconds would have).
--   * The trigger fires ALWAYS, also in sessions with session_replication_role = replica
--     (restores, some migration tools), whose DDL would otherwise go unseen.
--   * Where 0003 ran without superuser rights and this runs with them, the trigger is
--     created now.
-- Without superuser rights nothing here can be done and the cache polls the catalog.

CREATE OR REPLACE FUNCTION realtime.notify_ddl() RETURNS event_trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF tg_tag <> 'REFRESH MATERIALIZED VIEW' THEN
    PERFORM pg_notify('fluxbase_ddl', tg_tag);
  END IF;
END
$$;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'fluxbase_ddl') THEN
    CREATE EVENT TRIGGER fluxbase_ddl ON ddl_command_end EXECUTE FUNCTION realtime.notify_ddl();
  END IF;
  ALTER EVENT TRIGGER fluxbase_ddl ENABLE ALWAYS;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'fluxbase: no event trigger (not a superuser); the schema cache polls the catalog instead';
END
$$;
