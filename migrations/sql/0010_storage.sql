-- Storage: buckets, objects and resumable (tus) uploads, shaped like Supabase's storage
-- schema so that policies written for it (bucket_id, name, owner, owner_id, metadata,
-- storage.foldername() …) work unchanged. The bytes live in the configured backend (local
-- directory or S3) under `<bucket_id>/<version[0..2]>/<version>`: an object's name never
-- becomes a file path. A row is the object: deleting a row (the runbook's cleanup SQL
-- included) deletes the object, and its bytes become orphans that the storage sweep removes.

CREATE TABLE IF NOT EXISTS storage.buckets (
  -- The bucket's id is its name, as in Supabase; it is also the first segment of its keys
  -- in the backend, hence the conservative alphabet.
  id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-][A-Za-z0-9._-]{0,62}$'),
  name text NOT NULL UNIQUE,
  owner uuid,
  owner_id text,
  public boolean NOT NULL DEFAULT false,
  -- NULL: only the server's global limit (server.body_limit) applies.
  file_size_limit bigint CHECK (file_size_limit IS NULL OR file_size_limit > 0),
  -- NULL or empty: every type; entries like 'image/*' match a whole top-level type.
  allowed_mime_types text[],
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS storage.objects (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- No cascade: a bucket is deleted only when empty.
  bucket_id text NOT NULL REFERENCES storage.buckets (id),
  name text NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 1024),
  -- The uploader's `sub` (auth.uid()), as uuid for `owner = auth.uid()` policies and as
  -- text for subjects that are not uuids.
  owner uuid,
  owner_id text,
  size bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
  mime_type text,
  -- Hex SHA-256 of the bytes, computed while they streamed in.
  sha256 text CHECK (sha256 IS NULL OR sha256 ~ '^[0-9a-f]{64}$'),
  -- Strong ETag (quoted), derived from the SHA-256.
  etag text,
  cache_control text,
  -- Which bytes in the backend this row points to; a replaced object gets a new version,
  -- so readers of the old bytes are never served a half-written file.
  version text NOT NULL UNIQUE,
  -- Supabase's shape (eTag, size, mimetype, cacheControl, lastModified, contentLength,
  -- httpStatusCode), for clients and policies that read it.
  metadata jsonb,
  user_metadata jsonb,
  path_tokens text[] GENERATED ALWAYS AS (string_to_array(name, '/')) STORED,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  last_accessed_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT objects_bucket_id_name_key UNIQUE (bucket_id, name)
);

-- Listing by prefix: byte order, so `name >= prefix AND name < prefix || U+10FFFF` is a
-- range scan.
CREATE INDEX IF NOT EXISTS objects_bucket_name_c_idx
  ON storage.objects (bucket_id, name COLLATE "C");
-- The runbook's cleanup (`created_at < … AND bucket_id = …`) and age-sorted listings.
CREATE INDEX IF NOT EXISTS objects_bucket_created_idx ON storage.objects (bucket_id, created_at);

-- updated_at follows every change, including hand-written SQL.
CREATE OR REPLACE FUNCTION storage.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS buckets_touch_updated_at ON storage.buckets;
CREATE TRIGGER buckets_touch_updated_at BEFORE UPDATE ON storage.buckets
  FOR EACH ROW EXECUTE FUNCTION storage.touch_updated_at();
DROP TRIGGER IF EXISTS objects_touch_updated_at ON storage.objects;
CREATE TRIGGER objects_touch_updated_at BEFORE UPDATE ON storage.objects
  FOR EACH ROW EXECUTE FUNCTION storage.touch_updated_at();

-- Resumable (tus 1.0.0) uploads in progress: the server's own bookkeeping, never visible
-- to the API roles (access is checked by the service: the creator's `sub`, or the service
-- role). `chunks` are backend keys under `.fluxbase/tus/<id>/`, in order.
CREATE TABLE IF NOT EXISTS storage.resumable_uploads (
  id text PRIMARY KEY,
  bucket_id text NOT NULL REFERENCES storage.buckets (id) ON DELETE CASCADE,
  name text NOT NULL,
  owner_id text,
  upsert boolean NOT NULL DEFAULT false,
  content_type text,
  cache_control text,
  user_metadata jsonb,
  upload_length bigint NOT NULL CHECK (upload_length >= 0),
  upload_offset bigint NOT NULL DEFAULT 0 CHECK (upload_offset BETWEEN 0 AND upload_length),
  chunks text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS resumable_uploads_expires_idx ON storage.resumable_uploads (expires_at);

-- Helpers for policies, as Supabase defines them:
--   foldername('a/b/c.png') = {a,b}, filename(…) = 'c.png', extension(…) = 'png'.
-- Plain SQL and IMMUTABLE so the planner can inline them into policies.
CREATE OR REPLACE FUNCTION storage.foldername(name text) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
  SELECT (string_to_array(name, '/'))[1:array_length(string_to_array(name, '/'), 1) - 1]
$$;

CREATE OR REPLACE FUNCTION storage.filename(name text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT (string_to_array(name, '/'))[array_length(string_to_array(name, '/'), 1)]
$$;

CREATE OR REPLACE FUNCTION storage.extension(name text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT reverse(split_part(reverse(storage.filename(name)), '.', 1))
$$;

-- Bytes per bucket, as Supabase's storage.get_size_by_bucket() reports them.
CREATE OR REPLACE FUNCTION storage.get_size_by_bucket()
RETURNS TABLE (size bigint, bucket_id text)
LANGUAGE sql STABLE AS $$
  SELECT sum(size)::bigint, bucket_id FROM storage.objects GROUP BY bucket_id
$$;

-- Row-Level Security decides who may do what, as in Supabase: no policy is created here,
-- so until the project adds some only the service role (BYPASSRLS) reads or writes.
ALTER TABLE storage.buckets ENABLE ROW LEVEL SECURITY;
ALTER TABLE storage.objects ENABLE ROW LEVEL SECURITY;

GRANT ALL ON storage.buckets, storage.objects TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION storage.foldername(text), storage.filename(text),
  storage.extension(text), storage.get_size_by_bucket() TO anon, authenticated, service_role;
REVOKE ALL ON storage.resumable_uploads FROM PUBLIC, anon, authenticated, service_role;
