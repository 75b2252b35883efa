// Builds the prompt an instruction-tuned export expects, from the template recorded in its manifest: the
// trainer's rule, defined once for the host in src/protocol/template.ts.
export { renderPrompt as formatPrompt, type PromptFields } from '../protocol/template';
