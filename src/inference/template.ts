// Builds the prompt an instruction-tuned export expects, from the template recorded in its manifest
// (the same rule as the trainer: placeholders replaced, the result stripped, then response_prefix).
import type { ExportManifest } from './manifest';

export interface PromptFields { instruction?: string; input?: string; prompt?: string }

export function formatPrompt(template: NonNullable<ExportManifest['template']>, fields: PromptFields): string {
  const body = template.prompt.replace(/\{(instruction|input|prompt)\}/g, (_, k: keyof PromptFields) => fields[k] ?? '');
  return body.trim() + template.response_prefix;
}
