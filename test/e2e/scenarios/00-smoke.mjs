// Smoke: the packaged extension activates in a real VS Code: its activity bar container shows, the dashboard
// webview renders (through its CSP, with the parameter count from the trainer), and the palette lists its commands.
import { waitUntil } from '../vscode.mjs';

export default {
  title: 'extension activates: activity bar, dashboard webview, palette commands',
  timeoutMs: 150_000,
  async run({ wb, log }) {
    await wb.shot('workbench');

    await wb.openDashboard();
    const d = wb.dashboard();
    await d.locator('#f-method').waitFor({ timeout: 30_000 });
    // the embedded model is the default; the count comes from the trainer's `params` command
    const trainable = d.locator('#params-trainable');
    await trainable.waitFor({ timeout: 90_000 });
    const counts = await waitUntil(async () => {
      const t = Number(await trainable.getAttribute('data-value'));
      const total = Number(await d.locator('#params-total').getAttribute('data-value'));
      return t > 0 && total > t ? { t, total } : undefined;
    }, { timeout: 30_000, what: 'parameter counts' });
    log(`parameter count: ${counts.t} trainable of ${counts.total}`);
    await wb.shot('dashboard');

    const row = await wb.paletteRow('Start PEFT Training');
    const label = await row.textContent();
    if (!/Bloom PEFT: Start PEFT Training/.test(label ?? '')) throw new Error(`palette row reads "${label}"`);
    for (const title of ['Stop PEFT Training', 'Resume PEFT Training', 'Open Training Dashboard', 'Use Adapter for Inline Completions']) {
      await wb.paletteRow(title, { timeout: 10_000 });
    }
    await wb.paletteRow('Bloom PEFT: Start PEFT Training', { timeout: 10_000 });
    await wb.shot('palette');
    await wb.page.keyboard.press('Escape');
  },
};
