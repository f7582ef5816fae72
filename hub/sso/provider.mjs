// BeamHub's development OpenID Connect provider.
//
// A real, certified OIDC implementation (panva's `oidc-provider`) with discovery,
// authorization-code flow with PKCE, refresh tokens, userinfo, RP-initiated logout and its
// own (BeamHub-branded) sign-in and sign-out pages; only the account store is ours
// (demo accounts from a JSON file).
// Started by `beamhub up` and by the integration tests:
//
//   node hub/sso/provider.mjs CONFIG.json
//
// CONFIG.json: { "issuer": "http://127.0.0.1:8001", "host": "127.0.0.1", "port": 8001,
//   "state_dir": "...", "clients": [{client_id, client_secret, redirect_uris}],
//   "accounts": [{username, password, name, email, uid, gid, gids, groups}] }
//
// Keys and cookie secrets persist in state_dir, so a restart keeps ID tokens verifiable;
// grants, sessions and tokens persist there too (a small JSON-file adapter), so a
// restarted platform can still refresh a logged-in user's tokens.

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { URLSearchParams } from 'node:url';
import Provider from 'oidc-provider';

const configPath = process.argv[2];
if (!configPath) {
  console.error('usage: node provider.mjs CONFIG.json');
  process.exit(2);
}
const config = JSON.parse(fs.readFileSync(configPath, 'utf8'));
const stateDir = config.state_dir;
fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });

function persistent(name, make) {
  const file = path.join(stateDir, name);
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8'));
  const value = make();
  writeAtomic(file, JSON.stringify(value));
  return value;
}

