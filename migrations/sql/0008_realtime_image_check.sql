-- Realtime: the SQL fallback of RLS decisions judges the row version an event carries (its
-- image), never the row as it is when the engine asks. Migration 0007 is reserved.
--
-- realtime.wait_visible(xid)            waits until a committed transaction is visible to new
--                                       snapshots (logical decoding can send a commit before the
--                                       committing backend has left the proc array).
-- realtime.check_image(relid, image, json_nulls, xid, contexts)
--                                       evaluates the table's SELECT policies over the image for
--                                       each context, in one call.
-- realtime.fetch_columns(relid, pk, columns, xid)
--                                       reads unchanged TOAST values of a row, with its xmin.
-- realtime.access_fingerprint(relids)   a hash of role attributes, memberships and the ACLs
--                                       that decide access to the given tables.

CREATE OR REPLACE FUNCTION realtime.wait_visible(xid bigint, timeout interval DEFAULT '5 seconds')
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
  snap pg_catalog.pg_snapshot;
  hi bigint;
  full_xid bigint;
  deadline timestamptz := pg_catalog.clock_timestamp() + timeout;
BEGIN
  IF xid IS NULL OR xid < 3 THEN
    RETURN true;
  END IF;
  LOOP
    -- Each statement of a VOLATILE function takes a new snapshot (READ COMMITTED).
    snap := pg_catalog.pg_current_snapshot();
    -- The 32-bit xid of the stream, widened with the epoch that puts it nearest the
    -- snapshot's horizon (an in-progress xid may be at or past xmax).
    hi := pg_catalog.pg_snapshot_xmax(snap)::text::bigint;
    full_xid := ((hi >> 32) << 32) | xid;
    IF full_xid > hi + 2147483648 THEN
      full_xid := full_xid - 4294967296;
    ELSIF full_xid < hi - 2147483648 THEN
      full_xid := full_xid + 4294967296;
    END IF;
    IF full_xid < 0 OR pg_catalog.pg_visible_in_snapshot(full_xid::text::xid8, snap) THEN
      RETURN true;
    END IF;
    IF pg_catalog.clock_timestamp() > deadline THEN
      RETURN false;
    END IF;
    PERFORM pg_catalog.pg_sleep(0.001);
  END LOOP;
END
$$;

-- The image as a one-row relation named like the table, so that policies and filters read
-- it exactly as they read the table (`docs.team_id` or `team_id`); the image is $1. A JSON
-- null in the image is SQL NULL for jsonb_populate_record; json/jsonb columns named in $2
-- (text[]) get the JSON literal back. The text depends on the table only, so statements
-- prepared over it are shared by every image. Identifiers and types come from the catalog.
CREATE OR REPLACE FUNCTION realtime.image_source(relid oid)
RETURNS text
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
  source text := '';
  col record;
  rel_schema name;
  rel_name name;
BEGIN
  SELECT n.nspname, c.relname INTO rel_schema, rel_name
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid = relid;
  FOR col IN
    SELECT a.attname, a.atttypid, pg_catalog.format_type(a.atttypid, a.atttypmod) AS typ
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = relid AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attnum
  LOOP
    IF source <> '' THEN
      source := source || ', ';
    END IF;
    IF col.atttypid IN ('json'::regtype, 'jsonb'::regtype) THEN
      source := source || pg_catalog.format(
        'CASE WHEN %L = ANY ($2) THEN %L::%s ELSE r.%I END AS %I',
        col.attname, 'null', col.typ, col.attname, col.attname);
    ELSE
      source := source || pg_catalog.format('r.%I', col.attname);
    END IF;
  END LOOP;
  RETURN pg_catalog.format(
    '(SELECT %s FROM pg_catalog.jsonb_populate_record(NULL::%I.%I, $1) AS r) AS %I',
    source, rel_schema, rel_name, rel_name);
END
$$;

CREATE OR REPLACE FUNCTION realtime.check_image(
  relid oid, image jsonb, json_nulls text[], xid bigint, contexts jsonb)
RETURNS SETOF integer
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
  rel record;
  source text;
  ctx jsonb;
  idx integer := 0;
  visible boolean;
  role_name text;
  role_oid oid;
  probe text;
  probes jsonb := '{}'::jsonb;
  stmt text;
  permissive text;
  restrictive text;
  pol record;
  prev_role text := pg_catalog.current_setting('role');
  prev_claims text := pg_catalog.current_setting('request.jwt.claims', true);
  prev_row_security text := pg_catalog.current_setting('row_security');
