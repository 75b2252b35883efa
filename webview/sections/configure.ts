// Configure: model, method (+ its options and the trainable-parameter count), dataset (+ columns), template
// (+ live preview with token counts), hyperparameters and output. Every edit is validated against the
// shared schema at once; messages appear next to their field. Paths come only from host pickers.
import type { MethodName, TrainingConfig } from '../../src/protocol/config';
import type { HostError, ParamCounts, PreviewRow } from '../../src/protocol/messages';
import presetsJson from '../../schemas/presets.json';
import { button, checkbox, dropdown, progressRing, textArea, textField, type Field } from '../components';
import { fill, h, pointerId } from '../dom';
import { fmtCompact, fmtInt, fmtPct } from '../format';
import { notifyDraft, request, RequestError } from '../rpc';
import {
  buildConfig, columnProps, dataOptionKeys, dataProps, exportProps, FORMAT_COLUMNS, hintFor, kindOf, labelFor, METHOD_LABELS,
  methodOptionVisible, METHODS, methodSpec, placeholderFor, templateProps, trainingProps, usesTemplate, type PropSpec,
  convert, formFromConfig, methodDefaultLearningRate, optimizerSteps,
} from '../schema';
import { save, state, type FormState, type RawValue } from '../store';
import { LatestRequest } from '../latest-request';
import { shortMessage, validateDraft, type FieldIssue } from '../validation';

const PRESETS = (presetsJson as { presets: Array<{ id: string; label: string; detail: string; data_root: string; methods: Record<string, unknown> }> }).presets;
const MAIN_TRAINING = ['batch_size', 'grad_accum', 'learning_rate', 'scheduler', 'warmup_ratio', 'max_length', 'eval_every', 'seed', 'precision', 'device', 'num_gpus'];
const FORMAT_LABELS: Record<FormState['dataFormat'], string> = {
  instruction: 'Instruction rows (instruction / input / output)', completion: 'Prompt / completion rows',
  text: 'Plain text or a folder of code', hub: 'Hugging Face hub dataset',
};

export interface ConfigureHost {
  /** start succeeded: show the run */
  started(): void;
  trusted(): boolean;
  /** a count or preview failed because the trainer's Python lacks a package: the app shows the setup banner */
  environmentProblem(error: HostError): void;
}

/** Error codes that mean "the Python environment needs setting up", not a problem of the form. */
const ENVIRONMENT_CODES = new Set(['environment', 'python_not_ready', 'python_missing']);
const isEnvironmentError = (e: HostError) => ENVIRONMENT_CODES.has(e.code ?? '');
/** A preview failure that is about the dataset file (a bad row, a missing column...): shown at the file field. */
const isDataError = (e: HostError) => e.code === 'invalid_data' || e.code === 'missing_file' || Boolean(e.file) || (e.issues ?? []).some(i => i.path.startsWith('/data/'));

export class ConfigureSection {
  readonly el = h('section', { class: 'section configure', 'aria-labelledby': 'configure-title' });
  private readonly fields = new Map<string, Field<unknown>>();
  private issues: FieldIssue[] = [];
  private hostIssues: FieldIssue[] = [];
  private readonly touched = new Set<string>();
  private submitted = false;
  /** what the form asks the host as it changes (latest-request.ts): counts, preview, and the draft for the palette */
  private readonly params = new LatestRequest(250);
  private readonly preview = new LatestRequest(400);
  private readonly draft = new LatestRequest(300);
  private trusted = true;
  private running = false;
  private starting = false;
  /** the trainer's Python: counts and preview wait until it is known to be set up */
  private environment: 'unknown' | 'ready' | 'missing' = 'unknown';
  /** the preview's verdict on the dataset as configured now (previewKey), shown at the file field */
  private dataProblem: { key: string; error: HostError } | undefined;
  private readonly dataProblemBox = h('div', { class: 'field-error data-problem', id: 'data-problem', role: 'alert', hidden: true });
  /** field names found in the training file (for the column mapping dropdowns) */
  private detected: { file: string; fields: string[] } | undefined;

  private readonly modelDetail = h('div', { class: 'block' });
  private readonly methodHelp = h('p', { class: 'explain', id: 'method-explain' });
  private readonly methodOptions = h('div', { class: 'block grid', id: 'method-options' });
  private readonly paramsBox = h('div', { class: 'params', id: 'params-count', role: 'status', 'aria-live': 'polite' });
  private readonly dataDetail = h('div', { class: 'block' });
  private readonly templateBlock = h('div', { class: 'block' });
  private readonly previewBox = h('div', { class: 'preview', id: 'preview', 'aria-live': 'polite' });
  private readonly lengthBlock = h('div', { class: 'block grid' });
  /** what the run will use where the form leaves the trainer's defaults: the method's lr, the optimizer steps */
  private readonly effectiveBox = h('p', { class: 'explain', id: 'effective-values', 'aria-live': 'polite' });
  private readonly presetHint = h('p', { class: 'explain', id: 'preset-explain' });
  /** training rows of the dataset as the last preview counted them (the step count needs them) */
  private trainRows: number | undefined;
  private readonly summary = h('div', { class: 'form-summary', id: 'form-summary', role: 'alert', hidden: true });
  private readonly startButton = button('Start training', () => void this.start(), { id: 'start-training' });

