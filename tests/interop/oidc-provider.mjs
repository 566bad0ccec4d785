// A certified OpenID provider (the `oidc-provider` npm package, unmodified) on
// loopback, configured for tower-stepup's interop tests (`tests/it/interop_oidc.rs`).
//
// Usage: node oidc-provider.mjs [--port N] [--keys FILE]
//   --port  the port to listen on, on 127.0.0.1 (default 0: any free port)
//   --keys  a JSON file with the private signing keys ({"keys": [JWK, ...]}); created
//           with a fresh ES256 and a fresh RS256 key when missing, so a restart with
//           another file serves NEW keys (default: env OIDC_KEYS, else fresh keys
//           that are not written anywhere)
//
// When ready it prints ONE JSON line on stdout:
//   {"issuer": "http://127.0.0.1:PORT", "port": PORT, "version": "<oidc-provider version>",
//    "kids": ["...", "..."]}
// and exits when its stdin closes (so a killed test never leaves it running).
//
// What it serves (only what the tests need; everything else keeps the library's defaults):
// - resources (RFC 8707 `resource` indicators):
//     https://api.example/jwt        RFC 9068 JWT access tokens, ES256, aud = itself
//     https://api.example/jwt-rs256  JWT, RS256, aud = https://api.example/jwt (same API,
//                                    other key type)
//     https://api.example/opaque     opaque access tokens (introspection)
//     https://other.example/api      JWT, ES256, aud = itself (someone else's API)
// - `acr`, `amr`, `auth_time` of the login in every user's access token
//   (`extraTokenClaims`: JWT claims, or top-level introspection members)
// - clients: `app` (authorization code, refresh token, client credentials;
//   client_secret_basic) and `rs` (the resource server: introspection, revocation)
// - introspection (RFC 7662, default policy) and revocation (RFC 7009: by the
//   token's client, or by `rs` for access tokens of https://api.example/opaque)
// - TEST-ONLY headless interaction, in place of a login page:
//     GET  /interaction/:uid        the interaction as JSON ({uid, prompt, params})
//     POST /interaction/:uid/login  form sub, acr, amr (space separated), auth_time
//                                   (unix seconds; default now) -> 303 back to the
//                                   authorization endpoint, as a login page would
//   Consent is implied: every requested scope and resource is granted.
//
// NEVER expose this: it logs anyone in as anyone at any `acr`.

import { createServer } from 'node:http';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync, randomBytes } from 'node:crypto';

// oidc-provider prints notices with console.info: keep stdout for the ready line.
console.info = (...args) => console.error(...args);

const { default: Provider, interactionPolicy, errors } = await import('oidc-provider');
const { version } = JSON.parse(
  readFileSync(new URL('./node_modules/oidc-provider/package.json', import.meta.url), 'utf8'),
);

function argument(name) {
  const at = process.argv.indexOf(`--${name}`);
  return at === -1 ? undefined : process.argv[at + 1];
}

// ---------------------------------------------------------------------------------
// Signing keys
// ---------------------------------------------------------------------------------

function freshKeys() {
  const kid = (alg) => `${alg.toLowerCase()}-${randomBytes(6).toString('hex')}`;
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  return {
    keys: [
      // First RSA key signs ID tokens (RS256, the OIDC default); the resources pick
      // their algorithm below.
      { ...rsa, kid: kid('RS256'), alg: 'RS256', use: 'sig' },
      { ...ec, kid: kid('ES256'), alg: 'ES256', use: 'sig' },
    ],
  };
}

function loadKeys(file) {
  if (!file) return freshKeys();
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8'));
  const keys = freshKeys();
  writeFileSync(file, JSON.stringify(keys), { mode: 0o600 });
  return keys;
}

const jwks = loadKeys(argument('keys') ?? process.env.OIDC_KEYS);

// ---------------------------------------------------------------------------------
// Resource servers
// ---------------------------------------------------------------------------------

const JWT_API = 'https://api.example/jwt';
const OPAQUE_API = 'https://api.example/opaque';
const RESOURCES = {
  [JWT_API]: { scope: 'read write', accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } },
  'https://api.example/jwt-rs256': {
    scope: 'read write',
    audience: JWT_API,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  },
  [OPAQUE_API]: { scope: 'read write', accessTokenFormat: 'opaque' },
  'https://other.example/api': { scope: 'read write', accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } },
};

// ---------------------------------------------------------------------------------
// Interaction policy
// ---------------------------------------------------------------------------------

