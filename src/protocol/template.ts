// The template rule, once for the host: how a training row's prompt is rendered. The trainer's twin is
// trainer/src/bloom_peft/data.py render_prompt(); both pass the shared vectors in schemas/vectors/templates.json.

/** A training template (schemas/training-config.schema.json `template`, recorded in an export's manifest). */
export interface PromptTemplate {
  /** e.g. "Human: {instruction}\n{input}" */
  prompt: string;
  /** e.g. "\n\nAssistant: " */
  response_prefix: string;
}

export interface PromptFields { instruction?: string; input?: string; prompt?: string }

// Python's str.strip() set: JavaScript's trim() also strips U+FEFF and keeps U+001C..U+001F and U+0085.
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'g');

/** Python's str.strip(), so that a prompt is stripped exactly as the trainer strips it. */
export function pyStrip(text: string): string {
  return text.replace(PY_STRIP, '');
}

/**
 * Placeholders replaced in one pass (a value's own "{input}" stays literal), the result stripped, then the
 * response prefix. {prompt} is instruction and input on two lines unless given.
 */
export function renderPrompt(template: PromptTemplate, fields: PromptFields): string {
  const instruction = fields.instruction ?? '';
  const input = fields.input ?? '';
  const values = { instruction, input, prompt: fields.prompt ?? pyStrip([instruction, input].join('\n')) };
  const body = template.prompt.replace(/\{(instruction|input|prompt)\}/g, (_, key: keyof typeof values) => values[key]);
  return pyStrip(body) + template.response_prefix;
}
