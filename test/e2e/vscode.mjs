// Page helpers for driving the VS Code 1.100 workbench (code-server) with playwright-core. Selectors are VS Code's
// own DOM; waits poll with deadlines (no fixed sleeps), so a slow machine only makes a step slower.
import fs from 'node:fs';
import path from 'node:path';

export const EXTENSION_TITLE = 'Bloom PEFT';

/** An error that ends a waitUntil() at once (other errors thrown by the predicate are retried). */
export function fatal(message) {
  return Object.assign(new Error(message), { fatal: true });
}

/** Polls pred() until it returns a truthy value; returns it. */
export async function waitUntil(pred, { timeout = 30_000, interval = 250, what = 'a condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await pred();
      if (v) return v;
    } catch (e) {
      if (e?.fatal) throw e;
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${Math.round(timeout / 1000)} s waiting for ${what}${last ? ` (last error: ${last.message.split('\n')[0]})` : ''}`);
    await new Promise(r => setTimeout(r, interval));
  }
}

export class Workbench {
  constructor(page, { shotsDir, workspace, url }) {
    this.page = page;
    this.shotsDir = shotsDir;
    this.workspace = workspace;
    this.url = url;
    this.prefix = '';
  }

  async shot(name) {
    const file = path.join(this.shotsDir, `${this.prefix}${name}.png`);
    await this.page.screenshot({ path: file });
    return file;
  }

  async open() {
    // a loaded machine (2 cores shared with code-server, its extension host and trainers) can take over 30 s
    await this.page.goto(`${this.url}/?folder=${encodeURIComponent(this.workspace)}`, { timeout: 120_000 });
    await this.page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
    await this.activityItem().waitFor({ timeout: 60_000 });
  }

  activityItem(title = EXTENSION_TITLE) {
    return this.page.locator(`.activitybar .action-item .action-label[aria-label^="${title}"]`).first();
  }

  // ---- command palette and quick picks

  quickInput() { return this.page.locator('.quick-input-widget'); }
  quickRows() { return this.page.locator('.quick-input-widget .quick-input-list .monaco-list-row'); }

  async openPalette() {
    await this.page.keyboard.press('Escape');
    await this.page.keyboard.press('F1');
    await this.quickInput().locator('input.input').waitFor({ state: 'visible', timeout: 10_000 });
  }

  /** Types into the palette (opening it when closed) and returns the row whose label contains `title`. */
  async paletteRow(title, { timeout = 15_000 } = {}) {
    const input = this.quickInput().locator('input.input');
    if (!(await input.isVisible())) await this.openPalette();
    await input.fill(`>${title}`);
    const row = this.quickRows().filter({ hasText: title }).first();
    await row.waitFor({ timeout });
    return row;
  }

  async runCommand(title) {
    const row = await this.paletteRow(title);
    await row.click();
  }

  /** Waits for a quick pick whose title/placeholder mentions `title`, then picks the row containing `row`. */
  async pickQuick(row, { title, timeout = 20_000 } = {}) {
    const widget = this.quickInput();
    if (title) await widget.filter({ hasText: title }).waitFor({ state: 'visible', timeout });
    const r = this.quickRows().filter({ hasText: row }).first();
    await r.waitFor({ timeout });
    await r.click();
  }

  /**
   * The simple file dialog code-server shows for showOpenDialog: a quick input holding a path. Types the absolute
   * path and accepts it (a second Enter when the dialog only navigated into the folder).
   */
  async chooseInFileDialog(absPath, { timeout = 20_000 } = {}) {
    const input = this.quickInput().locator('input.input');
    await input.waitFor({ state: 'visible', timeout });
    // the dialog fills in its start folder asynchronously and may overwrite what was typed before: wait for it,
    // then type until the path holds
    await waitUntil(async () => (await input.inputValue()).endsWith('/'), { timeout: 10_000, what: 'the file dialog start folder' }).catch(() => {});
    await waitUntil(async () => {
      if ((await input.inputValue()) !== absPath) await input.fill(absPath);
      await new Promise(r => setTimeout(r, 400));
      return (await input.inputValue()) === absPath;
    }, { timeout: 15_000, interval: 100, what: `the path ${absPath} in the file dialog` });
    await this.page.keyboard.press('Enter');
    await waitUntil(async () => !(await this.quickInput().isVisible()), { timeout: 10_000, what: 'the file dialog to close' })
      .catch(async () => { await this.page.keyboard.press('Enter'); });
  }

  // ---- notifications

  /** A notification toast whose message matches `text` (string or RegExp). */
  toast(text) {
    return this.page.locator('.notifications-toasts .notification-toast').filter({ hasText: text }).first();
  }

  async waitToast(text, timeout = 60_000) {
    const t = this.toast(text);
    await t.waitFor({ state: 'visible', timeout });
    return t;
  }

  toastButton(toast, label) {
    return toast.locator('.notification-list-item-buttons-container .monaco-button').filter({ hasText: label }).first();
  }

  async clearToasts() {
    // "Clear All Notifications" leaves no stale toast to confuse the next wait
    await this.page.keyboard.press('Escape');
    await this.runCommand('Notifications: Clear All Notifications').catch(() => {});
    await this.page.keyboard.press('Escape');
  }

  // ---- the dashboard webview

  /** The extension's html inside the webview: outer iframe (host) -> inner iframe#active-frame. */
  dashboard() {
    return this.page.frameLocator('iframe.webview.ready').frameLocator('iframe#active-frame');
  }

  async openDashboard() {
    // The activity item toggles the side bar. Right after a window reload VS Code may still be restoring the view
    // (unchecked when looked at, then shown; or shown, then our click hides it), so look again until it shows.
    const item = this.activityItem();
    const tab = this.dashboard().locator('#tab-configure');
    const end = Date.now() + 60_000;
    for (;;) {
      const checked = await item.evaluate(el => el.closest('.action-item')?.classList.contains('checked')).catch(() => false);
      if (!checked) await item.click();
      await this.page.mouse.move(700, 600); // no tooltip over the screenshots
      try {
        await tab.waitFor({ timeout: 5_000 });
        break;
      } catch (e) {
        if (Date.now() > end) throw e;
      }
    }
    await this.widenSidebar();
  }

  /** Drags the side bar's edge so the dashboard is readable in screenshots (default width ~300 px). */
  async widenSidebar(width = 560) {
    const bar = this.page.locator('.part.sidebar');
    const box = await bar.boundingBox();
    if (!box || box.width >= width - 10) return;
    const x = box.x + box.width - 1, y = box.y + box.height / 2;
    await this.page.mouse.move(x, y);
    await this.page.mouse.down();
    await this.page.mouse.move(x + (width - box.width) / 2, y, { steps: 4 });
    await this.page.mouse.move(box.x + width, y, { steps: 4 });
    await this.page.mouse.up();
    await this.page.mouse.move(900, 600);
  }

  async dashTab(id) {
    const d = this.dashboard();
    await d.locator(`#tab-${id}`).click();
    await d.locator(`#view-${id}`).waitFor({ state: 'visible', timeout: 10_000 });
  }

  /** Picks an option of a toolkit <vscode-dropdown> in the webview. */
  async dashChoose(id, value) {
    const d = this.dashboard();
    await d.locator(`#${id}`).click();
    await d.locator(`#${id} vscode-option[value="${value}"]`).click();
    await waitUntil(async () => (await d.locator(`#${id}`).evaluate(el => el.value)) === value, { timeout: 5000, what: `${id} = ${value}` });
  }

  /** Types into a toolkit text field (its input lives in an open shadow root). */
  async dashType(id, value) {
    const input = this.dashboard().locator(`#${id} input, #${id} textarea`).first();
    await input.fill(String(value));
  }

  // ---- editor

  editor() { return this.page.locator('.editor-instance .monaco-editor').first(); }

  /** Opens a workspace file with Quick Open (Ctrl+P). A file written just before may not be in the file search yet
   * (its watcher lags on a busy machine): Quick Open is closed and opened again, which searches anew. */
  async openFile(name, { attempts = 4 } = {}) {
    for (let attempt = 1; ; attempt++) {
      await this.page.keyboard.press('Escape');
      await this.page.keyboard.press('Control+P');
      await this.quickInput().locator('input.input').waitFor({ state: 'visible', timeout: 10_000 });
      await this.page.keyboard.type(name);
      const found = await this.quickRows().filter({ hasText: name }).first().waitFor({ timeout: 15_000 }).then(() => true, e => {
        if (attempt >= attempts) throw e;
        console.log(`   Quick Open does not list ${name} yet: opening it again (attempt ${attempt + 1} of ${attempts})`);
        return false;
      });
      if (found) break;
    }
    await this.page.keyboard.press('Enter');
    await this.page.locator(`.tabs-container .tab.active[aria-label*="${name}"], .tabs-container .tab.active:has-text("${name}")`).first()
      .waitFor({ timeout: 15_000 }).catch(() => {});
    await this.editor().waitFor({ timeout: 15_000 });
  }

  /**
   * The editor's visible text, line by line, as VS Code renders it (nbsp -> space), in screen order (the line
   * elements are reused out of order once the editor scrolls). withoutGhost: without inline ghost text.
   */
  async editorText({ withoutGhost = false } = {}) {
    const lines = await this.editor().locator('.view-lines .view-line').evaluateAll((els, drop) => els.map(el => {
      const copy = el.cloneNode(true);
      if (drop) for (const g of copy.querySelectorAll('.ghost-text-decoration, .ghost-text-decoration-preview, .ghost-text')) g.remove();
      return { top: parseFloat(el.style.top) || 0, text: copy.textContent ?? '' };
    }), withoutGhost);
    return lines.sort((a, b) => a.top - b.top).map(l => l.text.replace(/\u00a0/g, ' ')).join('\n');
  }

  ghostText() {
    return this.page.locator('.monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text, .monaco-editor .ghost-text-decoration-preview');
  }
}

/** Reads a JSON-lines file, skipping a partial last line. */
export function readJsonLines(file) {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).flatMap(l => { try { return [JSON.parse(l)]; } catch { return []; } });
}
