// Loads the clients the way a user does and checks the server answers /health, so a broken
// install fails here first, with a clear message.
import { createClient } from '@supabase/supabase-js';

const url = process.env.FLUXBASE_URL;
const client = createClient(url, process.env.ANON_KEY, { auth: { persistSession: false } });
const health = await fetch(`${url}/health`).then((r) => r.json());
console.log(JSON.stringify({ health, client: typeof client.from, node: process.versions.node }));
