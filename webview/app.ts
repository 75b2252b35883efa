// Wires the sections to the host: the snapshot on 'ready' (first load, show after hide, window reload)
// restores the watched run with its events; live notifications keep every section current.
import type { RunRow } from '../src/protocol/messages';
import { watchTheme } from './charts';
import { panels, type Tab } from './components';
import { fill, h } from './dom';
import { notifyReady, on, request, RequestError } from './rpc';
import { AdaptersSection } from './sections/adapters';
import { ConfigureSection } from './sections/configure';
import { HistorySection } from './sections/history';
import { PlaygroundSection } from './sections/playground';
import { RunSection } from './sections/run';
import { save, state } from './store';

export class App {
  private trusted = true;
  private readonly banner = h('div', { class: 'banner', id: 'banner', role: 'alert', hidden: true });
  private readonly configure: ConfigureSection;
  private readonly run: RunSection;
  private readonly history: HistorySection;
  private readonly adapters: AdaptersSection;
  private readonly playground: PlaygroundSection;
  private readonly tabs: { select(id: string): void };

  constructor(root: HTMLElement) {
    const showError = (e: unknown) => this.showError(e);
    const useForCompletions = (runId: string) => void request('useAdapter', { runId }).catch(showError);
    this.configure = new ConfigureSection({ started: () => this.selectTab('run'), trusted: () => this.trusted });
    this.run = new RunSection({ startFromForm: () => { this.selectTab('configure'); this.configure.el.querySelector<HTMLElement>('#start-training')?.click(); }, showError, useForCompletions });
    this.history = new HistorySection({ open: row => void this.open(row), showError, formConfig: () => this.formConfigOrShow() });
    this.adapters = new AdaptersSection({ showError, useForCompletions, refresh: () => void this.refreshRuns() });
    this.playground = new PlaygroundSection({ showError });
    const tabList: Tab[] = [
      { id: 'configure', label: 'Configure', content: this.configure.el },
      { id: 'run', label: 'Run', content: this.run.el },
      { id: 'history', label: 'History', content: this.history.el },
      { id: 'adapters', label: 'Adapters', content: this.adapters.el },
      { id: 'playground', label: 'Playground', content: this.playground.el },
    ];
    const p = panels(tabList, state.tab, id => { state.tab = id; save(); });
    this.tabs = p;
    fill(root, this.banner, p.el);
    root.removeAttribute('aria-busy');

    on('init', s => {
      this.trusted = s.trusted;
      this.configure.setTrusted(s.trusted);
      this.setBanner(s.trusted ? undefined : 'This workspace is not trusted: training, preview, export and the playground are disabled.');
      this.setRuns(s.runs);
      this.run.attach(s.current, s.currentEvents);
      this.history.setJob(s.compare);
      this.adapters.setServing(s.completionsRunId ?? null);
      document.body.dataset.ready = 'true';
    });
    // no tab switch here: a comparison moves from run to run while the user watches its table in History
    on('current', c => this.run.attach(c.run ?? undefined, c.events));
    on('event', e => this.run.onEvent(e.runId, e.event));
    on('runs', r => this.setRuns(r.runs));
    on('compare', job => this.history.setJob(job));
    on('completions', c => this.adapters.setServing(c.runId));
    on('environment', () => this.configure.environmentChanged());
    watchTheme();
    notifyReady();
  }

  private setRuns(runs: RunRow[]): void {
    this.history.setRuns(runs);
    this.adapters.setRuns(runs);
    this.playground.setRuns(runs);
    this.run.updateRow(runs);
  }

  private async refreshRuns(): Promise<void> {
    try { this.setRuns(await request('listRuns', {})); } catch (e) { this.showError(e); }
  }

  private async open(row: RunRow): Promise<void> {
    try {
      this.run.attach(row, await request('readEvents', { runId: row.id }));
      this.selectTab('run');
    } catch (e) { this.showError(e); }
  }

  private formConfigOrShow() {
    const config = this.configure.validConfig();
    if (!config) { this.selectTab('configure'); this.showError(new Error('The Configure form has errors; fix them first.')); }
    return config;
  }

  private selectTab(id: string): void {
    state.tab = id;
    save();
    this.tabs.select(id);
  }

  showError(e: unknown): void {
    const err = e instanceof RequestError ? e.error : { message: (e as Error)?.message ?? String(e), hint: undefined };
    if (e instanceof RequestError && e.error.issues?.length) this.configure.showHostError(e);
    this.setBanner(err.message, err.hint);
  }

  private setBanner(message?: string, hint?: string): void {
    this.banner.hidden = !message;
    fill(this.banner, ...(message ? [h('span', {}, message), hint ? h('div', { class: 'field-hint' }, hint) : null,
      h('vscode-button', { appearance: 'icon', 'aria-label': 'Dismiss', title: 'Dismiss', onclick: () => { this.banner.hidden = true; } }, '✕')] : []));
  }
}
