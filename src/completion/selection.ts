// The suggest widget's selected item (VS Code's `selectedCompletionInfo`). While the widget is open, VS Code shows
// ghost text only for an inline item that uses the same range and starts with the selected item's text (it then
// shows it next to the widget); anything else waits until the widget closes. So the answer is computed for the
// document as if the selected item were accepted, and the item shown is that item's text plus the answer.
import type { CompletionRequest, SelectedItem } from './types';

/**
 * The request as if the selected item were accepted: `replaceBefore` characters before the cursor and
 * `replaceAfter` after it become `text`, and the cursor sits after it. Undefined when the item does not fit the
 * text that was read around the cursor (nothing is shown then).
 */
export function applySelection(req: CompletionRequest, sel: SelectedItem): CompletionRequest | undefined {
  const { text, replaceBefore, replaceAfter } = sel;
  if (!Number.isInteger(replaceBefore) || !Number.isInteger(replaceAfter) || replaceBefore < 0 || replaceAfter < 0) return undefined;
  if (replaceBefore > req.prefix.length || replaceAfter > req.suffix.length) return undefined;
  // The widget completes a word on the cursor's line; an item reaching over a line break is not one.
  if (req.prefix.slice(req.prefix.length - replaceBefore).includes('\n') || req.suffix.slice(0, replaceAfter).includes('\n')) return undefined;
  const prefix = req.prefix.slice(0, req.prefix.length - replaceBefore) + text;
  const suffix = req.suffix.slice(replaceAfter);
  const offset = (req.offset ?? req.prefix.length) - replaceBefore + text.length;
  const documentLength = (req.documentLength ?? req.prefix.length + req.suffix.length) - replaceBefore - replaceAfter + text.length;
  const { selected: _, ...rest } = req;
  return { ...rest, prefix, suffix, offset, documentLength };
}

/**
 * The text of the inline item for a completion computed on the applied request: it replaces the same range as the
 * selected item and starts with its text, so VS Code shows it next to the widget.
 */
export function extendSelection(sel: SelectedItem, completion: string): string {
  return sel.text + completion;
}
