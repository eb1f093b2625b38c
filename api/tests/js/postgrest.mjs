// The real @supabase/postgrest-js against /rest/v1, two ways: supabase-js's createClient
// (anon key + a signed-in user's access token, as an app does) and a bare PostgrestClient.
// Each operation's outcome ({data, error, count, status}) is reported as is; the Rust test
// (api/tests/rest_http/postgrest_js.rs) asserts on them.
import { createClient } from '@supabase/supabase-js';
import { PostgrestClient } from '@supabase/postgrest-js';

const url = process.env.FLUXBASE_URL;
const anonKey = process.env.ANON_KEY;
const alice = process.env.ALICE_TOKEN;
const bob = process.env.BOB_TOKEN;
const service = process.env.SERVICE_TOKEN;

// Alice through supabase-js: the anon key as apikey, her token as Bearer.
const supabase = createClient(url, anonKey, {
  accessToken: async () => alice,
  db: { schema: 'public' },
});
// Bob and the service role through postgrest-js directly.
const rest = (token) =>
  new PostgrestClient(`${url}/rest/v1`, {
    headers: { apikey: anonKey, Authorization: `Bearer ${token}` },
  });
const asBob = rest(bob);
const asService = rest(service);

const out = {};
const record = async (name, query) => {
  const { data, error, count, status } = await query;
  out[name] = { data, error, count, status };
};

// Reads: filters, embeds (both directions, many-to-many, two levels, !inner), order, range,
// counts, single/maybeSingle, schemas, CSV.
await record('filters', supabase.from('films').select('id,title').gte('year', 1970).lt('year', 1980).order('id'));
await record('in_ilike', supabase.from('films').select('id').in('id', [1, 2, 4]).ilike('title', '%VAG%'));
await record('or', supabase.from('films').select('id').or('year.lt.1970,year.gt.1980').order('id'));
await record('is_not', supabase.from('films').select('id').not('year', 'is', null).is('rating', null));
await record('contains', supabase.from('films').select('id').contains('meta', { lang: 'fr' }).order('id'));
await record('fts', supabase.from('films').select('id').textSearch('tsv', 'widow', { config: 'english' }));
await record('match', supabase.from('films').select('id').match({ director_id: 2, year: 1976 }));
await record('embed_to_one', supabase.from('films').select('title, directors(name)').eq('id', 1).single());
await record('embed_to_many', supabase.from('films').select('id, reviews(stars)').eq('id', 1).order('stars', { referencedTable: 'reviews' }));
await record('embed_many_to_many', supabase.from('films').select('title, actors(name)').eq('id', 4));
await record('embed_two_levels', supabase.from('directors').select('name, films(title, reviews(stars))').eq('id', 2).order('id', { referencedTable: 'films' }));
await record('embed_inner_filtered', supabase.from('films').select('id, reviews!inner(stars)').eq('reviews.stars', 5).order('id'));
await record('order_range', supabase.from('films').select('id').order('year', { ascending: false, nullsFirst: false }).range(1, 2));
await record('count_exact', supabase.from('films').select('id', { count: 'exact' }).order('id').range(0, 1));
await record('count_head', supabase.from('films').select('*', { count: 'exact', head: true }));
await record('single', supabase.from('films').select('id').eq('id', 2).single());
await record('single_of_many', supabase.from('films').select('id').single());
await record('maybe_single_none', supabase.from('films').select('id').eq('id', 999).maybeSingle());
await record('maybe_single_one', supabase.from('films').select('id').eq('id', 3).maybeSingle());
await record('schema', supabase.schema('api').from('notes').select('id, body'));
await record('csv', supabase.from('films').select('id,year').lte('id', 2).order('id').csv());

// Writes with .select(), as Alice (owner-only RLS) and Bob.
await record('insert_one', supabase.from('todos').insert({ title: 'js 1' }).select('id, title, user_id').single());
const first = out.insert_one.data?.id;
await record('insert_many', supabase.from('todos').insert([{ title: 'js 2' }, { title: 'js 3' }]).select('title'));
await record('upsert', supabase.from('todos').upsert({ id: first, title: 'js 1 upserted' }).select('id, title'));
await record('upsert_ignore', supabase.from('todos').upsert({ id: first, title: 'ignored' }, { onConflict: 'id', ignoreDuplicates: true }).select('id'));
await record('update', supabase.from('todos').update({ done: true }).eq('title', 'js 2').select('title, done'));
await record('delete', supabase.from('todos').delete().eq('title', 'js 3').select('title'));
await record('alice_sees', supabase.from('todos').select('title').order('title'));
await record('bob_sees_before', asBob.from('todos').select('title'));
await record('bob_insert', asBob.from('todos').insert({ title: 'bob js' }).select('title'));
await record('bob_update_alices', asBob.from('todos').update({ title: 'stolen' }).eq('id', first).select('id'));
await record('service_sees', asService.from('todos').select('title').order('title'));

// RPC: named arguments, GET for stable functions, sets filtered like tables, the caller.
await record('rpc_scalar', supabase.rpc('add', { a: 1, b: 2 }));
await record('rpc_get', supabase.rpc('greet', { name: 'js' }, { get: true }));
await record('rpc_set', supabase.rpc('films_since', { since: 1975 }).select('id').gt('id', 2).order('id'));
await record('rpc_caller', supabase.rpc('whoami'));
await record('rpc_count', asBob.rpc('films_since', { since: 1900 }, { count: 'exact', head: true }));

// Errors as postgrest-js surfaces them.
await record('error_unknown_table', supabase.from('nope').select());
await record('error_type', supabase.from('films').select().eq('id', 'abc'));
await record('error_unique', asService.from('directors').insert({ id: 1, name: 'dup' }));
await record('error_raise', supabase.rpc('fail', { msg: 'boom' }));
await record('error_rls', asBob.from('todos').insert({ title: 'forged', user_id: '00000000-0000-0000-0000-000000000000' }));
await record('error_unknown_function', supabase.rpc('nope', {}));

console.log(JSON.stringify(out));
