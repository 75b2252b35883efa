// Trainer event protocol v1: one JSON object per line on the trainer's stdout. The JSON Schema in
// schemas/events.schema.json is the source of truth; the types are generated from it (scripts/gen-types.mjs).
import type { TrainerEvent } from './generated/events';

export type {
  TrainerEvent, StartedEvent, ProgressEvent, EvalEvent, CheckpointEvent, LogEvent, WarningEvent, ErrorEvent, DoneEvent,
  EvaluationEvent, EvaluationScores, EvaluationSample,
} from './generated/events';

export const PROTOCOL_VERSION = 1;

export type TrainerEventType = TrainerEvent['type'];
export const KNOWN_EVENT_TYPES: readonly TrainerEventType[] = ['started', 'progress', 'eval', 'checkpoint', 'log', 'warning', 'error', 'evaluation', 'done'];

/** Control messages the host writes to the trainer's stdin, one JSON object per line. */
export type TrainerControl = { type: 'stop' };
