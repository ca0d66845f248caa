// A local OpenID Connect provider standing in for INDIGO IAM: panva's `oidc-provider`
// (OpenID-certified) with a small login/consent UI, demo accounts carrying `wlcg.groups`,
// rotating refresh tokens, RP-initiated logout, revocation, introspection and OAuth 2.0 Token
// Exchange (RFC 8693), which IAM offers and the hub uses to narrow the storage token.
//
// Started by aiinfn_hub/dev/oidc/server.py with one argument: a JSON settings file
//   { issuer, host, port, keysFile, storeFile, users: [...], clients: [...], ttl: {...},
//     exchangeAudiences: { "<audience>": { scopes: "s3 storage.read" } } }
// It binds to `host` only (127.0.0.1) and prints one JSON line {"ready": issuer} when serving.
// oidc-provider is resolved from the node_modules folder named by AIINFN_NODE_MODULES.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

const settings = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const modules = process.env.AIINFN_NODE_MODULES;
if (!modules) {
  console.error('AIINFN_NODE_MODULES must name the node_modules folder holding oidc-provider');
  process.exit(2);
}
const entry = path.join(modules, 'oidc-provider', 'lib', 'index.js');
const { default: Provider, errors } = await import(pathToFileURL(entry).href);

const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

// Signing keys survive restarts (so ID tokens stay verifiable) when keysFile is given.
function signingKeys() {
  if (settings.keysFile && fs.existsSync(settings.keysFile)) {
    return JSON.parse(fs.readFileSync(settings.keysFile, 'utf8'));
  }
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), use: 'sig', alg: 'RS256' };
  const jwks = { keys: [jwk] };
  if (settings.keysFile) {
    fs.writeFileSync(settings.keysFile, JSON.stringify(jwks), { mode: 0o600 });
  }
  return jwks;
}

// Grants, sessions, codes and tokens survive restarts when storeFile is given, as a real IAM's
// database does: an outage of the provider must not invalidate refresh tokens (the hub retries
// renewals once it is back). One JSON file, rewritten whole (tmp + rename) at each change,
// expired entries dropped then: the demo provider serves a handful of users.
const storeFile = settings.storeFile;
const store = storeFile && fs.existsSync(storeFile)
  ? JSON.parse(fs.readFileSync(storeFile, 'utf8'))
  : { entries: {}, cookieKeys: [crypto.randomBytes(32).toString('hex')] };
const epoch = () => Math.floor(Date.now() / 1000);

function persist() {
  const now = epoch();
  for (const [key, entry] of Object.entries(store.entries)) {
    if (entry.expiresAt && entry.expiresAt <= now) delete store.entries[key];
  }
  if (!storeFile) return;
  fs.writeFileSync(`${storeFile}.tmp`, JSON.stringify(store), { mode: 0o600 });
  fs.renameSync(`${storeFile}.tmp`, storeFile);
}

// oidc-provider's adapter interface, one instance per model (Session, Grant, RefreshToken...)
class FileAdapter {
  constructor(model) { this.model = model; }

  key(id) { return `${this.model}:${id}`; }

  async upsert(id, payload, expiresIn) {
    store.entries[this.key(id)] = { payload, expiresAt: expiresIn ? epoch() + expiresIn : null };
    persist();
  }

  async find(id) {
    const entry = store.entries[this.key(id)];
    if (!entry || (entry.expiresAt && entry.expiresAt <= epoch())) return undefined;
    return entry.payload;
  }

  async findBy(field, value) {
    const prefix = `${this.model}:`;
    for (const [key, entry] of Object.entries(store.entries)) {
      if (key.startsWith(prefix) && entry.payload[field] === value) {
        return this.find(key.slice(prefix.length));
      }
    }
    return undefined;
  }

  async findByUid(uid) { return this.findBy('uid', uid); }

  async findByUserCode(userCode) { return this.findBy('userCode', userCode); }

  async consume(id) {
    const entry = store.entries[this.key(id)];
    if (entry) {
      entry.payload.consumed = epoch();
      persist();
    }
  }

