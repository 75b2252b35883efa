// Validation as the user types, with the same schema and the same wording as the host (src/protocol):
// the validator is precompiled at build time (webview/build/config-validator-plugin.mjs) because the
// webview's CSP forbids the eval that ajv.compile needs.
import validate from 'virtual:config-validator';
import { issuesFromAjvErrors } from '../src/protocol/config-issues';

export interface FieldIssue {
  /** JSON pointer of the field the message belongs next to (a missing property points at itself). */
  field: string;
  message: string;
}

export function validateDraft(config: unknown): FieldIssue[] {
  if (validate(config)) return [];
  const out: FieldIssue[] = [];
  const seen = new Set<string>();
  for (const e of validate.errors ?? []) {
    const [issue] = issuesFromAjvErrors([e]);
    if (!issue) continue;
    const params = e.params as { missingProperty?: string; additionalProperty?: string };
    const field = e.keyword === 'required' ? `${e.instancePath}/${params.missingProperty}`
      : e.keyword === 'additionalProperties' ? `${e.instancePath}/${params.additionalProperty}` : e.instancePath;
    const key = `${field}\n${issue.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ field, message: issue.message });
  }
  return out;
}

/** The message without its leading pointer, for display right next to the field. */
export function shortMessage(issue: FieldIssue): string {
  const m = issue.message;
  for (const prefix of [`${issue.field} `, `${issue.field}: `]) if (m.startsWith(prefix)) return m.slice(prefix.length);
  return m.replace(/^\/\S*:? /, '');
}