  constructor(private readonly host: ConfigureHost) {
    this.render();
  }

  private get form(): FormState { return state.form; }

  /** The config as the form stands (not validated). */
  config(): TrainingConfig { return buildConfig(this.form); }

  /** Validates with every message shown; undefined when invalid. */
  validConfig(): TrainingConfig | undefined {
    this.submitted = true;
    this.changed(false);
    return this.issues.length ? undefined : this.config();
  }

  setTrusted(trusted: boolean): void {
    this.trusted = trusted;
    this.updateStart();
  }

  /** A run is in progress: Start waits (one run at a time). */
  setRunning(running: boolean): void {
    if (running === this.running) return;
    this.running = running;
    this.updateStart();
  }

  private updateStart(): void {
    this.startButton.disabled = !this.trusted || this.running || this.starting;
    this.startButton.title = !this.trusted ? 'Training is disabled in an untrusted workspace'
      : this.running ? 'A run is in progress: stop it or wait for it to finish' : '';
  }

  // ---- layout

  render(): void {
    this.fields.clear();
    const f = this.form;
    const presetField = dropdown({
      id: 'f-preset', label: 'Start from a preset', value: '',
      options: [{ value: '', label: '(keep the form as it is)' }, ...PRESETS.map(p => ({ value: p.id, label: p.label }))],
      onChange: v => { if (v) void this.applyPreset(v); },
    });
    presetField.control.setAttribute('aria-describedby', 'preset-explain');
    this.presetHint.textContent = 'Fills the whole form with a tested recipe for the chosen method; every value stays editable.';
    const sourceField = dropdown({
      id: 'f-model-source', label: 'Base model', value: f.modelSource,
      options: [
        { value: 'embedded', label: 'Embedded tiny BLOOM (offline demo)' },
        { value: 'hub', label: 'Hugging Face hub id' },
        { value: 'local', label: 'Local folder' },
      ],
      onChange: v => { f.modelSource = v as FormState['modelSource']; this.renderModelDetail(); this.changed(); },
    });
    const methodField = dropdown({
      id: 'f-method', label: 'Method', value: f.method,
      options: METHODS.map(m => ({ value: m, label: METHOD_LABELS[m] })),
      onChange: v => { f.method = v as MethodName; this.renderMethod(); this.changed(); },
    });
    methodField.control.setAttribute('aria-describedby', 'method-explain');
    const formatField = dropdown({
      id: 'f-data-format', label: 'Dataset format', value: f.dataFormat,
      options: (Object.keys(FORMAT_LABELS) as FormState['dataFormat'][]).map(k => ({ value: k, label: FORMAT_LABELS[k] })),
      onChange: v => { f.dataFormat = v as FormState['dataFormat']; this.renderData(); this.renderTemplate(); this.changed(); },
    });
    this.fields.set('/data/format', formatField as Field<unknown>);
    const lengthMode = dropdown({
      id: 'f-length-mode', label: 'Train for', value: f.lengthMode,
      options: [{ value: 'epochs', label: 'a number of epochs' }, { value: 'max_steps', label: 'a number of optimizer steps' }],
      onChange: v => { f.lengthMode = v as FormState['lengthMode']; this.renderLength(); this.changed(); },
    });
    const tprops = trainingProps();
    const main = h('div', { class: 'block grid' }, ...MAIN_TRAINING.filter(k => k in tprops).map(k => this.schemaField(`/training/${k}`, k, tprops[k], f.training)));
    const advanced = h('details', { class: 'advanced' }, h('summary', {}, 'Advanced training options'),
      h('div', { class: 'block grid' }, ...Object.keys(tprops).filter(k => !MAIN_TRAINING.includes(k) && k !== 'epochs' && k !== 'max_steps')
        .map(k => this.schemaField(`/training/${k}`, k, tprops[k], f.training))));
    const runName = textField({
      id: `f-${pointerId('/run_name')}`, label: 'Run name', value: f.runName, placeholder: 'method-date (automatic)',
      hint: 'Letters, digits, ".", "_" and "-"; names the run folder.',
      onInput: v => { f.runName = v; this.touch('/run_name'); },
    });
    this.fields.set('/run_name', runName as Field<unknown>);
    const eprops = exportProps();

    fill(this.el,
      h('h2', { id: 'configure-title', class: 'visually-hidden' }, 'Configure a training run'),
      h('div', { class: 'block', id: 'preset-block' }, presetField.el, this.presetHint),
      h('fieldset', {}, h('legend', {}, 'Model'), sourceField.el, this.modelDetail),
      h('fieldset', {}, h('legend', {}, 'Method'), methodField.el, this.methodHelp, this.methodOptions, this.paramsBox),
      h('fieldset', {}, h('legend', {}, 'Dataset'), formatField.el, this.dataDetail),
      this.templateBlock,
      h('fieldset', {}, h('legend', {}, 'Hyperparameters'), lengthMode.el, this.lengthBlock, this.effectiveBox, main, advanced),
      h('fieldset', {}, h('legend', {}, 'Output'), runName.el,
        h('div', { class: 'block grid' }, ...Object.keys(eprops).map(k => this.schemaField(`/export/${k}`, k, eprops[k], f.export)))),
      this.summary,
      h('div', { class: 'actions' }, this.startButton),
    );
    this.renderModelDetail();
    this.renderMethod();
    this.renderData();
    this.renderTemplate();
    this.renderLength();
    this.setTrusted(this.host.trusted());
    this.changed(false);
  }

