// The method list, from the schema's method.name enum (no validator here: the webview imports this at run time,
// and its CSP forbids the ajv.compile that config.ts does).
import schema from '../../schemas/training-config.schema.json';
import type { MethodConfig } from './generated/training-config';

export type MethodName = MethodConfig['name'];
/** The methods, in the schema's order. */
export const METHOD_NAMES: readonly MethodName[] = schema.properties.method.properties.name.enum as MethodName[];
