/** Process lifecycle for training stages (docs/pipeline.md): run, drain, stop and reap child processes. */

export { labelledEcho } from "./echo.ts";
export { type ChildEnvOptions, childEnv } from "./env.ts";
export {
  commandLineIncludes,
  descendantGroups,
  groupAlive,
  livingGroupMembers,
  processAlive,
  processStartTime,
  reapGroup,
  signalGroup,
} from "./group.ts";
export { DEFAULT_MAX_LINE_LENGTH, LineSplitter } from "./lines.ts";
export { describeExit, failureExitCode, formatFailureReport } from "./report.ts";
export { type ChildResult, type ChildSpec, runChild } from "./run-child.ts";
export {
  installStopHandlers,
  interruptExitCode,
  STOP_SIGNALS,
  StopController,
  type StopListener,
  type StopSignal,
} from "./stop.ts";
