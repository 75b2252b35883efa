// The one room that knows the component library. @vscode/webview-ui-toolkit is archived upstream (Jan 2025):
// every other webview file builds controls through these factories, so replacing the toolkit (with
// @vscode-elements or plain HTML) means rewriting this folder only. Controls expose a small common shape.
import {
  provideVSCodeDesignSystem, vsCodeButton, vsCodeCheckbox, vsCodeDataGrid, vsCodeDataGridCell,
  vsCodeDataGridRow, vsCodeDivider, vsCodeDropdown, vsCodeOption,
  vsCodeProgressRing, vsCodeTextArea, vsCodeTextField,
} from '@vscode/webview-ui-toolkit';
import { h, type Child } from '../dom';

let registered = false;
export function registerComponents(): void {
  if (registered) return;
  registered = true;
  provideVSCodeDesignSystem().register(
    vsCodeButton(), vsCodeCheckbox(), vsCodeDataGrid(), vsCodeDataGridCell(), vsCodeDataGridRow(),
    vsCodeDivider(), vsCodeDropdown(), vsCodeOption(),
    vsCodeProgressRing(), vsCodeTextArea(), vsCodeTextField(),
  );
}

/** A labelled value control with an error slot next to it. */
export interface Field<T> {
  /** wrapper: label + control + hint + error */
  el: HTMLElement;
  /** the focusable control */
  control: HTMLElement;
  get(): T;
  set(value: T): void;
  setError(message: string | undefined): void;
  setDisabled(disabled: boolean): void;
}

interface FieldBase { id: string; label: string; hint?: string }

function fieldShell(o: FieldBase, control: HTMLElement, labelInside: boolean): { el: HTMLElement; setError(m?: string): void } {
  const error = h('div', { class: 'field-error', id: `${o.id}-error`, role: 'alert', hidden: true });
  const hint = o.hint ? h('div', { class: 'field-hint', id: `${o.id}-hint` }, o.hint) : null;
  const label = labelInside ? null : h('label', { class: 'field-label', for: o.id }, o.label);
  const el = h('div', { class: 'field', 'data-field': o.id }, label, control, hint, error);
  return {
    el,
    setError(message) {
      error.textContent = message ?? '';
      error.hidden = !message;
      el.classList.toggle('invalid', Boolean(message));
      if (message) control.setAttribute('aria-invalid', 'true'); else control.removeAttribute('aria-invalid');
    },
  };
}

export function textField(o: FieldBase & { value?: string; placeholder?: string; onInput?: (v: string) => void; size?: 'wide' }): Field<string> {
  const control = h('vscode-text-field', { id: o.id, placeholder: o.placeholder, 'aria-label': o.label, class: o.size === 'wide' ? 'wide' : undefined }, o.label) as HTMLElement & { value: string; disabled: boolean };
  control.value = o.value ?? '';
  control.addEventListener('input', () => o.onInput?.(control.value));
  const shell = fieldShell(o, control, true);
  return { el: shell.el, control, get: () => control.value, set: v => { control.value = v; }, setError: shell.setError, setDisabled: d => { control.disabled = d; } };
}

export function textArea(o: FieldBase & { value?: string; rows?: number; placeholder?: string; onInput?: (v: string) => void }): Field<string> {
  const control = h('vscode-text-area', { id: o.id, rows: o.rows ?? 3, resize: 'vertical', placeholder: o.placeholder, 'aria-label': o.label, class: 'wide' }, o.label) as HTMLElement & { value: string; disabled: boolean };
  control.value = o.value ?? '';
  control.addEventListener('input', () => o.onInput?.(control.value));
  const shell = fieldShell(o, control, true);
  return { el: shell.el, control, get: () => control.value, set: v => { control.value = v; }, setError: shell.setError, setDisabled: d => { control.disabled = d; } };
}

export interface Option { value: string; label: string }

export function dropdown(o: FieldBase & { options: Option[]; value?: string; onChange?: (v: string) => void }): Field<string> & { setOptions(options: Option[], value?: string): void } {
  const control = h('vscode-dropdown', { id: o.id, 'aria-label': o.label, position: 'below' }) as HTMLElement & { value: string; disabled: boolean };
  const render = (options: Option[], value?: string) => {
    control.replaceChildren(...options.map(opt => h('vscode-option', { value: opt.value, selected: opt.value === value }, opt.label)));
    if (value !== undefined) control.value = value;
  };
  render(o.options, o.value);
  control.addEventListener('change', () => o.onChange?.(control.value));
  const shell = fieldShell(o, control, false);
  return {
    el: shell.el, control, get: () => control.value, set: v => { control.value = v; }, setError: shell.setError,
    setDisabled: d => { control.disabled = d; }, setOptions: render,
  };
}

