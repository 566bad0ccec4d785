// Drives the official Stytch Node SDK (the `stytch` package pinned in package.json)
// against a Stytch stand-in, for the Rust interop tests (tests/it/interop_stytch.rs).
//
//   STYTCH_SECRET=… node stytch-driver.mjs BASE_URL PROJECT_ID
//
// (BASE_URL and PROJECT_ID may also come from STYTCH_BASE_URL and STYTCH_PROJECT_ID.)
// The SDK is pointed at BASE_URL with its `env` option: `custom_base_url` insists on
// https, `env` takes a plain-http loopback URL with a warning (on stderr).
//
// Protocol: one JSON step per line on stdin, one JSON answer per line on stdout, in
// order. A step is
//   {"name": "…", "client": "consumer" | "b2b", "method": "authenticate", "params": {…},
//    "secret": "…" (optional: another project secret, e.g. a wrong one)}
// where `method` is one of the SDK's `sessions.*` methods. `params.current_date`, if
// given, is in milliseconds since the epoch (the SDK takes a Date). The answer is
//   {"name": "…", "ok": true, "answer": <what the SDK returned>}
// or
//   {"name": "…", "ok": false, "error": {"class", "message", and the error's own fields:
//    status_code, request_id, error_type, error_message, error_url (StytchError),
//    code (ClientError)}}.
// The first line printed is {"name": "ready", "ok": true, "answer": {versions}}.

import { readFileSync } from "node:fs";
import readline from "node:readline";

import stytch from "stytch";

// The package's exports hide its package.json; read the installed one directly.
const stytchVersion = JSON.parse(
  readFileSync(new URL("./node_modules/stytch/package.json", import.meta.url), "utf8"),
).version;

const baseUrl = process.argv[2] ?? process.env.STYTCH_BASE_URL;
const projectId = process.argv[3] ?? process.env.STYTCH_PROJECT_ID;
const secret = process.env.STYTCH_SECRET;
if (!baseUrl || !projectId || !secret) {
  console.error("usage: STYTCH_SECRET=… node stytch-driver.mjs BASE_URL PROJECT_ID");
  process.exit(2);
}

// The only methods a step may call: the session API under test.
const METHODS = new Set([
  "authenticate",
  "authenticateJwt",
  "authenticateJwtLocal",
  "get",
  "getJWKS",
  "revoke",
]);

// One client per (kind, secret): the SDK caches the JWKS per client, as an app would.
const clients = new Map();
function client(kind, projectSecret) {
  const key = `${kind} ${projectSecret}`;
  if (!clients.has(key)) {
    const config = { project_id: projectId, secret: projectSecret, env: baseUrl, timeout: 10_000 };
    let made;
    if (kind === "consumer") {
      made = new stytch.Client(config);
    } else if (kind === "b2b") {
      made = new stytch.B2BClient(config);
    } else {
      throw new Error(`unknown client kind ${JSON.stringify(kind)}`);
    }
    clients.set(key, made);
  }
  return clients.get(key);
}

// An error as the SDK exposes it: its class and its own fields.
function describe(error) {
  const out = { class: error?.constructor?.name ?? typeof error, message: String(error?.message ?? error) };
  for (const field of ["status_code", "request_id", "error_type", "error_message", "error_url", "error_details", "code"]) {
    if (error && error[field] !== undefined) {
      out[field] = error[field];
    }
  }
  return out;
}

async function run(step) {
  const { name, client: kind, method, params = {}, secret: otherSecret } = step;
  if (!METHODS.has(method)) {
    throw new Error(`method ${JSON.stringify(method)} is not a sessions method this driver runs`);
  }
  const args = { ...params };
  if (typeof args.current_date === "number") {
    args.current_date = new Date(args.current_date);
  }
  const sessions = client(kind, otherSecret ?? secret).sessions;
  try {
    const answer = await sessions[method](args);
    return { name, ok: true, answer };
  } catch (error) {
    return { name, ok: false, error: describe(error) };
  }
}

function emit(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

emit({ name: "ready", ok: true, answer: { node: process.version, stytch: stytchVersion } });

const input = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of input) {
  if (!line.trim()) {
    continue;
  }
  let step;
  try {
    step = JSON.parse(line);
  } catch (error) {
    emit({ name: "?", ok: false, error: { class: "DriverError", message: `not JSON: ${error.message}` } });
    continue;
  }
  try {
    emit(await run(step));
  } catch (error) {
    emit({ name: step.name ?? "?", ok: false, error: { class: "DriverError", message: String(error?.message ?? error) } });
  }
}