  async destroy(id) {
    delete store.entries[this.key(id)];
    persist();
  }

  async revokeByGrantId(grantId) {
    for (const [key, entry] of Object.entries(store.entries)) {
      if (entry.payload.grantId === grantId) delete store.entries[key];
    }
    persist();
  }
}

const users = new Map(settings.users.map((u) => [u.username, u]));

function accountClaims(user) {
  // `claims` replaces the standard ones when given, so tests can serve odd or missing claims.
  if (user.claims) return { sub: user.username, ...user.claims };
  return {
    sub: user.username,
    preferred_username: user.username,
    name: user.name || user.username,
    email: user.email || `${user.username}@example.org`,
    email_verified: true,
    'wlcg.groups': user.groups || [],
  };
}

const ttl = settings.ttl || {};
const provider = new Provider(settings.issuer, {
  clients: settings.clients,
  jwks: signingKeys(),
  adapter: FileAdapter,
  cookies: { keys: store.cookieKeys },
  pkce: { required: () => true },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'wlcg.groups'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    'wlcg.groups': ['wlcg.groups'],
  },
  conformIdTokenClaims: false,
  findAccount: async (ctx, sub) => {
    const user = users.get(sub);
    if (!user) return undefined;
    return { accountId: sub, claims: async () => accountClaims(user) };
  },
  features: {
    devInteractions: { enabled: false },
    revocation: { enabled: true },
    introspection: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  rotateRefreshToken: () => true,
  ttl: {
    AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL || ttl.accessToken || 3600,
    IdToken: ttl.idToken || 3600,
    RefreshToken: ttl.refreshToken || 14 * 24 * 3600,
    Session: ttl.session || 14 * 24 * 3600,
    Grant: ttl.refreshToken || 14 * 24 * 3600,
    Interaction: 3600,
  },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = page('Sign-in error', `<p class="error">${esc(out.error)}: ${esc(out.error_description || '')}</p>`);
  },
});
provider.proxy = false;

// INDIGO IAM issues a refresh token for `offline_access` whatever the prompt; oidc-provider
// follows OIDC Core 11 strictly and honours `offline_access` only with `prompt=consent`. Add it
// to authorization requests asking for offline access, so the hub gets its refresh token as
// from IAM (the consent page is then shown at every sign-in).
provider.use(async (ctx, next) => {
  if (ctx.method === 'GET' && ctx.path === '/auth' && typeof ctx.query.scope === 'string'
      && ctx.query.scope.split(' ').includes('offline_access') && !ctx.query.prompt) {
    ctx.query = { ...ctx.query, prompt: 'consent' };
  }
  await next();
});

// RFC 8693 token exchange: a hub with a valid access token of one of its users gets a narrower
// token for a storage audience. The subject token must belong to the calling client.
provider.registerGrantType(EXCHANGE, async (ctx) => {
  const { params, client } = ctx.oidc;
  if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest(`subject_token_type must be ${ACCESS_TOKEN_TYPE}`);
  }
  const subject = await provider.AccessToken.find(params.subject_token);
  if (!subject || subject.isExpired) throw new errors.InvalidGrant('subject token is invalid or expired');
  if (subject.clientId !== client.clientId) throw new errors.InvalidGrant('subject token belongs to another client');
  const audiences = settings.exchangeAudiences || {};
  const audience = params.audience;
  if (!audience || !Object.hasOwn(audiences, audience)) {
    throw new errors.InvalidTarget('audience is not a known resource server');
  }
  const allowed = new Set(audiences[audience].scopes.split(' '));
  const requested = (params.scope || audiences[audience].scopes).split(' ').filter(Boolean);
  const refused = requested.filter((s) => !allowed.has(s));
  if (refused.length) throw new errors.InvalidScope(`scope not allowed for ${audience}`, refused.join(' '));
  const token = new provider.AccessToken({
    accountId: subject.accountId,
    client,
    grantId: subject.grantId,
    gty: 'token_exchange',
    scope: requested.join(' '),
    resourceServer: {
      audience,
      scope: audiences[audience].scopes,
      accessTokenFormat: 'jwt',
      accessTokenTTL: audiences[audience].ttl || ttl.accessToken || 3600,
      jwt: { sign: { alg: 'RS256' } },
    },
  });
  ctx.oidc.entity('AccessToken', token);
  const value = await token.save();
  ctx.body = {
    access_token: value,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: 'Bearer',
    expires_in: token.expiration,
    scope: token.scope,
  };
}, ['subject_token', 'subject_token_type', 'audience', 'scope', 'requested_token_type']);