export function checkbox(o: FieldBase & { checked?: boolean; onChange?: (v: boolean) => void }): Field<boolean> {
  const control = h('vscode-checkbox', { id: o.id }, o.label) as HTMLElement & { checked: boolean; disabled: boolean };
  control.checked = Boolean(o.checked);
  control.addEventListener('change', () => o.onChange?.(control.checked));
  const shell = fieldShell(o, control, true);
  return { el: shell.el, control, get: () => control.checked, set: v => { control.checked = v; }, setError: shell.setError, setDisabled: d => { control.disabled = d; } };
}

export type ButtonAppearance = 'primary' | 'secondary' | 'icon';
export function button(label: string, onClick: () => void, o: { id?: string; appearance?: ButtonAppearance; title?: string; ariaLabel?: string } = {}): HTMLElement & { disabled: boolean } {
  const el = h('vscode-button', { id: o.id, appearance: o.appearance ?? 'primary', title: o.title, 'aria-label': o.ariaLabel }, label) as HTMLElement & { disabled: boolean };
  el.addEventListener('click', () => { if (!el.disabled) onClick(); });
  return el;
}

/** The toolkit's <vscode-badge> renders an inline style attribute, which the webview's CSP blocks: a themed span. */
export function badge(text: string, o: { title?: string } = {}): HTMLElement {
  return h('span', { class: 'badge', title: o.title }, text);
}

export function divider(): HTMLElement { return h('vscode-divider', { role: 'separator' }); }

export function progressRing(label = 'Working'): HTMLElement { return h('vscode-progress-ring', { 'aria-label': label }); }

/** Determinate progress: the toolkit has none, so the native element (accessible, themed in CSS). */
export function progressBar(id: string, label: string): HTMLProgressElement {
  return h('progress', { id, max: 1, value: 0, 'aria-label': label, class: 'progress' });
}

export interface Tab { id: string; label: string; content: HTMLElement }
/**
 * Tabbed sections; `onSelect` reports the active tab id (persisted by the caller). A plain ARIA tab list, not the
 * toolkit's <vscode-panels>: its tab strip is a one-row grid in a shadow root, so five tabs overflow a 250-300 px
 * sidebar. Here the tabs wrap onto a second row; arrow keys, Home and End move between them (roving tabindex).
 */
export function panels(tabs: Tab[], active: string, onSelect: (id: string) => void): { el: HTMLElement; select(id: string): void } {
  const buttons = tabs.map(t => h('button', { type: 'button', role: 'tab', class: 'tab', id: `tab-${t.id}`, 'aria-controls': `view-${t.id}` }, t.label));
  const views = tabs.map(t => h('div', { role: 'tabpanel', class: 'tab-view', id: `view-${t.id}`, 'aria-labelledby': `tab-${t.id}` }, t.content));
  const list = h('div', { role: 'tablist', class: 'tabs', 'aria-label': 'Dashboard sections' }, ...buttons);
  const el = h('div', { class: 'panels' }, list, ...views);
  const select = (id: string) => {
    const known = tabs.some(t => t.id === id) ? id : tabs[0].id;
    tabs.forEach((t, i) => {
      const on = t.id === known;
      buttons[i].setAttribute('aria-selected', String(on));
      buttons[i].tabIndex = on ? 0 : -1;
      views[i].hidden = !on;
    });
  };
  buttons.forEach((b, i) => {
    b.addEventListener('click', () => { select(tabs[i].id); onSelect(tabs[i].id); });
    b.addEventListener('keydown', (e: KeyboardEvent) => {
      const next = e.key === 'ArrowRight' || e.key === 'ArrowDown' ? (i + 1) % tabs.length
        : e.key === 'ArrowLeft' || e.key === 'ArrowUp' ? (i - 1 + tabs.length) % tabs.length
          : e.key === 'Home' ? 0 : e.key === 'End' ? tabs.length - 1 : -1;
      if (next < 0) return;
      e.preventDefault();
      buttons[next].focus();
      buttons[next].click();
    });
  });
  select(active);
  return { el, select };
}

export interface Column<R> { title: string; cell: (row: R) => Child; width?: string }
/**
 * A read-only grid. Rows are built by hand (not rowsData) so cells can hold controls (a selection checkbox,
 * buttons); the toolkit's grid gives arrow-key navigation between cells.
 */
export function dataGrid<R>(id: string, label: string, columns: Column<R>[], rows: R[], rowId?: (row: R) => string): HTMLElement {
  const template = columns.map(c => c.width ?? '1fr').join(' ');
  const grid = h('vscode-data-grid', { id, 'aria-label': label, 'grid-template-columns': template, 'generate-header': 'none' },
    h('vscode-data-grid-row', { 'row-type': 'header' },
      ...columns.map((c, i) => h('vscode-data-grid-cell', { 'cell-type': 'columnheader', 'grid-column': i + 1 }, c.title))),
    ...rows.map(r => h('vscode-data-grid-row', { 'data-row': rowId?.(r) },
      ...columns.map((c, i) => h('vscode-data-grid-cell', { 'grid-column': i + 1, 'data-title': c.title || undefined }, c.cell(r))))));
  return grid;
}
