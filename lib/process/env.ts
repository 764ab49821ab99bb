import { UserError } from "../cli/errors.ts";

export interface ChildEnvOptions {
  /**
   * GPUs assigned to this child (CUDA ordinals or UUIDs). Absent: `CUDA_VISIBLE_DEVICES` is
   * passed through untouched. An empty array hides every GPU (`CUDA_VISIBLE_DEVICES=""`).
   */
  gpus?: readonly string[];
}

/**
 * The explicit environment a trainer child gets (docs/pipeline.md): the parent's, plus
 * `CUDA_VISIBLE_DEVICES` when GPUs are assigned, plus what TensorFlow's GPU backend needs.
 * `TF_FORCE_GPU_ALLOW_GROWTH` (so children sharing a GPU do not each grab all of it) and
 * `TF_CPP_MIN_LOG_LEVEL` (quiet C++ logs) are defaults: a value the user set wins.
 */
export function childEnv(
  parentEnv: Readonly<Record<string, string | undefined>>,
  options: ChildEnvOptions = {},
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(parentEnv)) {
    if (value !== undefined) env[name] = value;
  }
  if (options.gpus !== undefined) env.CUDA_VISIBLE_DEVICES = gpuList(options.gpus);
  env.TF_FORCE_GPU_ALLOW_GROWTH ??= "true";
  env.TF_CPP_MIN_LOG_LEVEL ??= "2";
  return env;
}

function gpuList(gpus: readonly string[]): string {
  for (const gpu of gpus) {
    if (gpu === "" || /[\s,]/.test(gpu)) {
      throw new UserError(`invalid GPU id ${JSON.stringify(gpu)}: expected an ordinal like 0 or a UUID`);
    }
  }
  return gpus.join(",");
}
