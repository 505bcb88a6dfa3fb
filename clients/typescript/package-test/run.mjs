// Run by test-package.sh with plain Node (no bundler, no TypeScript transform) in a scratch app
// that installed the packed tarball, against a throwaway server (with-server.sh sets
// HOMEWORK_URL, HOMEWORK_CLIENT_ID and HOMEWORK_CLIENT_SECRET). The same calls are made through
// both builds: `import` (dist/index.js) and `require` (dist/index.cjs).
import assert from "node:assert/strict";
import { createRequire } from "node:module";

import * as esm from "@homework/api-client";

const require = createRequire(import.meta.url);
const cjs = require("@homework/api-client");

assert.match(import.meta.resolve("@homework/api-client"), /\/node_modules\/@homework\/api-client\/dist\/index\.js$/);
assert.match(require.resolve("@homework/api-client"), /\/node_modules\/@homework\/api-client\/dist\/index\.cjs$/);

const { HOMEWORK_URL: url, HOMEWORK_CLIENT_ID: clientId, HOMEWORK_CLIENT_SECRET: secret } = process.env;
assert.ok(url && clientId && secret, "run me through with-server.sh");

for (const [build, client] of [["import", esm], ["require", cjs]]) {
  assert.deepEqual(
    Object.keys(client).filter((name) => name !== "default").sort(),
    ["TokenError", "createHomeworkClient", "getToken"],
    `${build}: the exports`,
  );

  const token = await client.getToken(url, clientId, secret, { grant_type: "client_credentials" });
  const api = client.createHomeworkClient(`${url}/`, token.access_token);

  const health = await api.GET("/healthz");
  assert.equal(health.response.status, 200, `${build}: GET /healthz`);
  assert.deepEqual(health.data, { status: "ok" });

  const templates = await api.GET("/v1/templates", { params: { query: { limit: 50 } } });
  assert.equal(templates.response.status, 200, `${build}: GET /v1/templates ${JSON.stringify(templates.error)}`);
  assert.ok(templates.data.data.some((template) => template.id === "tpl_builtin_mood_log"));

  await assert.rejects(
    client.getToken(url, clientId, "hws_not-the-secret", { grant_type: "client_credentials" }),
    (error) => error instanceof client.TokenError && error.status === 401 && error.error === "invalid_client",
    `${build}: a wrong secret is a TokenError`,
  );
  console.log(
    `${build}: a system token, GET /healthz, GET /v1/templates (${templates.data.data.length} templates), ` +
      "a TokenError for a wrong secret: OK",
  );
}
