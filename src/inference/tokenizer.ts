// Tokenizer on @huggingface/tokenizers (pure JS) with the same ids as the Python `tokenizers` crate.
// Differences of @huggingface/tokenizers 0.2.0 that we work around (see docs/engine.md):
//  - decode([]) throws "token_ids must be a non-empty array"; Python returns "". We return "".
//  - without a tokenizer_config.json it would apply clean_up_tokenization_spaces on decode
//    ("a ." -> "a."), unlike tokenizers.Tokenizer.decode; exports carry only tokenizer.json, so we pass
//    clean_up_tokenization_spaces: false explicitly.
import fs from 'node:fs';
import { Tokenizer } from '@huggingface/tokenizers';
import { EngineError } from './errors';

export class TextTokenizer {
  private constructor(private readonly tok: Tokenizer, readonly path: string) {}

  /** `model`: the export's vocabulary (manifest vocab_size), which the tokenizer must fit (checkVocabulary). */
  static fromFile(file: string, model?: { vocabSize: number; manifest: string }): TextTokenizer {
    let json: unknown;
    try {
      json = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      throw new EngineError('TOKENIZER_INVALID', `cannot read ${file}: ${(e as Error).message}`, { path: file, hint: 'tokenizer.json must be the Hugging Face tokenizers JSON saved with the model' });
    }
    const tokenizer = TextTokenizer.fromJSON(json, file);
    if (model) checkVocabulary(tokenizerIds(json), model.vocabSize, file, model.manifest);
    return tokenizer;
  }

  static fromJSON(json: unknown, where = 'tokenizer.json'): TextTokenizer {
    try {
      return new TextTokenizer(new Tokenizer(json as object, { clean_up_tokenization_spaces: false }), where);
    } catch (e) {
      throw new EngineError('TOKENIZER_INVALID', `${where} is not a supported tokenizer: ${(e as Error).message}`, { path: where, hint: 'BLOOM exports use a byte-level BPE tokenizer.json' });
    }
  }

  /** Ids as Python's `Tokenizer.encode(text).ids` (special tokens added by the post-processor, if any). */
  encode(text: string, addSpecialTokens = true): number[] {
    if (text === '') return [];
    return this.tok.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  decode(ids: readonly number[], skipSpecialTokens = false): string {
    if (ids.length === 0) return '';
    return this.tok.decode(ids as number[], { skip_special_tokens: skipSpecialTokens, clean_up_tokenization_spaces: false });
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }
}

/** How many distinct ids a tokenizer.json knows (its model's vocabulary plus added tokens) and the highest. */
export function tokenizerIds(json: unknown): { count: number; maxId: number } {
  const t = json as { model?: { vocab?: unknown }; added_tokens?: { id?: unknown }[] };
  const ids = new Set<number>();
  const vocab = t.model?.vocab;
  if (Array.isArray(vocab)) for (let i = 0; i < vocab.length; i++) ids.add(i); // Unigram: [piece, score] pairs, id = position
  else if (vocab && typeof vocab === 'object') for (const id of Object.values(vocab)) if (Number.isInteger(id)) ids.add(id as number);
  for (const a of t.added_tokens ?? []) if (Number.isInteger(a.id)) ids.add(a.id as number);
  let maxId = -1;
  for (const id of ids) if (id > maxId) maxId = id;
  return { count: ids.size, maxId };
}

/**
 * The tokenizer and the model's vocabulary (its embedding rows and logits) must agree, as the trainer checks at
 * load (model_loading.check_vocabulary). An id the tokenizer can produce past the vocabulary would index past the
 * embedding; a tokenizer cut far below it decodes most generated ids to nothing (empty completions, no error).
 * Checkpoints pad the vocabulary by a few hundred rows (bloom-560m: 250,680 tokens, 250,880 rows), so up to
 * max(1024, 1%) rows without a token are fine.
 */
export function checkVocabulary(ids: { count: number; maxId: number }, vocabSize: number, file: string, manifest: string): void {
  const hint = 'export the run again with the tokenizer saved with its model (save_pretrained writes both); a tokenizer retrained or cut down afterwards does not match the model';
  if (ids.maxId >= vocabSize) {
    throw new EngineError('TOKENIZER_INVALID', `${file} produces token ids up to ${ids.maxId} but the model's vocabulary has ${vocabSize} (vocab_size in ${manifest}): ids ${vocabSize}..${ids.maxId} would index past it`, { path: file, field: 'vocab_size', hint });
  }
  if (vocabSize - ids.count > Math.max(1024, Math.floor(vocabSize / 100))) {
    throw new EngineError('TOKENIZER_INVALID', `${file} has only ${ids.count} tokens but the model's vocabulary has ${vocabSize} (vocab_size in ${manifest}): a cut-down tokenizer; the model's other ${vocabSize - ids.count} ids would decode to nothing (empty completions)`, { path: file, field: 'vocab_size', hint });
  }
}

/**
 * Turns a stream of token ids into text increments. A byte-level token can end in the middle of a
 * UTF-8 character (decoded as U+FFFD); such text is held back until the character completes. Decoding
 * a sliding window (as text-generation-inference does) keeps tokenizers whose decoders depend on the
 * previous token (leading-space rules) right.
 */
export class StreamDecoder {
  private ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;

  constructor(private readonly tok: TextTokenizer, private readonly skipSpecial = true) {}

  push(id: number): string {
    this.ids.push(id);
    const prev = this.tok.decode(this.ids.slice(this.prefixOffset, this.readOffset), this.skipSpecial);
    const text = this.tok.decode(this.ids.slice(this.prefixOffset), this.skipSpecial);
    if (text.length > prev.length && !text.endsWith('\uFFFD')) {
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      return text.slice(prev.length);
    }
    return '';
  }

  /** Whatever is still held back (an incomplete character decodes as U+FFFD, like Python). */
  flush(): string {
    const prev = this.tok.decode(this.ids.slice(this.prefixOffset, this.readOffset), this.skipSpecial);
    const text = this.tok.decode(this.ids.slice(this.prefixOffset), this.skipSpecial);
    this.prefixOffset = this.readOffset = this.ids.length;
    return text.length > prev.length ? text.slice(prev.length) : '';
  }
}
