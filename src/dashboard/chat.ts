// The playground's chat, as the tutorial's QA chatbot builds it: every earlier turn rendered in the adapter's
// training template with its answer and the EOS token (the shape of a training row), then the new question in the
// template. Pure functions; the playground (playground.ts) applies them.
import type { ChatTurn } from '../protocol/messages';
import { type PromptTemplate, renderPrompt } from '../protocol/template';

/** As in the training rows: the first line of a message is the instruction, the rest its input. */
export function messageFields(text: string): { instruction: string; input: string; prompt: string } {
  const nl = text.indexOf('\n');
  const fields = nl < 0 ? { instruction: text.trim(), input: '' } : { instruction: text.slice(0, nl).trim(), input: text.slice(nl + 1).trim() };
  return { ...fields, prompt: text.trim() };
}

/**
 * `Human: q1\n\nAssistant: a1</s>Human: q2\n\nAssistant: ` for the tutorial's template: each finished turn is a
 * training row (prompt, answer, EOS), and the question is a prompt awaiting its answer.
 */
export function renderChat(template: PromptTemplate, history: readonly ChatTurn[], question: string, eosText: string): string {
  const turns = history.map(t => renderPrompt(template, messageFields(t.user)) + t.assistant.trim() + eosText);
  return turns.join('') + renderPrompt(template, messageFields(question));
}

/** The EOS token's text in a tokenizer.json (`</s>` for BLOOM), which the tokenizer maps back to the EOS id. */
export function eosTokenText(tokenizerJson: unknown, eosId: number | null | undefined): string {
  const added = (tokenizerJson as { added_tokens?: Array<{ id?: number; content?: string }> } | null)?.added_tokens;
  return (eosId !== null && eosId !== undefined && added?.find(t => t.id === eosId)?.content) || '';
}
