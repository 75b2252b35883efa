// The ONNX export's weight quantizations, from the schema's export.quantize enum (no validator here: the webview
// imports this at run time, and its CSP forbids the ajv.compile that config.ts does). docs/export.md says what each is.
import schema from '../../schemas/training-config.schema.json';
import type { ExportOptions } from './generated/training-config';

export type Quantization = NonNullable<ExportOptions['quantize']>;
/** In the schema's order: none, int8, int4. */
export const QUANTIZATIONS: readonly Quantization[] = schema.properties.export.properties.quantize.enum as Quantization[];

/** What a user picks between (dashboard, export command): size and what rounding costs, measured in docs/export.md. */
export const QUANTIZATION_LABELS: Record<Quantization, string> = {
  none: 'float32 (exact, largest)',
  int8: 'int8 (a quarter of the size)',
  int4: 'int4 (a sixth, fastest, less exact)',
};
