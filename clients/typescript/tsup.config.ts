// `npm run build` (and `npm pack`, through prepack): src/index.ts to dist/ as ESM (index.js),
// CommonJS (index.cjs) and their declarations (index.d.ts, index.d.cts; the generated schema
// inlined, openapi-fetch's types imported from the dependency).
import { defineConfig, type Options } from "tsup";

type Plugin = NonNullable<Options["esbuildPlugins"]>[number];

// openapi-fetch is a dependency, imported as such by the ESM build. The CommonJS build carries
// its own copy instead: openapi-fetch's CommonJS file exports `createClient` as
// `exports.default`, and esbuild, converting our `import createClient from "openapi-fetch"`
// (an ES module, by "type": "module") to `require`, follows Node's rule that an ES module's
// default import of CommonJS is the whole `module.exports`: the call would be to an object.
// Bundled, the CommonJS build uses openapi-fetch's ES module, with no interop at all.
const externalInEsmOnly: Plugin = {
  name: "openapi-fetch-external-in-esm-only",
  setup(build) {
    const esm = build.initialOptions.format === "esm";
    build.onResolve({ filter: /^openapi-fetch$/ }, (args) =>
      esm ? { path: args.path, external: true } : undefined,
    );
  },
};

export default defineConfig({
  entry: ["src/index.ts"],
  format: ["esm", "cjs"],
  dts: true,
  clean: true,
  // Node 20 and the browsers a clinic's staff use run ES2022; the code needs only fetch,
  // URLSearchParams and btoa, which both have.
  target: "es2022",
  platform: "neutral",
  outDir: "dist",
  noExternal: ["openapi-fetch"],
  esbuildPlugins: [externalInEsmOnly],
});
