// What the status bar item says for a service status (pure, so it is testable without VS Code).
import type { CompletionStatus } from './service';

export function statusText(s: CompletionStatus): { text: string; tooltip: string } {
  const name = s.adapter ? s.adapter.label + (s.adapter.auto ? ' (newest)' : '') : '';
  const latency = s.lastLatencyMs !== undefined ? ` · ${Math.round(s.lastLatencyMs)} ms` : '';
  const lines = [`**Bloom PEFT inline completions**`, ''];
  if (s.adapter) lines.push(`Adapter: ${name}${s.adapter.method ? ` (${s.adapter.method})` : ''}`, `Export: \`${s.adapter.exportDir}\``);
  switch (s.state) {
    case 'disabled':
      lines.push('Turned off.');
      return { text: '$(circle-slash) Bloom', tooltip: lines.concat('', 'Click to turn on or choose an adapter.').join('\n\n') };
    case 'no-adapter':
      if (s.adapter) return { text: `$(sparkle) ${name}`, tooltip: lines.concat('Loads on the first completion.', '', 'Click to switch adapter or turn completions off.').join('\n\n') };
      lines.push('No adapter with an ONNX export yet: train a run, or choose one.');
      return { text: '$(sparkle) Bloom: no adapter', tooltip: lines.concat('', 'Click to choose an adapter.').join('\n\n') };
    case 'loading':
      lines.push('Loading the ONNX export…');
      return { text: `$(loading~spin) ${name || 'Bloom'}`, tooltip: lines.join('\n\n') };
    case 'error':
      lines.push(`Stopped: ${s.problem?.message ?? 'error'}`, s.problem?.hint ?? '');
      return { text: `$(error) ${name || 'Bloom'}`, tooltip: lines.concat('', 'Click to choose or reload an adapter.').join('\n\n') };
    case 'ready':
      if (s.lastLatencyMs !== undefined) lines.push(`Last completion: ${Math.round(s.lastLatencyMs)} ms (engine ${Math.round(s.lastEngineMs ?? 0)} ms)`);
      return { text: `$(sparkle) ${name}${latency}`, tooltip: lines.concat('', 'Click to switch adapter or turn completions off.').join('\n\n') };
  }
}
