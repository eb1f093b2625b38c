// The real @supabase/supabase-js auth client (auth-js) against Fluxbase's /auth/v1, as an
// app uses it. Two phases, because the email flow needs the emails the test's SMTP server
// receives in between:
//   PHASE=main    sign up, errors, sign in, get/update the user, refresh rotation and reuse,
//                 sign out, the admin client, then ask for a recovery email and an OTP email;
//   PHASE=verify  follow them: verifyOtp of the recovery link (then a new password) and of
//                 the OTP code.
// Prints one JSON object on its last line.
import { createClient, isAuthApiError } from '@supabase/supabase-js';

const url = process.env.FLUXBASE_URL;
const anonKey = process.env.ANON_KEY;
const email = process.env.EMAIL;
const otpEmail = process.env.OTP_EMAIL;
const password = 'correct horse battery';
const newPassword = 'a brand new password';
const options = {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
};

/** A client and the events its onAuthStateChange saw. */
function client(key = anonKey) {
  const c = createClient(url, key, options);
  const events = [];
  c.auth.onAuthStateChange((event) => {
    events.push(event);
  });
  return { auth: c.auth, events };
}

/** What a test checks of an error. */
function err(e) {
  if (!e) return null;
  return {
    name: e.name,
    code: e.code ?? null,
    status: e.status ?? null,
    api: isAuthApiError(e),
    message: e.message,
  };
}

const out = {};

