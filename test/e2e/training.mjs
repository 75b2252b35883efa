// Training settings of the scenarios: small enough for 2 CPU cores shared with VS Code and chromium, large enough
// for the embedded model to learn the sample task (scenario 3 checks the answer). E2E_STEPS overrides the length.
export const TRAIN = {
  method: 'lora',
  methodOptions: { r: 16, alpha: 32, dropout: 0 },
  training: {
    max_steps: Number(process.env.E2E_STEPS ?? 150), batch_size: 8, learning_rate: 0.003, max_length: 64, warmup_ratio: 0.05,
    log_every: 2, save_every: 50,
  },
  evalEvery: 50,
};

// Runs that are stopped or killed on purpose: checkpoints often; scenario 2 asks for more steps so that the Stop
// (a palette command, a second or two after the first checkpoint) lands before the end on a fast machine too.
export const SHORT = {
  max_steps: 24, batch_size: 4, learning_rate: 0.003, max_length: 48, log_every: 1, save_every: 4, eval_every: 1000,
};
