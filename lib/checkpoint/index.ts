export {
  type CheckpointInfo,
  inspectCheckpoint,
  type VerifyOptions,
  type VerifyResult,
  verifyCheckpoint,
} from "./inspect.ts";
export {
  isCheckpointFileName,
  MAX_STEP,
  parseStepDirName,
  STAGING_PREFIX,
  STATE_FILE,
  stepDirName,
} from "./layout.ts";
export { writeLegacyWeights } from "./legacy.ts";
export {
  type CheckpointsSurvey,
  type LoadedCheckpoint,
  type LoadOptions,
  latestValidCheckpoint,
  listCheckpoints,
  loadLatestCheckpoint,
  loadNamedCheckpoint,
  surveyCheckpoints,
} from "./list.ts";
export { type ProtectHook, type PruneOptions, pruneCheckpoints } from "./prune.ts";
export { type ResolvedCheckpointPath, resolveCheckpointsDir } from "./resolve.ts";
export {
  CheckpointWriteError,
  type SaveCheckpointOptions,
  type SaveCheckpointResult,
  saveCheckpoint,
} from "./save.ts";
export {
  CHECKPOINT_FORMAT_VERSION,
  type CheckpointState,
  type CheckpointStateFields,
  type CheckpointStateInput,
  type FileManifestEntry,
  parseCheckpointState,
  runIdOf,
  UNRECORDED_RUN_ID,
} from "./state.ts";
