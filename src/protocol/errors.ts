// The one shape of an error the user can act on, on the TypeScript side: a code to branch on, a message that says
// where and why, and a hint that says what to do (the trainer's errors have the same three fields,
// bloom_peft/errors.py). EngineError, TrainingError, DashboardError, the webview's RequestError and the CLI's
// UsageError extend it.
export class StudioError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly hint?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
