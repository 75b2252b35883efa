// esbuild plugin: `import validate from 'virtual:config-validator'` gives the webview the training-config
// validator precompiled from schemas/ at build time (ajv standalone code). The webview's CSP has no
// 'unsafe-eval', so ajv.compile (new Function) cannot run there; the wording of messages stays shared
// through src/protocol/config-issues.ts.
import fs from 'node:fs';
import path from 'node:path';
import Ajv from 'ajv';
import standaloneCode from 'ajv/dist/standalone/index.js';

const SCHEMA = path.resolve('schemas/training-config.schema.json');

export const configValidatorPlugin = {
  name: 'config-validator',
  setup(build) {
    build.onResolve({ filter: /^virtual:config-validator$/ }, () => ({ path: SCHEMA, namespace: 'config-validator' }));
    build.onLoad({ filter: /.*/, namespace: 'config-validator' }, () => {
      const schema = JSON.parse(fs.readFileSync(SCHEMA, 'utf8'));
      // same options as src/protocol/config.ts so both sides report the same errors
      const ajv = new Ajv({ allErrors: true, strict: false, code: { source: true, esm: true } });
      const generate = standaloneCode.default ?? standaloneCode;
      return { contents: generate(ajv, ajv.compile(schema)), loader: 'js', resolveDir: process.cwd(), watchFiles: [SCHEMA] };
    });
  },
};
