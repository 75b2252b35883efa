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

  static fromFile(file: string): TextTokenizer {
    let json: unknown;
    try {
      json = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      throw new EngineError('TOKENIZER_INVALID', `cannot read ${file}: ${(e as Error).message}`, { path: file, hint: 'tokenizer.json must be the Hugging Face tokenizers JSON saved with the model' });
    }
    return TextTokenizer.fromJSON(json, file);
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