BEGIN
  SELECT n.nspname, c.relname, c.relnamespace, c.relowner, c.relrowsecurity,
         c.relforcerowsecurity
    INTO rel
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid = relid;
  IF NOT FOUND THEN
    -- The table is gone: nobody can read the row.
    RETURN;
  END IF;
  IF image IS NULL OR pg_catalog.jsonb_typeof(image) <> 'object' THEN
    RAISE EXCEPTION 'realtime.check_image: image must be a JSON object'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Subqueries of policies (a membership table written in the same transaction) must see
  -- the event's transaction.
  PERFORM realtime.wait_visible(xid);

  source := realtime.image_source(relid);

  FOR ctx IN SELECT e.value FROM pg_catalog.jsonb_array_elements(contexts) AS e LOOP
    visible := false;
    stmt := NULL;
    role_name := ctx ->> 'role';
    SELECT r.oid INTO role_oid FROM pg_catalog.pg_roles r WHERE r.rolname = role_name;
    IF role_oid IS NULL
       -- SET ROLE needs the session user to be a member.
       OR NOT pg_catalog.pg_has_role(session_user, role_oid, 'MEMBER')
       OR NOT pg_catalog.has_table_privilege(role_oid, relid, 'SELECT')
       OR NOT pg_catalog.has_schema_privilege(role_oid, rel.relnamespace, 'USAGE') THEN
      probe := NULL;
    ELSIF probes ? role_name THEN
      probe := probes ->> role_name;
    ELSIF NOT rel.relrowsecurity
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                  WHERE r.oid = role_oid AND (r.rolsuper OR r.rolbypassrls))
       OR (pg_catalog.pg_has_role(role_oid, rel.relowner, 'USAGE')
           AND NOT rel.relforcerowsecurity) THEN
      -- RLS does not filter this role: the privilege decides.
      probe := 'true';
      probes := probes || pg_catalog.jsonb_build_object(role_name, probe);
    ELSE
      -- The role's SELECT policies, as PostgreSQL combines them: permissive ones ORed (none:
      -- nothing visible), restrictive ones ANDed. Texts from the catalog only.
      permissive := NULL;
      restrictive := NULL;
      FOR pol IN
        SELECT pg_catalog.pg_get_expr(p.polqual, p.polrelid) AS qual, p.polpermissive
        FROM pg_catalog.pg_policy p
        WHERE p.polrelid = relid AND p.polcmd IN ('r', '*') AND p.polqual IS NOT NULL
          AND EXISTS (SELECT 1 FROM pg_catalog.unnest(p.polroles) AS pr(roleid)
                      WHERE pr.roleid = 0 OR pg_catalog.pg_has_role(role_oid, pr.roleid, 'USAGE'))
        ORDER BY p.polname
      LOOP
        IF pol.polpermissive THEN
          permissive := coalesce(permissive || ' OR ', '') || '(' || pol.qual || ')';
        ELSE
          restrictive := coalesce(restrictive || ' AND ', '') || '(' || pol.qual || ')';
        END IF;
      END LOOP;
      IF permissive IS NULL THEN
        probe := 'false';
      ELSE
        probe := '(' || permissive || ')' || coalesce(' AND ' || restrictive, '');
      END IF;
      probes := probes || pg_catalog.jsonb_build_object(role_name, probe);
    END IF;

    IF probe IS NOT NULL AND probe <> 'false' THEN
      -- Prepared as the server, executed as the subscriber: names in the policy text are
      -- resolved as when the policy was created (PostgreSQL stores it resolved; re-parsing
      -- it as the subscriber would need USAGE on every schema it names), while privileges,
      -- the policies of tables its subqueries read, and function calls are checked at
      -- execution, as the subscriber. The statement stays prepared on this connection for
      -- the next change; its name is a hash of its text, so a policy change makes a new one.
      stmt := 'realtime_check_' || pg_catalog.md5(source || ' WHERE ' || probe);
      IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_statements s WHERE s.name = stmt) THEN
        BEGIN
          EXECUTE pg_catalog.format(
            'PREPARE %I(jsonb, text[]) AS SELECT EXISTS (SELECT 1 FROM %s WHERE %s)',
            stmt, source, probe);
        EXCEPTION WHEN OTHERS THEN
          stmt := NULL;
        END;
      END IF;
    END IF;
    IF stmt IS NOT NULL AND probe IS NOT NULL AND probe <> 'false' THEN
      BEGIN
        PERFORM pg_catalog.set_config('row_security', 'on', true);
        PERFORM pg_catalog.set_config('request.jwt.claims',
                                      coalesce(ctx -> 'claims', '{}'::jsonb)::text, true);
        PERFORM pg_catalog.set_config('role', role_name, true);
        EXECUTE pg_catalog.format('EXECUTE %I(%L::jsonb, %L::text[])', stmt, image::text,
                                  coalesce(json_nulls, '{}')::text) INTO visible;
      EXCEPTION WHEN OTHERS THEN
        -- A policy raising an error (auth.uid() on a sub that is not a uuid, permission
        -- denied on a table a subquery reads, a value the column type rejects): that
        -- context cannot read the row. The block's subtransaction undid its settings.
        visible := false;
      END;
      PERFORM pg_catalog.set_config('role', prev_role, true);
      PERFORM pg_catalog.set_config('request.jwt.claims', coalesce(prev_claims, ''), true);
      PERFORM pg_catalog.set_config('row_security', prev_row_security, true);
    END IF;
    IF visible THEN
      RETURN NEXT idx;
    END IF;
    idx := idx + 1;
  END LOOP;