  private renderModelDetail(): void {
    const f = this.form;
    this.forget('/model/');
    if (f.modelSource === 'embedded') {
      fill(this.modelDetail, h('p', { class: 'explain' }, 'A small BLOOM shipped with the extension: trains in seconds on a CPU, for trying methods out.'));
    } else if (f.modelSource === 'hub') {
      const id = textField({
        id: 'f-model-name_or_path', label: 'Hub id', value: f.hubId, placeholder: 'bigscience/bloom-560m',
        hint: 'Any BLOOM checkpoint (bloom-560m … bloom-7b1, bloomz, Langboat/bloom-1b4-zh). Downloaded by the trainer; safetensors only.',
        onInput: v => { f.hubId = v; this.touch('/model/name_or_path'); },
      });
      this.fields.set('/model/name_or_path', id as Field<unknown>);
      fill(this.modelDetail, id.el);
    } else {
      this.fields.set('/model/name_or_path', this.pickerField('f-model-name_or_path', 'Model folder', f.localModel, 'Choose folder…', async () => {
        const picked = await request('pickModelFolder', {});
        if (picked) { f.localModel = picked.path; this.touch('/model/name_or_path'); this.renderModelDetail(); }
      }, this.modelDetail));
    }
  }

  private renderMethod(): void {
    const f = this.form;
    const spec = methodSpec(f.method);
    this.methodHelp.textContent = spec.description ?? '';
    this.forget('/method/');
    const raw = (f.methodOptions[f.method] ??= {});
    const keys = Object.keys(spec.properties).filter(k => methodOptionVisible(f.method, k, raw));
    this.rebuild(this.methodOptions, ...keys.map(k => this.schemaField(`/method/${k}`, k, spec.properties[k], raw, () => {
      // an option that shows or hides another (init -> init_text, prefix_projection -> encoder size)
      const visible = Object.keys(spec.properties).filter(x => methodOptionVisible(f.method, x, raw)).join();
      if (visible !== keys.join()) this.renderMethod();
    })));
    if (!keys.length) this.methodOptions.append(h('p', { class: 'explain' }, 'No options.'));
  }

