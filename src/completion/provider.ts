// The thin VS Code adapter: turns an inline completion request into a CompletionRequest, ties VS Code's
// cancellation token to an AbortSignal, and turns the pipeline's answer into an InlineCompletionItem.
import * as vscode from 'vscode';
import { MAX_DOCUMENT_CHARS } from './prefilter';
import type { CompletionService } from './service';

/** How much text around the cursor is read per request (the prompt budget is far smaller). */
const PREFIX_WINDOW = 16_000;
const SUFFIX_WINDOW = 2_000;

export class BloomInlineCompletionProvider implements vscode.InlineCompletionItemProvider {
  constructor(private readonly service: CompletionService) {}

  async provideInlineCompletionItems(
    document: vscode.TextDocument,
    position: vscode.Position,
    context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.InlineCompletionItem[] | undefined> {
    // The suggest widget is open: its item decides what comes next, not us.
    if (context.selectedCompletionInfo) return undefined;
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

    const abort = new AbortController();
    const sub = token.onCancellationRequested(() => abort.abort());
    if (token.isCancellationRequested) abort.abort();
    try {
      const c = await this.service.complete(
        {
          uri: document.uri.toString(),
          languageId: document.languageId,
          prefix,
          suffix,
          offset,
          documentLength,
          trigger: context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke ? 'invoke' : 'automatic',
        },
        abort.signal,
      );
      if (!c || token.isCancellationRequested) return undefined;
      return [new vscode.InlineCompletionItem(c.insertText, new vscode.Range(position, position))];
    } finally {
      sub.dispose();
    }
  }
}
