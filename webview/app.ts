// Wires the sections to the host: the snapshot on 'ready' (first load, show after hide, window reload)
// restores the watched run with its events; live notifications keep every section current.
import type { EnvironmentStatus, HostError, RunRow } from '../src/protocol/messages';
import { watchTheme } from './charts';
import { button, panels, type Tab } from './components';
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
  /** first run: the trainer's Python is not set up yet (shown before the form is used) */
  private readonly envBanner = h('div', { class: 'banner env-banner', id: 'env-banner', role: 'status', hidden: true });
  private settingUp = false;
  private envSeq = 0;
  private env: EnvironmentStatus | undefined;
  private readonly configure: ConfigureSection;
  private readonly run: RunSection;
  private readonly history: HistorySection;
  private readonly adapters: AdaptersSection;
  private readonly playground: PlaygroundSection;
  private readonly tabs: { select(id: string): void };

  constructor(root: HTMLElement) {
    const showError = (e: unknown) => this.showError(e);
    const useForCompletions = (runId: string) => void request('useAdapter', { runId }).catch(showError);
    this.configure = new ConfigureSection({ started: () => this.selectTab('run'), trusted: () => this.trusted, environmentProblem: e => void this.checkEnvironment(e) });
    this.run = new RunSection({ startFromForm: () => { this.selectTab('configure'); this.configure.el.querySelector<HTMLElement>('#start-training')?.click(); }, showError, useForCompletions,
      runningChanged: running => this.configure.setRunning(running) });
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
    fill(root, this.envBanner, this.banner, p.el);
    root.removeAttribute('aria-busy');

    on('init', s => {
      this.trusted = s.trusted;
      this.configure.setTrusted(s.trusted);
      this.setBanner(s.trusted ? undefined : 'This workspace is not trusted: training, preview, export and the playground are disabled.');
      this.setRuns(s.runs);
      this.run.attach(s.current, s.currentEvents);
      this.history.setJob(s.compare);
      this.adapters.setServing(s.completionsRunId ?? null);
      void this.checkEnvironment();
      document.body.dataset.ready = 'true';
    });
    // no tab switch here: a comparison moves from run to run while the user watches its table in History
    on('current', c => this.run.attach(c.run ?? undefined, c.events));
    on('event', e => this.run.onEvent(e.runId, e.event));
    on('runs', r => this.setRuns(r.runs));
    on('compare', job => this.history.setJob(job));
    on('completions', c => this.adapters.setServing(c.runId));
    on('environment', () => { this.configure.environmentChanged(); void this.checkEnvironment(); });
    watchTheme();
    notifyReady();
  }

  /**
   * Is the trainer's Python set up? If not, one banner says so and offers the setup; the form waits for it.
   * `problem`: the trainer itself failed to import a package (the quick check can miss one): not set up either.
   */
  private async checkEnvironment(problem?: HostError): Promise<void> {
    if (!this.trusted) { this.configure.setEnvironment('ready'); return; } // the trust banner says what is off
    const seq = ++this.envSeq;
    try {
      const env = await request('environment', {});
      if (seq !== this.envSeq) return;
      this.showEnvironment(env, problem);
      this.configure.setEnvironment(env.ready && !problem ? 'ready' : 'missing');
    } catch {
      // the check itself failed: let counts and preview ask, and show their own errors
      if (seq === this.envSeq) this.configure.setEnvironment('ready');
    }
  }

  /** `error`: the trainer's import failure (shown when the quick check thought the Python ready); `setupError`: the setup failed. */
  private showEnvironment(env: EnvironmentStatus, error?: HostError, setupError?: HostError): void {
    this.env = env;
    this.envBanner.hidden = env.ready && !error && !setupError;
    if (this.envBanner.hidden) { this.envBanner.replaceChildren(); return; }
    const setup = button(this.settingUp ? 'Setting up…' : 'Set up (about 2 GB)', () => void this.setUp(), { id: 'env-setup', title: 'Runs "Bloom PEFT: Set Up Training Environment": a Python environment with the trainer\'s pinned packages' });
    setup.disabled = this.settingUp;
    fill(this.envBanner, h('div', { class: 'env-text' },
      h('strong', {}, 'Set up training first. '),
      error && env.ready ? `The Python found (${env.python}) cannot run the trainer: ${error.message}`
        : `Training needs PyTorch, Transformers and PEFT; the Python found (${env.python}) does not have them.`,
      setupError ? h('div', { class: 'error-text' }, `The setup did not finish: ${setupError.message}`) : null,
      h('div', { class: 'field-hint' }, this.settingUp
        ? 'Downloading and installing: progress is in the notification. Counts and preview appear when it is done.'
        : 'Or set bloomPeft.pythonPath to a Python that has them.')),
    h('div', { class: 'actions' }, setup));
  }

  private async setUp(): Promise<void> {
    this.settingUp = true;
    this.showEnvironment({ ready: false, python: this.env?.python ?? '', source: this.env?.source ?? '' });
    try {
      const env = await request('setupEnvironment', {});
      this.settingUp = false;
      this.showEnvironment(env);
      this.configure.setEnvironment(env.ready ? 'ready' : 'missing');
    } catch (e) {
      this.settingUp = false;
      this.showEnvironment({ ready: false, python: this.env?.python ?? '', source: this.env?.source ?? '' }, undefined, e instanceof RequestError ? e.error : { message: String((e as Error)?.message ?? e) });
    }
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