  private renderData(): void {
    const f = this.form;
    this.forget('/data/');
    const parts: HTMLElement[] = [];
    if (f.dataFormat !== 'hub') {
      // text corpora: a folder of code (usual) or one file; the other formats: one file
      const folder = f.dataFormat === 'text';
      const pickTrain = (kind: 'file' | 'folder') => async () => {
        const picked = await request('pickDataset', { kind, role: 'train' });
        if (picked) { f.trainFile = picked.path; this.touch('/data/train_file'); this.renderData(); }
      };
      const train = h('div', { class: 'block' });
      this.fields.set('/data/train_file', this.pickerField('f-data-train_file', folder ? 'Code or text folder' : 'Training file', f.trainFile,
        folder ? 'Choose folder…' : 'Choose file…', pickTrain(folder ? 'folder' : 'file'), train,
        folder ? 'Files with the extensions below are read and cut into blocks.' : 'JSON, JSONL or CSV, or a folder written by datasets\' save_to_disk.',
        undefined, folder ? { label: 'File…', run: pickTrain('file') } : { label: 'Folder…', run: pickTrain('folder') }));
      train.append(this.dataProblemBox);
      const evalBlock = h('div', { class: 'block' });
      this.fields.set('/data/eval_file', this.pickerField('f-data-eval_file', 'Eval file (optional)', f.evalFile, 'Choose…', async () => {
        const picked = await request('pickDataset', { kind: folder ? 'folder' : 'file', role: 'eval' });
        if (picked) { f.evalFile = picked.path; this.touch('/data/eval_file'); this.renderData(); }
      }, evalBlock, 'Without one, the eval split below is held out of the training rows.', f.evalFile ? () => { f.evalFile = ''; this.renderData(); this.changed(); } : undefined));
      parts.push(train, evalBlock);
    }
    const dprops = dataProps();
    const grid = h('div', { class: 'block grid' }, ...dataOptionKeys(f.dataFormat).map(k => this.schemaField(`/data/${k}`, k, dprops[k], f.data)));
    parts.push(grid);
    const roles = FORMAT_COLUMNS[f.dataFormat];
    if (roles.length) {
      const cprops = columnProps();
      // with the file's field names known, each role picks one of them; a hub dataset's names are typed
      const fields = this.detected?.file === f.trainFile && this.detected.fields.length ? this.detected.fields : undefined;
      parts.push(h('details', { class: 'advanced', open: roles.some(r => f.data[`columns.${r}`]) },
        h('summary', {}, 'Column mapping'),
        h('div', { class: 'block grid' }, ...roles.map(r => fields ? this.columnField(r, fields) : this.schemaField(`/data/columns/${r}`, r, cprops[r], f.data, undefined, `columns.${r}`)))));
      if (f.trainFile && f.dataFormat !== 'hub' && this.detected?.file !== f.trainFile) void this.detectFields(f.trainFile);
    }
    this.rebuild(this.dataDetail, ...parts);
  }

  private renderTemplate(): void {
    const f = this.form;
    this.forget('/template/');
    if (!usesTemplate(f.dataFormat)) { fill(this.templateBlock); return; }
    const tprops = templateProps();
    const text = (key: 'prompt' | 'response_prefix', rows: number) => {
      const field = textArea({
        id: `f-template-${key}`, label: labelFor(key), rows, value: typeof f.template[key] === 'string' ? f.template[key] as string : '',
        placeholder: String(tprops[key].default ?? ''), hint: tprops[key].description,
        onInput: v => { f.template[key] = v; this.touch(`/template/${key}`); },
      });
      this.fields.set(`/template/${key}`, field as Field<unknown>);
      return field.el;
    };
    fill(this.templateBlock, h('fieldset', {}, h('legend', {}, 'Template'),
      h('p', { class: 'explain' }, f.dataFormat === 'completion' ? 'Use {prompt} for the prompt column.' : 'Use {instruction} and {input}; the output follows the response prefix.'),
      text('prompt', 2), text('response_prefix', 3),
      h('div', { class: 'block grid' }, this.schemaField('/template/add_eos', 'add_eos', tprops.add_eos, f.template), this.schemaField('/template/mask_prompt', 'mask_prompt', tprops.mask_prompt, f.template)),
      h('h3', {}, 'Preview (first rows as the model sees them)'),
      this.previewBox));
  }

  private renderLength(): void {
    const f = this.form;
    this.forget('/training/epochs');
    this.forget('/training/max_steps');
    const k = f.lengthMode;
    this.rebuild(this.lengthBlock, this.schemaField(`/training/${k}`, k, trainingProps()[k], f.training));
  }

  // ---- fields

  /** A control for one schema property; its raw value lives in `store[at]` (`at`: the key, or the form's flat key
   *  such as `columns.output`). */
  private schemaField(pointer: string, key: string, spec: PropSpec, store: Record<string, RawValue>, after?: () => void, at = key): HTMLElement {
    const id = `f-${pointerId(pointer)}`;
    const label = labelFor(key);
    const hint = hintFor(spec);
    const update = (v: RawValue) => { store[at] = v; this.touch(pointer); after?.(); };
    let field: Field<unknown>;
    switch (kindOf(spec)) {
      case 'boolean':
        field = checkbox({ id, label, hint: spec.description, checked: typeof store[at] === 'boolean' ? store[at] as boolean : Boolean(spec.default), onChange: update }) as Field<unknown>;
        break;
      case 'enum': {
        const values = (spec.enum ?? []).map(String);
        const options = spec.default === undefined ? [{ value: '', label: '(default)' }, ...values.map(v => ({ value: v, label: v }))] : values.map(v => ({ value: v, label: v }));
        field = dropdown({ id, label, hint: spec.description, options, value: typeof store[at] === 'string' ? store[at] as string : String(spec.default ?? ''), onChange: update }) as Field<unknown>;
        break;
      }
      default:
        field = textField({ id, label, hint, placeholder: placeholderFor(spec, key), value: typeof store[at] === 'string' ? store[at] as string : '', onInput: update }) as Field<unknown>;
    }
    this.fields.set(pointer, field);
    return field.el;
  }

