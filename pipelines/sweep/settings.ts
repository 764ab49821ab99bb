/**
 * Where a sweep reads and writes, and the DPO child's command line, from the pipeline's settings
 * (so OUT_DIR, SFT_OUT, DPO_OUT, DPO_JSON, TF_DIR, MODEL_*, DPO_ARGS and `--` flags mean the same
 * as in `npm run pipeline`).
 *
 * A child's arguments are the pipeline's DPO trainer arguments with the sweep's own on top:
 * `--out_dir <dpo>/from_step_N`, its `--ckpt_dir`, `--tensorboard_dir TF_DIR/dpo_sweep/from_step_N`,
 * `--legacy_weights <dpo>/from_step_N/rlhf_<hidden>.safetensors` (children must never share a
 * file), `--init_from <the line's checkpoint>` and `--resume auto` (so an interrupted child resumes
 * its own step checkpoints). These six win over the same flags given anywhere else.
 */
import { join, resolve } from "node:path";
import { flags, mergeFlagLayers, parseFlagGroups } from "../../lib/cli/flag-layers.ts";
import { legacyWeightsName } from "../../lib/stages/args.ts";
import { stagePaths } from "../../lib/stages/paths.ts";
import { nodeScript } from "../executor/node-script.ts";
import type { Executor } from "../executor/types.ts";
import type { PipelineSettings } from "../pipeline/settings.ts";
import { runDirName } from "./claims.ts";
import { visibleDevices } from "./gpu-slots.ts";
import type { SweepPlan } from "./sweep.ts";

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Test hook: a script run instead of trainer/train_dpo.ts (same arguments), e.g. a stand-in that
 * records its CUDA_VISIBLE_DEVICES. Not for users.
 */
export const TRAINER_OVERRIDE_ENV = "BATON_DPO_SWEEP_TRAINER";

export interface SweepSettings extends SweepPlan {
  /** `<dpo>/sweep_report.csv`. */
  reportFile: string;
  devices: string[] | null;
  stopGraceMs: number;
  stallTimeoutMs: number;
}

export function sweepSettings(
  pipeline: PipelineSettings,
  env: Env,
  executor: Executor,
  options: { queueFile?: string | null } = {},
): SweepSettings {
  const sft = stagePaths(pipeline.stages.sft.args);
  const dpo = pipeline.stages.dpo;
  const dpoRoot = dpo.outDir;
  const trainer = env[TRAINER_OVERRIDE_ENV] ? resolve(env[TRAINER_OVERRIDE_ENV]) : dpo.trainer;
  const base = dpo.trainerArgs([]);
  const hidden = dpo.args.hidden_size;
  return {
    queueFile: options.queueFile ?? sft.queueFile,
    sftMetadataFile: sft.metadataFile,
    dpoRoot,
    reportFile: join(dpoRoot, "sweep_report.csv"),
    env,
    executor,
    devices: visibleDevices(env),
    stopGraceMs: pipeline.stopGraceMs,
    stallTimeoutMs: pipeline.stallTimeoutMs,
    command(entry, checkpoint, runDir) {
      const args = mergeFlagLayers([
        parseFlagGroups(base, "the DPO trainer's arguments"),
        flags([
          ["out_dir", runDir],
          ["ckpt_dir", join(runDir, "checkpoints")],
          ["tensorboard_dir", join(pipeline.tfDir, "dpo_sweep", runDirName(entry.step))],
          ["legacy_weights", join(runDir, legacyWeightsName("dpo", hidden))],
          ["eval_results", join(pipeline.tfDir, "eval_results.jsonl")],
          ["init_from", checkpoint],
          ["resume", "auto"],
        ]),
      ]);
      return nodeScript(trainer, args);
    },
  };
}
