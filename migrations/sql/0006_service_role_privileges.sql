-- service_role is the server's trusted context (service keys, service_role JWTs): like
-- Supabase, it may read and write every table of the public schema, present and future
-- (future ones: those created by the role running the migrations, i.e. the server's).
-- anon and authenticated get nothing by default: tables are granted to them explicitly and
-- guarded by RLS.
GRANT ALL ON ALL TABLES IN SCHEMA public TO service_role;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO service_role;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO service_role;