  /** A column role (instruction, output...) chosen from the field names found in the training file. */
  private columnField(role: string, fields: string[]): HTMLElement {
    const pointer = `/data/columns/${role}`;
    const data = this.form.data;
    const current = typeof data[`columns.${role}`] === 'string' ? data[`columns.${role}`] as string : '';
    const names = current && !fields.includes(current) ? [...fields, current] : fields;
    const field = dropdown({
      id: `f-${pointerId(pointer)}`, label: labelFor(role), value: current,
      options: [{ value: '', label: fields.includes(role) ? `${role} (default)` : `(default: ${role})` }, ...names.filter(n => n !== role || !fields.includes(role)).map(n => ({ value: n, label: n }))],
      onChange: v => { data[`columns.${role}`] = v; this.touch(pointer); },
    });
    this.fields.set(pointer, field as Field<unknown>);
    return field.el;
  }

  /** Asks the host for the training file's field names, then shows the column mapping as dropdowns. */
  private async detectFields(file: string): Promise<void> {
    try {
      const fields = await request('datasetFields', { path: file });
      if (this.form.trainFile !== file) return;
      this.detected = { file, fields };
      if (fields.length) this.renderData();
    } catch {
      this.detected = { file, fields: [] }; // unreadable here: the preview reports why; the mapping stays typed
    }
  }

  /** A read-only path chosen through a host picker, with its button (and an optional clear). */
  private pickerField(id: string, label: string, value: string, action: string, pick: () => Promise<void>, into: HTMLElement, hint?: string, clear?: () => void,
    extra?: { label: string; run: () => Promise<void> }): Field<unknown> {
    const shown = h('div', { class: value ? 'path' : 'path empty', id: `${id}-path`, title: value || undefined }, value ? h('bdi', {}, value) : 'Nothing chosen');
    const pickButton = button(action, () => void pick().catch(e => this.showHostError(e)), { id, appearance: 'secondary', ariaLabel: `${label}: ${action}` });
    const error = h('div', { class: 'field-error', id: `${id}-error`, role: 'alert', hidden: true });
    const el = h('div', { class: 'field picker', 'data-field': id },
      h('span', { class: 'field-label', id: `${id}-label` }, label),
      h('div', { class: 'picker-row' }, shown, pickButton,
        extra ? button(extra.label, () => void extra.run().catch(e => this.showHostError(e)), { id: `${id}-alt`, appearance: 'secondary', ariaLabel: `${label}: ${extra.label}` }) : null,
        clear ? button('Clear', clear, { appearance: 'secondary', ariaLabel: `Clear ${label}` }) : null),
      hint ? h('div', { class: 'field-hint' }, hint) : null, error);
    fill(into, el);
    return {
      el, control: pickButton, get: () => value, set: () => undefined, setDisabled: d => { pickButton.disabled = d; },
      setError: m => { error.textContent = m ?? ''; error.hidden = !m; el.classList.toggle('invalid', Boolean(m)); },
    };
  }

  private forget(prefix: string): void {
    for (const k of [...this.fields.keys()]) if (k.startsWith(prefix)) this.fields.delete(k);
  }

  /** Replace a block's content, keeping keyboard focus on the same control when it is rebuilt. */
  private rebuild(block: HTMLElement, ...children: HTMLElement[]): void {
    const focused = document.activeElement?.id;
    fill(block, ...children);
    if (focused) (document.getElementById(focused) as HTMLElement | null)?.focus();
  }

  /** What the environment check found; counts and preview are asked once it is ready. */
  setEnvironment(env: 'ready' | 'missing'): void {
    if (env === this.environment) return;
    this.environment = env;
    this.params.forget();
    this.preview.forget();
    this.changed(false);
  }

  /** The host's Python may have changed: forget what was asked, so counts and preview are requested again. */
  environmentChanged(): void {
    this.params.forget();
    this.preview.forget();
    this.changed(false);
  }

  private touch(pointer: string): void {
    this.touched.add(pointer);
    this.changed();
  }

  // ---- validation, counts, preview

