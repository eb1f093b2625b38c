// The real @supabase/storage-js, through supabase-js's `createClient(url, anonKey).storage`,
// against a running Fluxbase: buckets (as the service role), objects as a signed-in user under
// the owner-folder policy, signed URLs, public URLs, info/exists, and the errors it surfaces.
// Every check is an assertion; the last stdout line is a JSON summary for the Rust side.
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';

const url = process.env.FLUXBASE_URL;
const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set`);
  return value;
};
const options = (token) => ({
  auth: { persistSession: false, autoRefreshToken: false },
  global: { headers: { Authorization: `Bearer ${token}` } },
});
const admin = createClient(url, env('ANON_KEY'), options(env('SERVICE_KEY'))).storage;
const user = createClient(url, env('ANON_KEY'), options(env('USER_TOKEN'))).storage;
const other = createClient(url, env('ANON_KEY'), options(env('OTHER_TOKEN'))).storage;
const anon = createClient(url, env('ANON_KEY'), { auth: { persistSession: false } }).storage;
const uid = env('USER_ID');
const otherId = env('OTHER_ID');
const summary = {};

/** The data of a result, failing with its error. */
const ok = (result, what) => {
  assert.equal(result.error, null, `${what}: ${JSON.stringify(result.error)}`);
  return result.data;
};
/** The error of a result that must fail. */
const fails = (result, what) => {
  assert.notEqual(result.error, null, `${what} should fail, got ${JSON.stringify(result.data)}`);
  return result.error;
};

// Buckets (the service role manages them: no policy on storage.buckets).
assert.deepEqual(ok(await admin.createBucket('files', {
  public: false, fileSizeLimit: '1MB', allowedMimeTypes: ['text/*', 'image/png'],
}), 'createBucket'), { name: 'files' });
const bucket = ok(await admin.getBucket('files'), 'getBucket');
assert.equal(bucket.id, 'files');
assert.equal(bucket.public, false);
assert.equal(bucket.file_size_limit, 1_000_000);
assert.deepEqual(bucket.allowed_mime_types, ['text/*', 'image/png']);
ok(await admin.createBucket('public-assets', { public: true }), 'createBucket public');
const names = ok(await admin.listBuckets(), 'listBuckets').map((b) => b.name);
assert.deepEqual(names, ['files', 'public-assets']);
assert.deepEqual(ok(await admin.updateBucket('files', {
  public: false, fileSizeLimit: 2_000_000, allowedMimeTypes: ['text/*', 'image/png'],
}), 'updateBucket'), { message: 'Successfully updated' });
assert.equal(ok(await admin.getBucket('files'), 'getBucket').file_size_limit, 2_000_000);
const duplicate = fails(await admin.createBucket('files'), 'a second bucket files');
assert.equal(duplicate.statusCode, '409');
assert.equal(duplicate.status, 409);
const missingBucket = fails(await admin.getBucket('nope'), 'getBucket nope');
assert.equal(missingBucket.statusCode, '404');
assert.equal(missingBucket.name, 'StorageApiError');

// Objects, as a user in their own folder.
const files = user.from('files');
const uploaded = ok(await files.upload(`${uid}/hello.txt`, 'hello'), 'upload');
assert.equal(uploaded.path, `${uid}/hello.txt`);
assert.equal(uploaded.fullPath, `files/${uid}/hello.txt`);
assert.match(uploaded.id, /^[0-9a-f-]{36}$/);
const again = fails(await files.upload(`${uid}/hello.txt`, 'hello'), 'upload twice');
assert.equal(again.statusCode, '409');
assert.equal(again.message, 'an object with this name already exists');
ok(await files.upload(`${uid}/hello.txt`, 'hello upsert', { upsert: true }), 'upload upsert');
ok(await files.update(`${uid}/hello.txt`, 'hello again', { cacheControl: '60' }), 'update');
const downloaded = ok(await files.download(`${uid}/hello.txt`), 'download');
assert.equal(await downloaded.text(), 'hello again');

// A Blob goes up as multipart/form-data with its own type and user metadata.
const png = new Uint8Array(4096).map((_, i) => (i * 7) % 256);
ok(await files.upload(`${uid}/img/pic.png`, new Blob([png], { type: 'image/png' }), {
  metadata: { camera: 'x100' },
}), 'upload blob');
const picture = new Uint8Array(await ok(await files.download(`${uid}/img/pic.png`), 'download blob').arrayBuffer());
assert.deepEqual(picture, png);
const info = ok(await files.info(`${uid}/img/pic.png`), 'info');
assert.equal(info.size, 4096);
assert.equal(info.contentType, 'image/png');
assert.equal(info.bucketId, 'files');
assert.deepEqual(info.metadata, { camera: 'x100' });
assert.equal(ok(await files.exists(`${uid}/img/pic.png`), 'exists'), true);
const absent = await files.exists(`${uid}/img/none.png`);
assert.equal(absent.data, false);

const listed = ok(await files.list(uid, { sortBy: { column: 'name', order: 'asc' } }), 'list');
assert.deepEqual(listed.map((e) => e.name), ['hello.txt', 'img']);
assert.equal(listed[0].metadata.size, 11);
assert.equal(listed[0].metadata.mimetype, 'text/plain;charset=UTF-8');
assert.equal(listed[0].metadata.cacheControl, 'max-age=60');
assert.equal(listed[1].id, null);
const searched = ok(await files.list(uid, { search: 'HEL' }), 'list search');
assert.deepEqual(searched.map((e) => e.name), ['hello.txt']);

assert.deepEqual(ok(await files.move(`${uid}/hello.txt`, `${uid}/moved.txt`), 'move'),
  { message: 'Successfully moved' });
assert.deepEqual(ok(await files.copy(`${uid}/moved.txt`, `${uid}/copy.txt`), 'copy'),
  { path: `files/${uid}/copy.txt` });
const moved = fails(await files.download(`${uid}/hello.txt`), 'download the moved name');
assert.equal(moved.status, 404);

// Signed URLs work without a session.
const { signedUrl } = ok(await files.createSignedUrl(`${uid}/copy.txt`, 60), 'createSignedUrl');
const viaSigned = await fetch(signedUrl);
assert.equal(viaSigned.status, 200);
assert.equal(await viaSigned.text(), 'hello again');
const { signedUrl: attachment } = ok(
  await files.createSignedUrl(`${uid}/copy.txt`, 60, { download: 'greeting.txt' }),
  'createSignedUrl download',
);
assert.match((await fetch(attachment)).headers.get('content-disposition'), /filename="greeting.txt"/);
const many = ok(await files.createSignedUrls([`${uid}/copy.txt`, `${uid}/none.txt`], 60), 'createSignedUrls');
assert.equal(many.length, 2);
assert.equal((await fetch(many[0].signedUrl)).status, 200);
assert.equal(many[1].signedUrl, null);
assert.match(many[1].error, /does not exist/);
const upload = ok(await files.createSignedUploadUrl(`${uid}/signed.txt`), 'createSignedUploadUrl');
assert.ok(upload.token && upload.signedUrl.includes('token='));
const anonFiles = anon.from('files');
const viaUrl = ok(await anonFiles.uploadToSignedUrl(`${uid}/signed.txt`, upload.token, 'via a signed url'),
  'uploadToSignedUrl');
assert.equal(viaUrl.fullPath, `files/${uid}/signed.txt`);
assert.equal(await ok(await files.download(`${uid}/signed.txt`), 'download signed').text(), 'via a signed url');
const forged = fails(await anonFiles.uploadToSignedUrl(`${uid}/forged.txt`, upload.token, 'x'), 'a token for another name');
assert.equal(forged.statusCode, '401');

// The owner-folder policy: another user sees nothing of this user's files.
const theirs = other.from('files');
assert.equal(fails(await theirs.download(`${uid}/copy.txt`), 'other downloads').status, 404);
assert.deepEqual(ok(await theirs.list(uid), 'other lists'), []);
const overwrite = fails(await theirs.upload(`${uid}/copy.txt`, 'mine now', { upsert: true }), 'other overwrites');
assert.equal(overwrite.statusCode, '403');
assert.deepEqual(ok(await theirs.remove([`${uid}/copy.txt`]), 'other removes'), []);
assert.equal(fails(await theirs.createSignedUrl(`${uid}/copy.txt`, 60), 'other signs').status, 404);
ok(await theirs.upload(`${otherId}/own.txt`, 'their own'), 'other uploads to their folder');

// Refusals surface as StorageApiErrors with storage-api's fields.
const big = fails(await files.upload(`${uid}/big.txt`, 'x'.repeat(2_000_001)), 'an upload over the limit');
assert.equal(big.status, 413);
assert.equal(big.statusCode, '413');
assert.match(big.message, /2000000 bytes/);
const pdf = fails(await files.upload(`${uid}/doc.pdf`, '%PDF', { contentType: 'application/pdf' }), 'a refused type');
assert.equal(pdf.status, 415);
assert.match(pdf.message, /application\/pdf/);
const bad = fails(await files.upload(`${uid}/a\u0000b.txt`, 'x'), 'a NUL in a name');
assert.equal(bad.statusCode, '400');
assert.match(bad.message, /NUL/);
// `..` never reaches the server as such: the URL parser resolves it to another path
// (`/object/escape.txt`), which takes no upload.
fails(await files.upload('../escape.txt', 'x'), 'a traversal');

// Public buckets: getPublicUrl reads without any token.
const publicAssets = admin.from('public-assets');
ok(await publicAssets.upload('logo.txt', 'public bytes'), 'upload public');
const { publicUrl } = publicAssets.getPublicUrl('logo.txt').data;
assert.equal(publicUrl, `${url}/storage/v1/object/public/public-assets/logo.txt`);
const fetched = await fetch(publicUrl);
assert.equal(fetched.status, 200);
assert.equal(await fetched.text(), 'public bytes');
// The authenticated path needs a policy, public bucket or not.
assert.equal(fails(await anon.from('public-assets').download('logo.txt'), 'anon download').status, 404);

// Remove, empty and delete.
const removed = ok(await files.remove([`${uid}/moved.txt`, `${uid}/copy.txt`, `${uid}/never.txt`]), 'remove');
assert.deepEqual(removed.map((o) => o.name).sort(), [`${uid}/copy.txt`, `${uid}/moved.txt`]);
const notEmpty = fails(await admin.deleteBucket('files'), 'delete a non-empty bucket');
assert.equal(notEmpty.statusCode, '409');
assert.deepEqual(ok(await admin.emptyBucket('files'), 'emptyBucket'), { message: 'Successfully emptied' });
assert.deepEqual(ok(await admin.deleteBucket('files'), 'deleteBucket'), { message: 'Successfully deleted' });
assert.deepEqual(ok(await admin.listBuckets(), 'listBuckets').map((b) => b.name), ['public-assets']);

summary.buckets = names;
summary.uploaded = uploaded.fullPath;
summary.errors = { duplicate: duplicate.statusCode, big: big.statusCode, pdf: pdf.statusCode };
console.log(JSON.stringify(summary));
