/** Slurm building blocks: submit, describe, follow and control batch jobs through Slurm's own commands. */
export {
  runSlurmTool,
  type SlurmCommandOptions,
  SlurmError,
  type SlurmTool,
  slurmErrorText,
} from "./command.ts";
export { type CancelOptions, cancelJobs, holdJob, releaseJob, requeueJob } from "./control.ts";
export { checkJobId, isJobId, type JobId } from "./job-id.ts";
export {
  JOB_START_MARKER,
  type JobScriptSpec,
  type JobStart,
  jobStartsInLog,
  renderJobScript,
  shellQuote,
  writeJobScript,
} from "./job-script.ts";
export { type SbatchOptionGroup, type SbatchOptions, sbatchArgs, sbatchOptionGroups } from "./options.ts";
export { processesOfJob, processesOfJobs } from "./processes.ts";
export {
  type JobInfo,
  type JobPhase,
  type JobStateName,
  jobInfoFromFields,
  jobPhase,
  type ListFilter,
  listJobs,
  parseScontrolFields,
  showJob,
} from "./query.ts";
export {
  baseSbatchOptions,
  DEFAULT_MAX_REQUEUES,
  DEFAULT_SIGNAL_SEC,
  type SlurmEnvSettings,
  slurmSettingsFromEnv,
} from "./settings.ts";
export { type SubmitRequest, type SubmittedJob, submitJob } from "./submit.ts";
export { allFinished, describeJobs, type WaitOptions, waitForJob } from "./wait.ts";
