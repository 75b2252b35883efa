// The thin VS Code adapter: turns an inline completion request into a CompletionRequest, ties VS Code's
// cancellation token to an AbortSignal, and turns the pipeline's answer into an InlineCompletionItem.
import * as vscode from 'vscode';
import { wallClock } from '../inference/stop';
import { MAX_DOCUMENT_CHARS } from './prefilter';
import type { CompletionService } from './service';
import type { CompletionRequest, SelectedItem } from './types';

/** How much text around the cursor is read per request (the prompt budget is far smaller). */
const PREFIX_WINDOW = 16_000;
const SUFFIX_WINDOW = 2_000;
/** The documents the provider serves (register.ts). */
export const SCHEMES = ['file', 'untitled', 'vscode-remote'];

export class BloomInlineCompletionProvider implements vscode.InlineCompletionItemProvider {
  /** When each document last changed (uri → its version then): the first request for that version answers that
   * keystroke, and the latency budget counts from it (VS Code asks ~50 ms after the change). A later request for the
   * same version (the suggest widget's selection moved, VS Code asked again) counts from its own call. */
  private readonly changes = new Map<string, { version: number; at: number; asked: boolean }>();

  /** onShown: called when an item goes back to the editor (the one-time hint in register.ts). */
  constructor(private readonly service: CompletionService, private readonly onShown?: () => void) {}

  /**
   * workspace.onDidChangeTextDocument: the keystroke's time; and for a single edit in the active editor (typing), the
   * text at its end goes to the engine now (the request VS Code sends ~50 ms later finds it prefilled).
   */
  noteChange(e: vscode.TextDocumentChangeEvent, activeDocument?: vscode.TextDocument): void {
    if (e.contentChanges.length === 0) return;
    const at = wallClock();
    const uri = e.document.uri.toString();
    this.changes.delete(uri);
    this.changes.set(uri, { version: e.document.version, at, asked: false });
    // A handful of open documents is all that matters; the oldest goes first.
    if (this.changes.size > 64) this.changes.delete(this.changes.keys().next().value as string);
    const [edit] = e.contentChanges;
    if (e.contentChanges.length !== 1 || e.document !== activeDocument || !edit || !SCHEMES.includes(e.document.uri.scheme)) return;
    const req = this.request(e.document, e.document.positionAt(edit.rangeOffset + edit.text.length), 'automatic', undefined, at);
    if (req) this.service.prefillAtChange(req);
  }

  /** The request for the text around `position` (undefined for a document too large to read). */
  private request(document: vscode.TextDocument, position: vscode.Position, trigger: CompletionRequest['trigger'], selected: SelectedItem | undefined, changedAt: number | undefined): CompletionRequest | undefined {
    const lastLine = document.lineAt(document.lineCount - 1);
    const documentLength = document.offsetAt(lastLine.range.end);
    // Checked here too, before reading any text of a huge document.
    if (documentLength > MAX_DOCUMENT_CHARS) return undefined;
    let offset = document.offsetAt(position);
    let prefix = document.getText(new vscode.Range(document.positionAt(Math.max(0, offset - PREFIX_WINDOW)), position));
    let suffix = document.getText(new vscode.Range(position, document.positionAt(Math.min(documentLength, offset + SUFFIX_WINDOW))));
    if (document.eol === vscode.EndOfLine.CRLF) {
      // The model was trained on \n; VS Code converts the inserted \n back to the document's line ending.
      const n = prefix.length;
      prefix = prefix.replace(/\r\n/g, '\n');
      suffix = suffix.replace(/\r\n/g, '\n');
      offset -= n - prefix.length;
    }
    return { uri: document.uri.toString(), languageId: document.languageId, prefix, suffix, offset, documentLength, trigger, selected, changedAt };
  }

  async provideInlineCompletionItems(
    document: vscode.TextDocument,
    position: vscode.Position,
    context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.InlineCompletionItem[] | undefined> {
    // The suggest widget is open (with word-based suggestions, after nearly every word): VS Code shows an inline
    // item next to it only when it replaces the same range and starts with the selected item's text, so the
    // pipeline answers as if that item were accepted and the item extends it (selection.ts).
    const info = context.selectedCompletionInfo;
    let selected: SelectedItem | undefined;
    if (info) {
      const { start, end } = info.range;
      if (start.line !== position.line || end.line !== position.line || start.character > position.character || end.character < position.character) return undefined;
      selected = { text: info.text, replaceBefore: position.character - start.character, replaceAfter: end.character - position.character };
    }
    const change = this.changes.get(document.uri.toString());
    const changedAt = change && change.version === document.version && !change.asked ? change.at : undefined;
    if (change) change.asked = true;
    const trigger = context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke ? 'invoke' : 'automatic';
    const req = this.request(document, position, trigger, selected, changedAt);
    if (!req) return undefined;
    const abort = new AbortController();
    const sub = token.onCancellationRequested(() => abort.abort());
    if (token.isCancellationRequested) abort.abort();
    try {
      const c = await this.service.complete(req, abort.signal);
      if (!c || token.isCancellationRequested) return undefined;
      this.onShown?.();
      return [new vscode.InlineCompletionItem(c.insertText, info ? info.range : new vscode.Range(position, position))];
    } finally {
      sub.dispose();
    }
  }
}
