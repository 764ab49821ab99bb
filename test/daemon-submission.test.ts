import assert from "node:assert/strict";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { SUBMISSION_VARIABLES } from "../pipelines/daemon/submission/variables.ts";
import { parsePipelineFlags } from "../pipelines/pipeline/cli.ts";
import { pipelineSettings } from "../pipelines/pipeline/settings.ts";

const REPO = fileURLToPath(new URL("..", import.meta.url));

/** Every variable `pipelineSettings` reads from `env`, on top of `base`. */
function variablesRead(base: Record<string, string>, argv: string[] = []): Set<string> {
  const read = new Set<string>();
  const env = new Proxy(base, {
    get(target, name) {
      if (typeof name === "string") read.add(name);
      return target[name as string];
    },
  });
  pipelineSettings(env, parsePipelineFlags(argv), REPO);
  return read;
}

test("every variable the pipeline reads can be submitted to the daemon", () => {
  const read = new Set([
    ...variablesRead({}),
    ...variablesRead({}, ["--smoke-test"]),
    ...variablesRead({ EXECUTOR: "slurm" }),
  ]);
  // Sanity: the recording sees the reads (a pipeline reading nothing would pass trivially).
  for (const name of ["OUT_DIR", "MODEL_PRESET", "EXECUTOR", "SLURM_PARTITION", "SFT_ARGS"])
    assert.ok(read.has(name), `${name} is read`);
  const submittable = new Set(SUBMISSION_VARIABLES);
  const missing = [...read].filter((name) => !submittable.has(name));
  assert.deepEqual(missing, [], "read by the pipeline but refused in a submission");
});
