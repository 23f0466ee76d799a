// Who is calling and how: sign-in with the hospital's identity provider (authorization code + PKCE, S256),
// or an API key for a laptop or a script. Credentials live in this tab only (sessionStorage), never in
// localStorage: closing the tab signs out. The rights from /v1/me let the pages hide what the caller may not do.

export interface SignInConfig {
  enabled: boolean;
  issuer: string | null;
  client_id: string | null;
  audience: string | null;
  authorization_endpoint: string | null;
  token_endpoint: string | null;
}

export interface Rights {
  id: string;
  name: string;
  kind: "local" | "api-key" | "oidc" | "platform-key" | "service";
  platform_admin: boolean;
  platform_actions: string[];
  projects: Record<string, { role: string; actions: string[] }>;
}

const TOKEN = "medal.token";
const KEY = "medal.apiKey";
const PENDING = "medal.signIn";
const CONFIG_URL = "/annotation/v1/auth/config";

interface Token {
  access_token: string;
  expires_at: number;
}

interface Pending {
  state: string;
  verifier: string;
  back: string;
}

let rights: Rights | null = null;
let config: SignInConfig | null = null;

export function apiKey(): string {
  return sessionStorage.getItem(KEY) ?? "";
}

export function setApiKey(key: string): void {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
  rights = null;
}

function token(): Token | null {
  const raw = sessionStorage.getItem(TOKEN);
  if (!raw) return null;
  const parsed = JSON.parse(raw) as Token;
  if (parsed.expires_at <= Date.now()) {
    sessionStorage.removeItem(TOKEN);
    return null;
  }
  return parsed;
}

/** The credential headers of every API request: the access token as Bearer, else the API key. */
export function credentials(): Record<string, string> {
  const signedIn = token();
  if (signedIn) return { Authorization: `Bearer ${signedIn.access_token}` };
  const key = apiKey();
  return key ? { "X-API-Key": key } : {};
}

export function hasCredentials(): boolean {
  return Object.keys(credentials()).length > 0;
}

export function signOut(): void {
  sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(KEY);
  rights = null;
}

export async function signInConfig(): Promise<SignInConfig> {
  if (!config) {
    const response = await fetch(CONFIG_URL);
    config = response.ok ? ((await response.json()) as SignInConfig) : { enabled: false } as SignInConfig;
  }
  return config;
}

function base64url(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function random(length = 32): string {
  return base64url(crypto.getRandomValues(new Uint8Array(length)));
}

function redirectUri(): string {
  return `${location.origin}${location.pathname}`;
}

/** Off to the provider's sign-in page; it comes back to this page with ?code=…&state=…. */
export async function signIn(): Promise<void> {
  const cfg = await signInConfig();
  if (!cfg.enabled || !cfg.authorization_endpoint || !cfg.client_id) throw new Error("no identity provider is configured");
  const verifier = random(48);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const pending: Pending = { state: random(16), verifier, back: location.hash || "#/" };
  sessionStorage.setItem(PENDING, JSON.stringify(pending));
  const url = new URL(cfg.authorization_endpoint);
  const params: Record<string, string> = {
    response_type: "code",
    client_id: cfg.client_id,
    redirect_uri: redirectUri(),
    scope: "openid profile",
    state: pending.state,
    code_challenge: base64url(digest),
    code_challenge_method: "S256",
  };
  if (cfg.audience) params.resource = cfg.audience; // the API the token is for (RFC 8707)
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  location.assign(url.toString());
}

/** Back from the provider: trade the code (with the PKCE verifier) for an access token. True if signed in. */
export async function completeSignIn(): Promise<boolean> {
  const query = new URLSearchParams(location.search);
  const code = query.get("code");
  const raw = sessionStorage.getItem(PENDING);
  if (!query.has("state")) return false;
  sessionStorage.removeItem(PENDING);
  const pending = raw ? (JSON.parse(raw) as Pending) : null;
  history.replaceState(null, "", `${location.pathname}${pending?.back ?? "#/"}`);
  if (query.get("error")) throw new Error(`sign-in refused: ${query.get("error_description") ?? query.get("error")}`);
  if (!code || !pending || pending.state !== query.get("state")) throw new Error("sign-in answer does not match this browser's request");
  const cfg = await signInConfig();
  const form = new URLSearchParams({
    grant_type: "authorization_code",
    code,
    redirect_uri: redirectUri(),
    client_id: cfg.client_id ?? "",
    code_verifier: pending.verifier,
  });
  const response = await fetch(cfg.token_endpoint ?? "", { method: "POST", body: form });
  if (!response.ok) throw new Error(`the identity provider refused the sign-in (HTTP ${response.status})`);
  const answer = (await response.json()) as { access_token: string; expires_in?: number };
  const stored: Token = { access_token: answer.access_token, expires_at: Date.now() + (answer.expires_in ?? 300) * 1000 };
  sessionStorage.setItem(TOKEN, JSON.stringify(stored));
  rights = null;
  return true;
}

/** The caller's rights (cached until the credential changes); null when not signed in. */
export async function loadRights(): Promise<Rights | null> {
  if (rights) return rights;
  const response = await fetch("/annotation/v1/me", { headers: credentials() });
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN);
    return null;
  }
  if (!response.ok) throw new Error(`who you are could not be loaded (HTTP ${response.status})`);
  rights = (await response.json()) as Rights;
  return rights;
}

/** Whether the caller may do ``action`` (in ``project``, or on the platform): what the pages show. */
export function may(action: string, project?: string | null): boolean {
  if (!rights) return false;
  if (rights.platform_admin) return true;
  if (!project) return rights.platform_actions.includes(action);
  return rights.projects[project]?.actions.includes(action) ?? false;
}

export function currentRights(): Rights | null {
  return rights;
}