END
$$;

COMMENT ON FUNCTION realtime.check_image(oid, jsonb, text[], bigint, jsonb) IS
  'Indexes of the contexts ({"role", "claims"}) whose role and claims could SELECT the row version image of relid';

-- Subscription filters PostgreSQL must decide (a type or collation the engine cannot
-- compare exactly): PostgREST's meaning, `col op 'value'` with the value of the column's
-- type, over the image. filters: [{"column", "op", "values": [text]}]; returns the indexes
-- of those the image passes. A filter raising an error (a value the type rejects) fails.
CREATE OR REPLACE FUNCTION realtime.filter_matches(
  relid oid, image jsonb, json_nulls text[], filters jsonb)
RETURNS SETOF integer
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
  source text;
  f jsonb;
  idx integer := 0;
  typ text;
  expr text;
  vals text[];
  passed boolean;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = relid) THEN
    RETURN;
  END IF;
  source := realtime.image_source(relid);
  FOR f IN SELECT e.value FROM pg_catalog.jsonb_array_elements(filters) AS e LOOP
    passed := false;
    SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) INTO typ
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = relid AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attname::text = f ->> 'column';
    IF typ IS NOT NULL THEN
      vals := ARRAY(SELECT pg_catalog.jsonb_array_elements_text(f -> 'values'));
      expr := CASE f ->> 'op'
        WHEN 'eq' THEN pg_catalog.format('%I = $3[1]::%s', f ->> 'column', typ)
        WHEN 'neq' THEN pg_catalog.format('%I <> $3[1]::%s', f ->> 'column', typ)
        WHEN 'gt' THEN pg_catalog.format('%I > $3[1]::%s', f ->> 'column', typ)
        WHEN 'gte' THEN pg_catalog.format('%I >= $3[1]::%s', f ->> 'column', typ)
        WHEN 'lt' THEN pg_catalog.format('%I < $3[1]::%s', f ->> 'column', typ)
        WHEN 'lte' THEN pg_catalog.format('%I <= $3[1]::%s', f ->> 'column', typ)
        WHEN 'in' THEN pg_catalog.format('%I = ANY ($3::%s[])', f ->> 'column', typ)
        WHEN 'like' THEN pg_catalog.format('%I::text LIKE $3[1]', f ->> 'column')
        WHEN 'ilike' THEN pg_catalog.format('%I::text ILIKE $3[1]', f ->> 'column')
        WHEN 'is' THEN CASE vals[1]
          WHEN 'null' THEN pg_catalog.format('%I IS NULL', f ->> 'column')
          WHEN 'true' THEN pg_catalog.format('%I IS TRUE', f ->> 'column')
          WHEN 'false' THEN pg_catalog.format('%I IS FALSE', f ->> 'column')
        END
      END;
      IF expr IS NOT NULL THEN
        BEGIN
          EXECUTE pg_catalog.format('SELECT coalesce((SELECT %s FROM %s), false)', expr, source)
            INTO passed USING image, coalesce(json_nulls, '{}'), vals;
        EXCEPTION WHEN OTHERS THEN
          passed := false;
        END;
      END IF;
    END IF;
    IF passed THEN
      RETURN NEXT idx;
    END IF;
    idx := idx + 1;
  END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION realtime.fetch_columns(relid oid, pk jsonb, columns text[], xid bigint)
RETURNS TABLE (row_xmin text, name text, type_oid oid, value text)
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
  cols text := '';
  found_xmin text;
  values_text text[];
  names text[] := '{}';
  types oid[] := '{}';
  col record;
