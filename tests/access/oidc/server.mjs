// A real OpenID Connect provider for medal's access tests: the certified `oidc-provider`, configured by
// the JSON file named on the command line (written by tests/access/provider.py). Prints "ready" once listening.
import { readFileSync } from 'node:fs';
import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const machines = Object.fromEntries(config.machines.map((m) => [m.client_id, m]));
const people = config.people;

const clients = [
  ...config.machines.map((m) => ({
    client_id: m.client_id,
    client_secret: m.client_secret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_post',
  })),
  {
    client_id: config.web_client_id,
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    redirect_uris: config.redirect_uris ?? [config.redirect_uri],
    response_types: ['code'],
  },
];

const provider = new Provider(config.issuer, {
  clients,
  jwks: { keys: [config.signing_key] },
  cookies: { keys: [config.cookie_secret] },
  pkce: { required: () => true },
  scopes: ['openid', 'profile', 'api', 'offline_access'],
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => config.audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource, client) => {
        if (!config.resources.includes(resource)) throw new errors.InvalidTarget();
        const machine = machines[client.clientId];
        return {
          scope: 'api',
          audience: resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL: (machine && machine.ttl) || config.ttl,
          jwt: { sign: { alg: config.signing_key.alg } },
        };
      },
    },
  },
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, name: (people[id] || {}).name || id }),
  }),
  extraTokenClaims: async (ctx, token) => {
    if (token.kind === 'ClientCredentials') return (machines[token.clientId] || {}).claims || {};
    const person = people[token.accountId] || {};
    return { ...(person.claims || {}), name: person.name || token.accountId };
  },
});
provider.proxy = false;

const server = provider.listen(config.port, '127.0.0.1', () => process.stdout.write('ready\n'));
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
