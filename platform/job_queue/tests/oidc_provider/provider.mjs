// A real OpenID provider for test_oidc_real_provider.py: panva's oidc-provider (OpenID
// Certified), as it comes, on plain http://127.0.0.1 (a development set-up: no proxy, no TLS).
//
//   node provider.mjs <port>          (or OIDC_PORT=<port>)
//
// Environment:
//   OIDC_CLIENT_ID, OIDC_CLIENT_SECRET   the one client (confidential: client_secret_basic)
//   OIDC_REDIRECT_URI                    its one redirect URI (the job queue's /auth/callback)
//
// Sign-in uses the library's built-in development interactions: a login page that takes any
// login name and password (the login becomes the account id), then a consent page. Every
// account has the claims the job queue reads at the userinfo endpoint: sub, preferred_username
// (the job queue's username), name, email, and `roles` (EBRAINS-like team roles, scope team).
// Access tokens are the library's default: opaque, valid at its userinfo endpoint (/me).
import { generateKeyPairSync } from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.argv[2] ?? process.env.OIDC_PORT);
const { OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URI } = process.env;
if (!port || !OIDC_CLIENT_ID || !OIDC_CLIENT_SECRET || !OIDC_REDIRECT_URI) {
  console.error('usage: OIDC_CLIENT_ID=.. OIDC_CLIENT_SECRET=.. OIDC_REDIRECT_URI=.. '
    + 'node provider.mjs <port>');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

// A signing key of this run (the library would otherwise use its built-in development key).
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: OIDC_CLIENT_ID,
    client_secret: OIDC_CLIENT_SECRET,
    redirect_uris: [OIDC_REDIRECT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  // The library requires PKCE of public clients only; this client is confidential, and PKCE
  // (S256, its only method) is required of it too, as the job queue always sends it.
  pkce: { required: () => true },
  scopes: ['openid', 'profile', 'email', 'team'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email'],
    team: ['roles'],
  },
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          preferred_username: id,
          name: `Test User ${id}`,
          email: `${id}@example.org`,
          roles: { team: [`collab-oidc-real-${id}-editor`], group: [] },
        };
      },
    };
  },
  features: {
    devInteractions: { enabled: true }, // the library's login and consent pages
    userinfo: { enabled: true },
  },
  cookies: { keys: ['nmpi-test-only-cookie-key'] },
  jwks: { keys: [signingKey] },
});

provider.on('server_error', (_ctx, error) => console.error('server_error', error));

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening at ${issuer}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections(); // the browser's keep-alive connections too
  });
}