if (process.env.PHASE === 'main') {
  const main = client();
  let r = await main.auth.signUp({ email, password, options: { data: { name: 'Ada' } } });
  out.signUp = {
    error: err(r.error),
    session: !!r.data.session,
    email: r.data.user?.email ?? null,
    name: r.data.user?.user_metadata?.name ?? null,
    confirmed: !!r.data.user?.email_confirmed_at,
    identities: r.data.user?.identities?.length ?? 0,
  };

  r = await main.auth.signUp({ email, password });
  out.duplicate = err(r.error);
  r = await main.auth.signInWithPassword({ email, password: 'not the password' });
  out.wrongPassword = err(r.error);
  r = await client().auth.signInWithPassword({ email: 'nobody@example.com', password });
  out.unknownUser = err(r.error);
  r = await client().auth.signUp({ email: 'weak@example.com', password: 'short' });
  out.weakPassword = { ...err(r.error), reasons: r.error?.reasons ?? null };

  r = await main.auth.signInWithPassword({ email, password });
  out.signIn = {
    error: err(r.error),
    email: r.data.user?.email ?? null,
    tokenType: r.data.session?.token_type ?? null,
    expiresIn: r.data.session?.expires_in ?? null,
    expiresAt: typeof r.data.session?.expires_at,
  };

  r = await main.auth.getUser();
  out.getUser = {
    error: err(r.error),
    email: r.data.user?.email ?? null,
    name: r.data.user?.user_metadata?.name ?? null,
  };

  r = await main.auth.updateUser({ data: { city: 'Paris' } });
  out.updateUser = {
    error: err(r.error),
    city: r.data.user?.user_metadata?.city ?? null,
    name: r.data.user?.user_metadata?.name ?? null,
  };

  const before = (await main.auth.getSession()).data.session;
  r = await main.auth.refreshSession();
  out.refresh = {
    error: err(r.error),
    rotated: !!r.data.session && r.data.session.refresh_token !== before.refresh_token,
    sameUser: r.data.user?.id === before.user.id,
  };

  // Reuse: another device's spent refresh token replayed ends that whole session.
  const device = client();
  await device.auth.signInWithPassword({ email, password });
  const spent = (await device.auth.getSession()).data.session.refresh_token;
  r = await device.auth.refreshSession();
  out.deviceRefresh = err(r.error);
  r = await client().auth.refreshSession({ refresh_token: spent });
  out.replay = err(r.error);
  r = await device.auth.refreshSession();
  out.afterReplay = err(r.error);
  // Its access token still looks valid to the client; the server says its session is gone
  // (403 session_not_found), which auth-js takes as a sign-out.
  r = await device.auth.getUser();
  out.deviceGetUser = err(r.error);
  out.deviceSession = (await device.auth.getSession()).data.session;
  out.deviceEvents = device.events;

  // Sign out (global), then the last refresh token is refused.
  const last = (await main.auth.getSession()).data.session.refresh_token;
  r = await main.auth.signOut();
  out.signOut = { error: err(r.error), session: (await main.auth.getSession()).data.session };
  r = await client().auth.refreshSession({ refresh_token: last });
  out.afterSignOut = err(r.error);
  out.events = main.events;

  // The admin client with the service-role key.
  const admin = createClient(url, process.env.SERVICE_KEY, options).auth.admin;
  r = await admin.createUser({
    email: 'made@example.com',
    password: 'made by the admin',
    email_confirm: true,
    user_metadata: { by: 'admin' },
  });
  out.createUser = {
    error: err(r.error),
    email: r.data.user?.email ?? null,
    confirmed: !!r.data.user?.email_confirmed_at,
    by: r.data.user?.user_metadata?.by ?? null,
  };
  const madeId = r.data.user?.id;
  r = await client().auth.signInWithPassword({ email: 'made@example.com', password: 'made by the admin' });
  out.madeSignsIn = err(r.error);
  r = await admin.listUsers({ page: 1, perPage: 1 });
  out.listUsers = {
    error: err(r.error),
    count: r.data.users.length,
    total: r.data.total ?? null,
    nextPage: r.data.nextPage ?? null,
    lastPage: r.data.lastPage ?? null,
    aud: r.data.aud ?? null,
  };
  r = await admin.getUserById(madeId);
  out.getUserById = { error: err(r.error), email: r.data.user?.email ?? null };
  r = await admin.deleteUser(madeId);
  out.deleteUser = err(r.error);
  r = await admin.getUserById(madeId);
  out.afterDelete = err(r.error);
  r = await client().auth.admin.listUsers();
  out.adminWithAnonKey = err(r.error);

  // Ask for the emails.
  r = await client().auth.resetPasswordForEmail(email, { redirectTo: 'http://localhost:3000/reset' });
  out.resetPassword = { error: err(r.error), data: r.data };
  r = await client().auth.signInWithOtp({ email: otpEmail, options: { data: { via: 'otp' } } });
  out.signInWithOtp = { error: err(r.error), user: r.data.user, session: r.data.session };
} else if (process.env.PHASE === 'verify') {
  const recovery = client();
  let r = await recovery.auth.verifyOtp({
    token_hash: process.env.RECOVERY_TOKEN_HASH,
    type: 'recovery',
  });
  out.recovery = { error: err(r.error), email: r.data.user?.email ?? null, session: !!r.data.session };
  r = await recovery.auth.updateUser({ password: newPassword });
  out.newPassword = err(r.error);
  r = await client().auth.signInWithPassword({ email, password: newPassword });
  out.signInNew = err(r.error);
  r = await client().auth.signInWithPassword({ email, password });
  out.signInOld = err(r.error);
  r = await client().auth.verifyOtp({ token_hash: process.env.RECOVERY_TOKEN_HASH, type: 'recovery' });
  out.recoveryAgain = err(r.error);
  out.recoveryEvents = recovery.events;

  const otp = client();
  r = await otp.auth.verifyOtp({ email: otpEmail, token: process.env.OTP_CODE, type: 'email' });
  out.otp = {
    error: err(r.error),
    email: r.data.user?.email ?? null,
    via: r.data.user?.user_metadata?.via ?? null,
    confirmed: !!r.data.user?.email_confirmed_at,
  };
  r = await otp.auth.getUser();
  out.otpUser = { error: err(r.error), email: r.data.user?.email ?? null };
  out.otpEvents = otp.events;
} else {
  throw new Error(`unknown PHASE ${process.env.PHASE}`);
}

console.log(JSON.stringify(out));