  /** Re-validate, show messages, persist, and refresh the counts / preview / draft when their inputs changed. */
  changed(persist = true): void {
    if (persist) save();
    this.hostIssues = [];
    const config = this.config();
    this.issues = validateDraft(config);
    this.showIssues();
    const modelMethodOk = !this.issues.some(i => i.field.startsWith('/model') || i.field.startsWith('/method'));
    const paramsKey = JSON.stringify([config.model, config.method]);
    const envReady = this.environment === 'ready';
    if (!envReady) {
      // one banner above says what to do; here only what is waiting for it
      this.params.cancel();
      this.preview.cancel();
      const waiting = this.environment === 'unknown' ? 'checking the Python environment…' : 'waiting for the training environment (see above).';
      fill(this.paramsBox, h('span', { class: 'muted' }, `Trainable parameters: ${waiting}`));
      if (usesTemplate(this.form.dataFormat)) fill(this.previewBox, h('p', { class: 'muted' }, `Preview: ${waiting}`));
    } else if (modelMethodOk) {
      this.params.want(paramsKey, isLatest => this.refreshParams(config, isLatest));
    } else {
      // a count still on its way is for options that no longer stand
      this.params.cancel();
      this.paramsBox.removeAttribute('aria-busy');
      fill(this.paramsBox, h('span', { class: 'muted' }, 'Trainable parameters: fix the model/method options first.'));
    }
    const valid = this.issues.length === 0;
    this.showEffective();
    const previewKey = JSON.stringify([config.model, config.data, config.template, config.training?.max_length]);
    if (this.dataProblem && this.dataProblem.key !== previewKey) this.setDataProblem(undefined);
    if (!envReady) {
      // nothing to preview yet
    } else if (usesTemplate(this.form.dataFormat) && valid) {
      this.preview.want(previewKey, isLatest => this.refreshPreview(config, isLatest));
    } else if (!valid && this.form.dataFormat !== 'hub') {
      this.preview.forget();
      fill(this.previewBox, h('p', { class: 'muted' }, this.form.trainFile ? 'The preview appears when the form is valid.' : 'Choose a training file to preview its rows.'));
    }
    if (valid) this.draft.want(JSON.stringify(config), () => notifyDraft(config));
  }

  private showIssues(): void {
    const all = [...this.issues, ...this.hostIssues];
    const shown = (i: FieldIssue) => this.submitted || this.touched.has(i.field) || this.hostIssues.includes(i) || this.isTyped(i.field);
    const byField = new Map<string, string>();
    const loose: string[] = [];
    for (const i of all) {
      if (!shown(i)) continue;
      const target = this.fieldFor(i.field);
      if (target) { if (!byField.has(target)) byField.set(target, this.friendly(i)); }
      else loose.push(i.message);
    }
    for (const [pointer, field] of this.fields) field.setError(byField.get(pointer));
    this.summary.hidden = loose.length === 0 && !(this.submitted && all.length);
    fill(this.summary, ...(loose.length ? loose : this.submitted && all.length ? [`${all.length} field${all.length > 1 ? 's need' : ' needs'} attention.`] : []).map(m => h('div', {}, m)));
  }

  /** Number fields report as soon as they hold something (the point of validating as typed). */
  private isTyped(pointer: string): boolean {
    const field = this.fields.get(pointer);
    const v = field?.get();
    return typeof v === 'string' && v.trim() !== '';
  }

  /** The displayed field an issue belongs to: itself, or the nearest displayed ancestor. */
  private fieldFor(pointer: string): string | undefined {
    for (let p = pointer; p; p = p.slice(0, p.lastIndexOf('/'))) if (this.fields.has(p)) return p;
    return undefined;
  }

