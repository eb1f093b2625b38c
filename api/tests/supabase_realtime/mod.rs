//! `/realtime/v1` (the Phoenix channels of realtime-js) over the one realtime engine: the
//! real `@supabase/supabase-js` under Node for both protocol versions, the protocol frame
//! by frame with a raw WebSocket client, and the broadcast API.

mod channels;
mod js;
mod protocol;

use serde_json::json;

use crate::support::token;

/// The anon key (an `anon` JWT, as `fluxbase keys` prints).
fn anon_key() -> String {
    token(json!({"role": "anon"}))
}

/// The tables of these tests: todos owned by their user (RLS), with full old rows.
const SCHEMA: &str = "
    CREATE TABLE public.todos (id bigserial PRIMARY KEY,
        user_id uuid NOT NULL DEFAULT auth.uid(), title text, done bool NOT NULL DEFAULT false);
    ALTER TABLE public.todos REPLICA IDENTITY FULL;
    ALTER TABLE public.todos ENABLE ROW LEVEL SECURITY;
    CREATE POLICY own ON public.todos FOR ALL TO authenticated
        USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
    GRANT SELECT, INSERT, UPDATE, DELETE ON public.todos TO authenticated;
    GRANT SELECT ON public.todos TO service_role;
    GRANT USAGE ON SEQUENCE public.todos_id_seq TO authenticated;";
