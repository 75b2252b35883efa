// Turns ajv errors into field-located messages. Kept apart from config.ts (which compiles the schema with
// ajv at load time, i.e. with new Function) so the webview, whose CSP forbids eval, can share the wording
// with a validator precompiled at build time.
import type { ErrorObject } from 'ajv';

/** One validation problem, located by the JSON pointer of the offending field ("" = the whole config). */
export interface ConfigIssue { path: string; message: string }

export function issuesFromAjvErrors(errors: readonly ErrorObject[] | null | undefined): ConfigIssue[] {
  return dedupe((errors ?? []).filter(e => e.keyword !== 'if' && e.keyword !== 'allOf').map(toIssue));
}

function toIssue(e: ErrorObject): ConfigIssue {
  const path = e.instancePath;
  const field = path || '(config)';
  let message = `${field} ${e.message ?? 'is invalid'}`;
  if (e.keyword === 'additionalProperties') message = `${field}: unknown option "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  if (e.keyword === 'required') message = `${field}: missing "${(e.params as { missingProperty: string }).missingProperty}"`;
  if (e.keyword === 'enum') message = `${field} must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map(v => JSON.stringify(v)).join(', ')}`;
  return { path, message };
}

function dedupe(issues: ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  return issues.filter(i => (seen.has(i.message) ? false : (seen.add(i.message), true)));
}