// oidc-provider treats `acr_values` as OIDC Core §3.1.2.1 allows: a *voluntary*
// request. A session at a lower `acr` is reused without a new login, and the code
// carries the old `acr`. An RFC 9470 step-up needs the login to happen again, so,
// as a deployment doing step-up must, we add a login check: prompt when the
// session's `acr` is not one of the requested values. After an interaction
// (`result.login`) the provider accepts whatever the login achieved, possibly
// still a lower `acr` (the resource server must check again; the tests do).
const policy = interactionPolicy.base();
policy.get('login').checks.add(
  new interactionPolicy.Check('acr_values', 'requested ACR not satisfied by the session', (ctx) => {
    const { oidc } = ctx;
    const requested = oidc.params.acr_values?.split(' ').filter(Boolean);
    if (!requested?.length || oidc.result?.login) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
    return requested.includes(oidc.acr)
      ? interactionPolicy.Check.NO_NEED_TO_PROMPT
      : interactionPolicy.Check.REQUEST_PROMPT;
  }),
);

// ---------------------------------------------------------------------------------
// The provider
// ---------------------------------------------------------------------------------

const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(argument('port') ?? 0), '127.0.0.1', resolve);
});
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  jwks,
  acrValues: ['pwd', 'mfa', 'phr'],
  clients: [
    {
      client_id: 'app',
      client_secret: 'app-secret',
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      redirect_uris: ['https://app.example/cb'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      client_id: 'rs',
      client_secret: 'rs-secret',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  cookies: { keys: [randomBytes(32).toString('hex')] },
  interactions: { policy, url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: {
      enabled: true,
      // RFC 7009 §2.1: a client revokes the tokens issued to it. As a deployment
      // choice, the resource server `rs` may also revoke access tokens for its own
      // API (a logout at the API: `SessionControl::revoke`).
      allowedPolicy(_ctx, client, token) {
        if (token.clientId === client.clientId) return true;
        if (client.clientId === 'rs' && token.kind === 'AccessToken' && token.aud === OPAQUE_API) return true;
        throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
      },
    },
    resourceIndicators: {
      enabled: true,
      // The access token is for the resource the authorization request named.
      useGrantedResource: () => true,
      getResourceServerInfo(_ctx, indicator) {
        const info = RESOURCES[indicator];
        if (!info) throw new errors.InvalidTarget();
        return { accessTokenTTL: 600, ...info };
      },
    },
  },
  async findAccount(_ctx, sub) {
    return { accountId: sub, claims: async () => ({ sub }) };
  },
  // The user's authentication, as the authorization code (or refresh token) records
  // it, goes into the access token. Client-credentials tokens have no user: none.
  async extraTokenClaims(ctx, token) {
    const source = ctx.oidc.entities.AuthorizationCode ?? ctx.oidc.entities.RefreshToken;
    if (token.kind !== 'AccessToken' || !source) return undefined;
    return { acr: source.acr, amr: source.amr, auth_time: source.authTime };
  },
  // Consent is implied: grant every requested OpenID scope and resource scope.
  async loadExistingGrant(ctx) {
    const { oidc } = ctx;
    const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
    const grant = (grantId && (await oidc.provider.Grant.find(grantId)))
      || new oidc.provider.Grant({ accountId: oidc.session.accountId, clientId: oidc.client.clientId });
    grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
    for (const [indicator, resourceServer] of Object.entries(oidc.resourceServers ?? {})) {
      grant.addResourceScope(indicator, resourceServer.scope);
    }
    await grant.save();
    return grant;
  },
  ttl: {
    AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 600,
    ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 600,
    Grant: 3600,
    IdToken: 600,
    Interaction: 600,
    RefreshToken: 3600,
    Session: 3600,
  },
});

// TEST-ONLY headless interaction (see the header).
provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([^/]+)(\/login)?$/.exec(ctx.path);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== match[1]) ctx.throw(400, 'interaction mismatch');
  if (!match[2] && ctx.method === 'GET') {
    ctx.body = { uid: details.uid, prompt: details.prompt, params: details.params };
    return undefined;
  }
  if (match[2] && ctx.method === 'POST') {
    const chunks = [];
    for await (const chunk of ctx.req) chunks.push(chunk);
    const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
    const sub = form.get('sub');
    if (!sub) ctx.throw(400, 'sub is required');
    const login = {
      accountId: sub,
      acr: form.get('acr') || undefined,
      amr: form.get('amr')?.split(' ').filter(Boolean),
      ts: form.has('auth_time') ? Number(form.get('auth_time')) : Math.floor(Date.now() / 1000),
      remember: true,
    };
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, { login }, {
      mergeWithLastSubmission: false,
    });
    ctx.status = 303;
    ctx.redirect(returnTo);
    return undefined;
  }
  ctx.throw(405);
  return undefined;
});

server.on('request', provider.callback());

process.stdout.write(`${JSON.stringify({ issuer, port, version, kids: jwks.keys.map((k) => k.kid) })}\n`);

// The test holds our stdin: when it goes away, so do we.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
