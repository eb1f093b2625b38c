-- Realtime: the SQL fallback of RLS decisions. For one changed row (by primary key) and a
-- list of auth contexts, tells which contexts could SELECT the row, switching role and
-- request.jwt.claims per context as Supabase's realtime.apply_rls does.

CREATE OR REPLACE FUNCTION realtime.check_visibility(relid oid, pk jsonb, contexts jsonb)
RETURNS SETOF integer
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
  rel_schema name;
  rel_name name;
  key_filter text := '';
  key_count integer := 0;
  key_col text;
  key_type text;
  probe text;
  ctx jsonb;
  idx integer := 0;
  visible boolean;
  prev_role text := pg_catalog.current_setting('role');
  prev_claims text := pg_catalog.current_setting('request.jwt.claims', true);
  prev_row_security text := pg_catalog.current_setting('row_security');
BEGIN
  SELECT n.nspname, c.relname INTO rel_schema, rel_name
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid = relid;
  IF NOT FOUND THEN
    -- The table is gone: nobody can read the row.
    RETURN;
  END IF;
  IF pk IS NULL OR pg_catalog.jsonb_typeof(pk) <> 'object' THEN
    RAISE EXCEPTION 'realtime.check_visibility: pk must be a JSON object'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;

  -- Identifiers and types come from the catalog only; key values stay in the bound $1.
  -- format_type without the typmod: a cast to varchar(n)/numeric(p,s) could alter the key.
  FOR key_col, key_type IN
    SELECT a.attname::text, pg_catalog.format_type(a.atttypid, NULL)
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = relid AND a.attnum > 0 AND NOT a.attisdropped
      AND pk ? a.attname::text
    ORDER BY a.attnum
  LOOP
    IF key_count > 0 THEN
      key_filter := key_filter || ' AND ';
    END IF;
    key_filter := key_filter
      || pg_catalog.format('%I = ($1 ->> %L)::%s', key_col, key_col, key_type);
    key_count := key_count + 1;
  END LOOP;
  IF key_count = 0
     OR key_count <> (SELECT pg_catalog.count(*) FROM pg_catalog.jsonb_object_keys(pk)) THEN
    RAISE EXCEPTION 'realtime.check_visibility: every pk key must name a column of %',
      relid::regclass
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  probe := pg_catalog.format('SELECT EXISTS (SELECT 1 FROM %I.%I WHERE %s)',
                             rel_schema, rel_name, key_filter);

  FOR ctx IN SELECT e.value FROM pg_catalog.jsonb_array_elements(contexts) AS e LOOP
    BEGIN
      PERFORM pg_catalog.set_config('row_security', 'on', true);
      PERFORM pg_catalog.set_config('request.jwt.claims',
                                    coalesce(ctx -> 'claims', '{}'::jsonb)::text, true);
      PERFORM pg_catalog.set_config('role', ctx ->> 'role', true);
      EXECUTE probe INTO visible USING pk;
    EXCEPTION WHEN OTHERS THEN
      -- A role that does not exist or lacks privileges, a policy raising an error (e.g.
      -- auth.uid() on a sub that is not a uuid): that context cannot read the row. The
      -- block's subtransaction has already undone its settings.
      visible := false;
    END;
    PERFORM pg_catalog.set_config('role', prev_role, true);
    PERFORM pg_catalog.set_config('request.jwt.claims', coalesce(prev_claims, ''), true);
    PERFORM pg_catalog.set_config('row_security', prev_row_security, true);
    IF visible THEN
      RETURN NEXT idx;
    END IF;
    idx := idx + 1;
  END LOOP;
END
$$;

COMMENT ON FUNCTION realtime.check_visibility(oid, jsonb, jsonb) IS
  'Indexes of the contexts ({"role", "claims"}) that can SELECT the row of relid with primary key pk';

-- It switches to any role the session user may assume: only the server may call it, never
-- an API role (it would be an oracle for rows under other identities).
REVOKE ALL ON FUNCTION realtime.check_visibility(oid, jsonb, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION realtime.check_visibility(oid, jsonb, jsonb)
  FROM anon, authenticated, service_role;
