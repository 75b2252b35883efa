// The training core (no vscode import): the service, its types, and the parts the CLI and tests use.
export * from './types';
export { TrainingService, type TrainingServiceOptions } from './service';
export { RunStore, EventsTail, summarize, resolveConfigPaths, newestCheckpoint, type RunRecord } from './runStore';
export { TrainerProcess, superviseRun, stopVerified, LastWindowWatch } from './supervisor';
export { JsonLinesParser, parseLine, DEFAULT_MAX_LINE_BYTES, type ParsedLine } from './jsonLines';
export { resolvePython, hasTrainerPackages, setupManagedEnv, runTrainerJson, type PythonChoice, type PythonLookup, type PythonSource } from './python';
export { extensionRoot, trainerSourceDir, sampleDataset, venvPython } from './paths';
export { groupMembers, isAlive, killGroupSync, signalGroup, waitGroupGone, verifyProcess } from './processes';
