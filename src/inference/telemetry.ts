// onnxruntime 1.30 starts Microsoft's 1DS telemetry on Linux and macOS as soon as its native library loads: it reads
// /etc/machine-id, keeps a device id and an event database under ~/.cache/Microsoft/DeveloperTools/.onnxruntime and
// writes /tmp/mat-debug-<pid>.log. An editor extension does not report on its users by default, so this module sets
// ORT_DISABLE_TELEMETRY=1 (onnxruntime's own switch) unless the user chose a value. It must run before
// onnxruntime-node loads and in the main thread: a worker thread's process.env is a copy native code never sees.
// Imported first by engine.ts (which starts the worker) and decoder.ts (which loads onnxruntime-node).
// docs/reliability.md, "Privacy".
process.env.ORT_DISABLE_TELEMETRY ??= '1';

export {};