  private friendly(i: FieldIssue): string {
    if (i.field === '/data/train_file' && /missing/.test(i.message)) return 'Choose a training file.';
    if (i.field === '/model/name_or_path' && this.form.modelSource === 'local' && !this.form.localModel) return 'Choose a model folder.';
    const missing = /: missing "([^"]+)"$/.exec(i.message);
    if (missing && i.field.endsWith(`/${missing[1]}`)) return 'Required.';
    return shortMessage(i);
  }

  private async refreshParams(config: TrainingConfig, isLatest: () => boolean): Promise<void> {
    this.paramsBox.setAttribute('aria-busy', 'true');
    fill(this.paramsBox, progressRing('Counting parameters'), h('span', { class: 'muted' }, ' Counting parameters…'));
    try {
      const counts: ParamCounts = await request('params', { config });
      if (!isLatest()) return;
      fill(this.paramsBox,
        h('span', { class: 'params-label' }, 'Trainable parameters: '),
        h('strong', { id: 'params-trainable', 'data-value': counts.trainable }, fmtInt(counts.trainable)),
        h('span', {}, ' of '),
        h('span', { id: 'params-total', 'data-value': counts.total, title: fmtInt(counts.total) }, fmtCompact(counts.total)),
        h('span', {}, ' ('),
        h('strong', { id: 'params-percent', 'data-value': counts.percent }, fmtPct(counts.percent)),
        h('span', {}, ')'));
    } catch (e) {
      if (!isLatest()) return;
      this.params.forget();
      const err: HostError = e instanceof RequestError ? e.error : { message: (e as Error).message };
      if (isEnvironmentError(err)) { this.environmentMissing(err); return; }
      fill(this.paramsBox, h('span', { class: 'error-text' }, `Parameter count unavailable: ${err.message}`),
        err.hint ? h('div', { class: 'field-hint' }, err.hint) : null,
        button('Retry', () => { this.params.forget(); this.changed(false); }, { id: 'params-retry', appearance: 'secondary' }));
    } finally {
      if (isLatest()) this.paramsBox.removeAttribute('aria-busy');
    }
  }

  private async refreshPreview(config: TrainingConfig, isLatest: () => boolean): Promise<void> {
    fill(this.previewBox, progressRing('Loading preview'));
    try {
      const { rows, trainRows, warnings } = await request('preview', { config, rows: 3 });
      if (!isLatest()) return;
      this.trainRows = trainRows;
      this.showEffective();
      // data warnings (rows skipped, a language the model lacks) stand above the rows they are about
      fill(this.previewBox, ...warnings.map(w => h('p', { class: 'log-warning preview-warning', role: 'alert' }, `⚠ ${w}`)),
        ...(rows.length ? rows.map((r, i) => this.previewRow(r, i)) : [h('p', { class: 'muted' }, 'The dataset has no rows.')]));
    } catch (e) {
      if (!isLatest()) return;
      this.preview.forget();
      const err: HostError = e instanceof RequestError ? e.error : { message: (e as Error).message };
      if (isEnvironmentError(err)) { this.environmentMissing(err); return; }
      if (isDataError(err)) {
        // said once, next to the file it is about; Start is refused until the file or the settings change
        this.setDataProblem({ key: JSON.stringify([config.model, config.data, config.template, config.training?.max_length]), error: err });
        fill(this.previewBox, h('p', { class: 'muted' }, 'No preview: the dataset has a problem (shown at the file above).'));
        return;
      }
      fill(this.previewBox, h('div', { class: 'error-text', role: 'alert' }, err.message, err.hint ? h('div', { class: 'field-hint' }, err.hint) : null),
        button('Retry', () => { this.preview.forget(); this.changed(false); }, { id: 'preview-retry', appearance: 'secondary' }));
    }
  }

  /** An ImportError from the trainer: the environment's problem (the banner offers the setup), never the form's. */
  private environmentMissing(error: HostError): void {
    this.environment = 'missing';
    this.changed(false);
    this.host.environmentProblem(error);
  }

  /** A dataset problem at the training-file field: the message, a link to the file at its line, the hint. */
  private setDataProblem(problem: { key: string; error: HostError } | undefined): void {
    this.dataProblem = problem;
    const err = problem?.error;
    this.dataProblemBox.hidden = !err;
    this.el.querySelector('[data-field="f-data-train_file"]')?.classList.toggle('invalid', Boolean(err));
    if (!err) { this.dataProblemBox.replaceChildren(); return; }
    // the trainer's message starts with "path:line: "; the link says where, so the text need not repeat it
    const where = err.file ? `${err.file}${err.line ? `:${err.line}` : ''}` : '';
    const text = where && err.message.startsWith(`${where}: `) ? err.message.slice(where.length + 2) : err.message;
    const file = err.file;
    const link = file ? h('a', {
      href: '#', class: 'file-link', id: 'data-problem-link', title: `Open ${where}`,
      onclick: (e: Event) => { e.preventDefault(); void request('openFile', { path: file, ...(err.line ? { line: err.line } : {}) }).catch(x => this.showHostError(x)); },
    }, `${file.split(/[\\/]/).pop()}${err.line ? `:${err.line}` : ''}`) : null;
    fill(this.dataProblemBox, link, link ? ': ' : null, text, err.hint ? h('div', { class: 'field-hint' }, err.hint) : null);
  }

  /** A preset's config for the current method (or the preset's default), from the host: its data paths count as picked. */
  private async applyPreset(id: string): Promise<void> {
    const preset = PRESETS.find(p => p.id === id);
    try {
      const config = await request('presetConfig', { id, method: this.form.method });
      state.form = formFromConfig(config, this.form);
      this.trainRows = undefined;
      this.render();
      this.changed();
      this.presetHint.textContent = `${preset?.label}: ${preset?.detail ?? ''}${preset?.data_root === 'workspace' ? ' Choose your copy of the dataset below.' : ''}`;
    } catch (e) {
      this.showHostError(e);
    }
  }

  /** "lr 1e-3 (LoRA default) · 30 optimizer steps (80 training rows, batch 8 × accumulation 1, 3 epochs)". */
  private showEffective(): void {
    const f = this.form;
    const t = trainingProps();
    const value = (k: string): number => { const v = convert(f.training[k], t[k], k); return typeof v === 'number' ? v : Number(t[k].default); };
    const fmt = (n: number) => (n >= 0.01 && n < 1000 ? String(Number(n.toPrecision(3))) : n.toExponential().replace(/\.?0+e/, 'e').replace('e-0', 'e-').replace('e+', 'e'));
    const lrDefault = methodDefaultLearningRate(f.method);
    const typedLr = convert(f.training.learning_rate, t.learning_rate, 'learning_rate');
    const lrControl = this.fields.get('/training/learning_rate')?.control as HTMLInputElement | undefined;
    if (lrControl) lrControl.placeholder = `${fmt(lrDefault)} (${METHOD_LABELS[f.method]} default)`;
    const lr = typeof typedLr === 'number' ? `lr ${fmt(typedLr)}` : `lr ${fmt(lrDefault)} (${METHOD_LABELS[f.method]} default)`;
    const batch = { batchSize: value('batch_size'), gradAccum: value('grad_accum'), numGpus: value('num_gpus'), epochs: value('epochs') };
    let steps: string;
    if (f.lengthMode === 'max_steps' && Number.isFinite(value('max_steps'))) {
      steps = `${value('max_steps')} optimizer steps`;
    } else if (this.trainRows !== undefined && Object.values(batch).every(n => Number.isFinite(n) && n > 0)) {
      steps = `${optimizerSteps(this.trainRows, batch)} optimizer steps (${this.trainRows} training rows, batch ${batch.batchSize} × accumulation ${batch.gradAccum}${batch.numGpus > 1 ? ` × ${batch.numGpus} GPUs` : ''}, ${batch.epochs} epoch${batch.epochs === 1 ? '' : 's'})`;
    } else {
      steps = `${batch.epochs} epoch${batch.epochs === 1 ? '' : 's'} (the step count shows once the dataset is read)`;
    }
    this.effectiveBox.textContent = `This run: ${lr} · ${steps}`;
  }

  private previewRow(r: PreviewRow, i: number): HTMLElement {
    const masked = r.prompt && r.text.startsWith(r.prompt) ? r.prompt : '';
    return h('figure', { class: 'preview-row', 'data-tokens': r.tokens },
      h('figcaption', {}, `Row ${i + 1}: ${r.tokens} tokens${r.promptTokens !== undefined ? ` (${r.promptTokens} in the prompt${this.form.template.mask_prompt === false ? '' : ', masked from the loss'})` : ''}${r.truncated ? ', truncated to max length' : ''}`),
      h('pre', {}, masked ? h('span', { class: 'masked', title: 'prompt (masked from the loss)' }, masked) : null, r.text.slice(masked.length)));
  }

  // ---- start

  private async start(): Promise<void> {
    const config = this.validConfig();
    if (!config) { this.focusFirstInvalid(); return; }
    if (this.dataProblem) {
      // the preview already found the dataset broken: a run would fail on the same row
      this.summary.hidden = false;
      fill(this.summary, h('div', {}, 'The dataset has a problem (shown at the training file): fix the file or the settings, then start.'));
      this.dataProblemBox.scrollIntoView?.({ block: 'center' });
      return;
    }
    this.starting = true;
    this.updateStart();
    try {
      await request('start', { config });
      // a run name names one run: the next run gets a fresh (automatic) one instead of a duplicate
      this.clearRunName();
      this.host.started();
    } catch (e) {
      this.showHostError(e);
    } finally {
      this.starting = false;
      this.updateStart();
    }
  }

  private clearRunName(): void {
    this.form.runName = '';
    this.fields.get('/run_name')?.set('');
    this.touched.delete('/run_name');
    this.changed();
  }

  /** A host refusal: its field issues go next to the fields, the rest to the summary. */
  showHostError(e: unknown): void {
    const err: HostError = e instanceof RequestError ? e.error : { message: (e as Error).message };
    this.hostIssues = (err.issues ?? []).map(i => ({ field: i.path, message: i.message }));
    this.showIssues();
    if (!this.hostIssues.length || !this.hostIssues.every(i => this.fieldFor(i.field))) {
      this.summary.hidden = false;
      fill(this.summary, h('div', {}, err.message), err.hint ? h('div', { class: 'field-hint' }, err.hint) : null);
    }
    this.focusFirstInvalid();
  }

  private focusFirstInvalid(): void {
    const first = this.el.querySelector('.field.invalid');
    const control = first?.querySelector('[id^="f-"]') as HTMLElement | null;
    control?.focus();
    (first ?? this.summary).scrollIntoView?.({ block: 'center' });
  }
}