// ---- login and consent pages --------------------------------------------------------------

function esc(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:sans-serif;max-width:28em;margin:3em auto}label,input,button{display:block;margin:.4em 0}
.error{color:#a00}</style></head><body><h1>${esc(title)}</h1>${body}</body></html>`;
}

function loginForm(uid, message) {
  return page('Sign in to the demo identity provider', `
${message ? `<p class="error">${esc(message)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
<label>Username <input name="username" required autofocus></label>
<label>Password <input name="password" type="password" required></label>
<button type="submit" name="submit" value="login">Sign in</button></form>
<form method="post" action="/interaction/${esc(uid)}/abort"><button type="submit">Cancel</button></form>`);
}

function consentForm(uid, clientId, scopes) {
  return page('Authorize access', `
<p>The application <b>${esc(clientId)}</b> asks for: ${scopes.map(esc).join(', ') || 'your identity'}.</p>
<form method="post" action="/interaction/${esc(uid)}/confirm"><button type="submit" name="submit" value="allow">Allow</button></form>
<form method="post" action="/interaction/${esc(uid)}/abort"><button type="submit">Deny</button></form>`);
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 16384) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

function send(res, status, html) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

async function interaction(req, res) {
  const match = /^\/interaction\/([^/?]+)(?:\/(login|confirm|abort))?/.exec(req.url);
  if (!match) return send(res, 404, page('Not found', ''));
  const [, uid, action] = match;
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch {
    return send(res, 400, page('Sign-in expired', '<p>This sign-in page has expired. Go back to the application and start again.</p>'));
  }
  if (details.uid !== uid) return send(res, 400, page('Sign-in expired', ''));
  const { prompt, params } = details;
  if (req.method === 'GET' && !action) {
    if (prompt.name === 'login') return send(res, 200, loginForm(uid));
    const scopes = [...(prompt.details.missingOIDCScope || [])];
    return send(res, 200, consentForm(uid, params.client_id, scopes));
  }
  if (req.method !== 'POST') return send(res, 405, page('Method not allowed', ''));
  const form = await readForm(req);
  if (action === 'abort') {
    return provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'the user cancelled' }, { mergeWithLastSubmission: false });
  }
  if (action === 'login') {
    const user = users.get(form.get('username') || '');
    const given = Buffer.from(form.get('password') || '');
    const wanted = Buffer.from(user?.password || '\0');
    if (!user || given.length !== wanted.length || !crypto.timingSafeEqual(given, wanted)) {
      return send(res, 200, loginForm(uid, 'Unknown user or wrong password.'));
    }
    return provider.interactionFinished(req, res, { login: { accountId: user.username } }, { mergeWithLastSubmission: false });
  }
  // confirm: grant what was asked
  const { accountId } = details.session;
  let grant = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
  if (!grant) grant = new provider.Grant({ accountId, clientId: params.client_id });
  if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

const callback = provider.callback();
const server = http.createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((err) => {
      console.error(`interaction failed: ${err.message}`);
      if (!res.headersSent) send(res, 500, page('Sign-in failed', '<p>Try again.</p>'));
    });
    return;
  }
  callback(req, res);
});

provider.on('server_error', (ctx, err) => console.error(`server_error: ${err.message}`));
provider.on('grant.error', (ctx, err) => console.error(`grant.error: ${err.error || err.message}: ${err.error_description || ''}`));

server.listen(settings.port, settings.host, () => {
  const { port } = server.address();
  console.log(JSON.stringify({ ready: settings.issuer, port }));
});

function shutdown() {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