BEGIN
  SELECT n.nspname, c.relname INTO rel_schema, rel_name
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid = relid;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  PERFORM realtime.wait_visible(xid);
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
      || pg_catalog.format('t.%I = ($1 ->> %L)::%s', key_col, key_col, key_type);
    key_count := key_count + 1;
  END LOOP;
  IF key_count = 0
     OR key_count <> (SELECT pg_catalog.count(*) FROM pg_catalog.jsonb_object_keys(pk)) THEN
    RAISE EXCEPTION 'realtime.fetch_columns: every pk key must name a column of %',
      relid::regclass
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Only the asked columns, as their text output (the engine converts them like decoded
  -- values); json/jsonb JSON null stays the text 'null', SQL NULL is NULL.
  FOR col IN
    SELECT a.attname, a.atttypid
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = relid AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attname::text = ANY (columns)
    ORDER BY a.attnum
  LOOP
    cols := cols || pg_catalog.format(', t.%I::text', col.attname);
    names := names || col.attname::text;
    types := types || col.atttypid;
  END LOOP;
  IF cols = '' THEN
    RETURN;
  END IF;
  EXECUTE pg_catalog.format('SELECT t.xmin::text, ARRAY[%s] FROM %I.%I t WHERE %s',
                            substr(cols, 3), rel_schema, rel_name, key_filter)
    INTO found_xmin, values_text USING pk;
  IF found_xmin IS NULL THEN
    -- The row is gone.
    RETURN;
  END IF;
  FOR i IN 1 .. pg_catalog.array_length(names, 1) LOOP
    row_xmin := found_xmin;
    name := names[i];
    type_oid := types[i];
    value := values_text[i];
    RETURN NEXT;
  END LOOP;
END
$$;

COMMENT ON FUNCTION realtime.fetch_columns(oid, jsonb, text[], bigint) IS
  'The current text values of some columns of the row of relid with primary key pk, with the row''s xmin';

CREATE OR REPLACE FUNCTION realtime.access_fingerprint(relids oid[])
RETURNS text
LANGUAGE sql
STABLE
AS $$
  SELECT pg_catalog.md5(
    coalesce((SELECT pg_catalog.string_agg(
                pg_catalog.concat_ws('/', r.oid, r.rolname, r.rolsuper, r.rolinherit,
                                     r.rolbypassrls), ',' ORDER BY r.oid)
              FROM pg_catalog.pg_roles r), '')
    || '|' || coalesce((SELECT pg_catalog.string_agg(pg_catalog.to_jsonb(m)::text, ','
                                                     ORDER BY m.roleid, m.member)
                        FROM pg_catalog.pg_auth_members m), '')
    || '|' || coalesce((SELECT pg_catalog.string_agg(
                          pg_catalog.concat_ws('/', c.oid, c.relowner, c.relacl::text,
                                               c.relrowsecurity, c.relforcerowsecurity),
                          ',' ORDER BY c.oid)
                        FROM pg_catalog.pg_class c WHERE c.oid = ANY (relids)), '')
    || '|' || coalesce((SELECT pg_catalog.string_agg(
                          pg_catalog.concat_ws('/', n.oid, n.nspacl::text), ',' ORDER BY n.oid)
                        FROM pg_catalog.pg_namespace n
                        WHERE n.oid IN (SELECT c.relnamespace FROM pg_catalog.pg_class c
                                        WHERE c.oid = ANY (relids))
                           OR n.nspname = 'auth'), '')
    || '|' || coalesce((SELECT pg_catalog.string_agg(
                          pg_catalog.concat_ws('/', p.oid, p.proacl::text), ',' ORDER BY p.oid)
                        FROM pg_catalog.pg_proc p
                        WHERE p.pronamespace = pg_catalog.to_regnamespace('auth')), ''))
$$;

COMMENT ON FUNCTION realtime.access_fingerprint(oid[]) IS
  'Changes when a role attribute, a membership or an ACL deciding access to relids changes';

-- They switch to any role the session user may assume, or read rows whatever their
-- policies: only the server may call them, never an API role.
REVOKE ALL ON FUNCTION realtime.wait_visible(bigint, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION realtime.image_source(oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION realtime.filter_matches(oid, jsonb, text[], jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION realtime.image_source(oid) FROM anon, authenticated, service_role;
REVOKE ALL ON FUNCTION realtime.filter_matches(oid, jsonb, text[], jsonb)
  FROM anon, authenticated, service_role;
REVOKE ALL ON FUNCTION realtime.check_image(oid, jsonb, text[], bigint, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION realtime.fetch_columns(oid, jsonb, text[], bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION realtime.access_fingerprint(oid[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION realtime.wait_visible(bigint, interval)
  FROM anon, authenticated, service_role;
REVOKE ALL ON FUNCTION realtime.check_image(oid, jsonb, text[], bigint, jsonb)
  FROM anon, authenticated, service_role;
REVOKE ALL ON FUNCTION realtime.fetch_columns(oid, jsonb, text[], bigint)
  FROM anon, authenticated, service_role;
REVOKE ALL ON FUNCTION realtime.access_fingerprint(oid[])
  FROM anon, authenticated, service_role;
