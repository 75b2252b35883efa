// Build-time module made by webview/build/config-validator-plugin.mjs (ajv standalone code for the training config schema).
declare module 'virtual:config-validator' {
  import type { ErrorObject } from 'ajv';
  interface StandaloneValidate { (data: unknown): boolean; errors?: ErrorObject[] | null }
  const validate: StandaloneValidate;
  export default validate;
}