function writeAtomic(file, text) {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

const jwks = persistent('jwks.json', () => {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { keys: [{ ...jwk, kid: crypto.randomUUID(), use: 'sig', alg: 'RS256' }] };
});
const cookieKeys = persistent('cookie-keys.json', () => [crypto.randomBytes(32).toString('hex')]);

// ---- storage: one JSON file, rewritten atomically (fine for a handful of demo users) ----
const storeFile = path.join(stateDir, 'store.json');
let store = fs.existsSync(storeFile) ? JSON.parse(fs.readFileSync(storeFile, 'utf8')) : {};
let flushTimer = null;
function flush() {
  flushTimer = null;
  const now = Date.now() / 1000;
  for (const [key, entry] of Object.entries(store)) {
    if (entry.expiresAt && entry.expiresAt < now) delete store[key];
  }
  writeAtomic(storeFile, JSON.stringify(store));
}
function scheduleFlush() {
  if (!flushTimer) flushTimer = setTimeout(flush, 50);
}

class FileAdapter {
  constructor(model) { this.model = model; }
  key(id) { return `${this.model}:${id}`; }
  async upsert(id, payload, expiresIn) {
    const entry = { payload, expiresAt: expiresIn ? Date.now() / 1000 + expiresIn : null };
    store[this.key(id)] = entry;
    if (payload.grantId) {
      const grantKey = `grant:${payload.grantId}`;
      store[grantKey] = store[grantKey] || { payload: [], expiresAt: entry.expiresAt };
      if (!store[grantKey].payload.includes(this.key(id))) store[grantKey].payload.push(this.key(id));
    }
    if (payload.userCode) store[`userCode:${payload.userCode}`] = { payload: id, expiresAt: entry.expiresAt };
    if (payload.uid) store[`uid:${payload.uid}`] = { payload: id, expiresAt: entry.expiresAt };
    scheduleFlush();
  }
  async find(id) {
    const entry = store[this.key(id)];
    if (!entry || (entry.expiresAt && entry.expiresAt < Date.now() / 1000)) return undefined;
    return entry.payload;
  }
  async findByUserCode(userCode) {
    const id = store[`userCode:${userCode}`]?.payload;
    return id ? this.find(id) : undefined;
  }
  async findByUid(uid) {
    const id = store[`uid:${uid}`]?.payload;
    return id ? this.find(id) : undefined;
  }
  async consume(id) {
    const entry = store[this.key(id)];
    if (entry) { entry.payload.consumed = Math.floor(Date.now() / 1000); scheduleFlush(); }
  }
  async destroy(id) { delete store[this.key(id)]; scheduleFlush(); }
  async revokeByGrantId(grantId) {
    const grantKey = `grant:${grantId}`;
    for (const key of store[grantKey]?.payload || []) delete store[key];
    delete store[grantKey];
    scheduleFlush();
  }
}

// ---- accounts ----
const accounts = new Map(config.accounts.map((a) => [a.username, a]));

function claimsOf(account) {
  return {
    sub: account.username,
    preferred_username: account.username,
    name: account.name || account.username,
    email: account.email,
    email_verified: Boolean(account.email),
    groups: account.groups || [],
    uid: account.uid,
    gid: account.gid,
    gids: account.gids || [],
  };
}

function passwordMatches(account, password) {
  const a = Buffer.from(String(account.password));
  const b = Buffer.from(String(password));
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

const provider = new Provider(config.issuer, {
  adapter: FileAdapter,
  clients: config.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    redirect_uris: c.redirect_uris,
    post_logout_redirect_uris: c.post_logout_redirect_uris || [],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
    posix: ['uid', 'gid', 'gids'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups', 'posix'],
  async findAccount(_ctx, sub) {
    const account = accounts.get(sub);
    if (!account) return undefined;
    return { accountId: sub, async claims() { return claimsOf(account); } };
  },
  // Every client here is first party: a refresh token whenever the client may refresh.
  async issueRefreshToken(_ctx, client) {
    return client.grantTypeAllowed('refresh_token');
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
  },
  cookies: { keys: cookieKeys },
  jwks,
  ttl: {
    AccessToken: config.access_token_ttl || 3600,
    AuthorizationCode: 120,
    IdToken: 3600,
    Interaction: 3600,
    Grant: 14 * 24 * 3600,
    Session: 14 * 24 * 3600,
    RefreshToken: 14 * 24 * 3600,
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Sign-in error', `<p class="error">${escape(out.error)}: ${escape(out.error_description || '')}</p>`);
  },
});

function escape(text) {
  return String(text).replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[ch]));
}

function page(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(title)} · BeamHub SSO</title>
<style>
body{font-family:system-ui,sans-serif;background:#0f1b2d;color:#1b2433;display:flex;min-height:100vh;margin:0;align-items:center;justify-content:center}
main{background:#fff;border-radius:10px;padding:2rem 2.5rem;width:22rem;box-shadow:0 10px 40px rgba(0,0,0,.35)}
h1{font-size:1.3rem;margin:0 0 .3rem}p.sub{color:#566;margin:0 0 1.2rem;font-size:.9rem}
label{display:block;font-size:.85rem;margin:.8rem 0 .2rem}input{width:100%;box-sizing:border-box;padding:.55rem;border:1px solid #bcc;border-radius:5px;font-size:1rem}
button{margin-top:1.3rem;width:100%;padding:.65rem;border:0;border-radius:5px;background:#e56b1f;color:#fff;font-size:1rem;cursor:pointer}
button.secondary{background:#e8ecef;color:#1b2433}
.error{color:#a31515;background:#fdecea;padding:.5rem .7rem;border-radius:5px}
.demo{font-size:.8rem;color:#667;margin-top:1.2rem}
</style></head><body><main>${body}</main></body></html>`;
}

// ---- RP-initiated logout: our pages, not the library's unbranded ones ----
// A sign-out that carries a valid id_token_hint comes from BeamHub's own logout: the hub has
// already ended its side, so the page submits itself (no question left on screen; the button is
// there for a browser without JavaScript).  Without a hint anyone could have sent the user here,
// so the user confirms.  The provider has validated the hint before it calls this.
async function logoutSource(ctx, form) {
  const hinted = Boolean(ctx.oidc.params.id_token_hint && ctx.oidc.entities.IdTokenHint);
  const account = ctx.oidc.session.accountId;
  const signOut = '<button id="signout" type="submit" form="op.logoutForm" name="logout" value="yes" autofocus>Sign out</button>';
  ctx.type = 'html';
  if (hinted) {
    ctx.body = page('Signing out', `<h1>Signing you out of BeamHub</h1>
<p class="sub">Ending the sign-in of <b>${escape(account)}</b>…</p>${form.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>')}
${signOut}<script>document.getElementById('op.logoutForm').submit();</script>`);
    return;
  }
  ctx.body = page('Sign out', `<h1>Sign out of BeamHub?</h1>
<p class="sub">You are signed in as <b>${escape(account)}</b>.</p>${form}${signOut}
<button type="submit" form="op.logoutForm" class="secondary">Stay signed in</button>`);
}

async function postLogoutSuccessSource(ctx) {
  ctx.type = 'html';
  ctx.body = page('Signed out', '<h1>You are signed out</h1><p class="sub">Close this window, or sign in again from BeamHub.</p>');
}

function loginPage(uid, clientId, error, username = '') {
  const demo = config.show_demo_accounts
    ? `<p class="demo">Demo accounts: ${config.accounts.map((a) => `<code>${escape(a.username)}</code>`).join(', ')} (password = user name)</p>`
    : '';
  return page('Sign in', `<h1>BeamHub sign-in</h1><p class="sub">to continue to <b>${escape(clientId)}</b></p>
${error ? `<p class="error" role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login" autocomplete="off">
<label for="username">User name</label><input id="username" name="username" value="${escape(username)}" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" required>
<button type="submit">Sign in</button></form>${demo}`);
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 64 * 1024) throw new Error('form too large');
  }
  return Object.fromEntries(new URLSearchParams(body));
}

function send(res, status, html) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

async function grantConsent(req, res, details) {
  const { prompt, params, session, grantId } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const id = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId: id } }, { mergeWithLastSubmission: true });
}

async function handleInteraction(req, res) {
  const match = req.url.match(/^\/interaction\/([^/?]+)(\/login)?/);
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== match[1]) return send(res, 400, page('Error', '<p class="error">Unknown sign-in request.</p>'));
  const clientId = details.params.client_id;
  if (req.method === 'GET') {
    if (details.prompt.name === 'consent') return grantConsent(req, res, details);
    return send(res, 200, loginPage(details.uid, clientId));
  }
  if (req.method === 'POST' && match[2]) {
    const form = await readForm(req);
    const account = accounts.get(form.username || '');
    if (!account || !passwordMatches(account, form.password || '')) {
      return send(res, 401, loginPage(details.uid, clientId, 'Wrong user name or password.', form.username || ''));
    }
    return provider.interactionFinished(req, res, { login: { accountId: account.username } }, { mergeWithLastSubmission: false });
  }
  return send(res, 405, page('Error', '<p class="error">Method not allowed.</p>'));
}

const oidc = provider.callback();
const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    return res.end('ok');
  }
  if (req.url.startsWith('/interaction/')) {
    return handleInteraction(req, res).catch((err) => {
      send(res, 400, page('Sign-in error', `<p class="error">${escape(err.message)}</p><p>Start again from BeamHub.</p>`));
    });
  }
  return oidc(req, res);
});

function shutdown() {
  if (flushTimer) { clearTimeout(flushTimer); flush(); }
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

server.listen(config.port, config.host || '127.0.0.1', () => {
  console.log(`beamhub-sso: OpenID provider ${config.issuer} ready (discovery at ${config.issuer}/.well-known/openid-configuration)`);
});
