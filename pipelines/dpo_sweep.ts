#!/usr/bin/env -S node --import tsx
import { fileURLToPath } from "node:url";
/**
 * `npm run dpo-sweep` — DPO from every SFT checkpoint of the work queue (docs/formats.md#the-checkpoint-queue-checkpointsjsonl), one child
 * process per checkpoint, crash-safe and resumable; `--report` prints the results. The same sweep
 * runs inside the pipeline with `npm run pipeline -- --dpo-sweep`. Never loads TensorFlow.js.
 */
import { EXIT, UserError } from "../lib/cli/errors.ts";
import { runMain } from "../lib/cli/main.ts";
import { StopController } from "../lib/process/index.ts";
import { localExecutor } from "./executor/local.ts";
import { pipelineSettings } from "./pipeline/settings.ts";
import { routeStopSignals } from "./pipeline/signals.ts";
import { sweepArrayCommand } from "./sweep/array.ts";
import { reportCommand, sweepCommand } from "./sweep/command.ts";
import { parseSweepFlags, sweepPipelineFlags } from "./sweep/flags.ts";
import { sweepSettings } from "./sweep/settings.ts";

const NAME = "dpo_sweep";
const REPO = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");

const HELP = `Usage: npm run dpo-sweep -- [flags] [-- DPO trainer flags]
       node --import tsx pipelines/dpo_sweep.ts [flags] [-- DPO trainer flags]

Trains DPO from every SFT checkpoint listed in OUT_DIR/sft/checkpoints.jsonl (the SFT trainer lists
each checkpoint it saves), one child process per checkpoint, into OUT_DIR/dpo/from_step_N/, and marks
each line completed. Run the same command again after Ctrl+C or a crash: completed lines are skipped
and an interrupted run resumes from its own step checkpoints. Sweeps started together on the same
queue share the work and never train the same line at once.

Flags:
  --watch             also wait for new checkpoints while SFT trains; ends once the SFT run's
                      metadata.json says finished and every line is completed (or on Ctrl+C)
  --max-parallel N    DPO children at once [1]; with CUDA_VISIBLE_DEVICES=0,1,… each gets one of
                      those GPUs as its own CUDA_VISIBLE_DEVICES (never two children on one GPU),
                      so at most as many as there are GPUs listed
  --report            print the results (SFT step → preference accuracy) and write
                      OUT_DIR/dpo/sweep_report.csv; trains nothing
  --queue FILE        another queue file [SFT_OUT/checkpoints.jsonl]
  --executor slurm    one Slurm job array, a task per pending line (max-parallel at a time, each with
                      SLURM_GRES); followed until it ends, Ctrl+C stops following (EXECUTOR=slurm
                      too; see the README, Running on Slurm)
  -- ARGS             flags for every DPO child (e.g. -- --max_steps 200 --backend cpu)
  -h, --help          this text

Environment: as npm run pipeline (OUT_DIR, SFT_OUT, DPO_OUT, DPO_JSON, TF_DIR, MODEL_HIDDEN_SIZE,
MODEL_NUM_LAYERS, DPO_ARGS, DPO_MAX_STEPS…, STOP_GRACE_SEC, CUDA_VISIBLE_DEVICES). Each child's
--out_dir, --ckpt_dir, --tensorboard_dir (TF_DIR/dpo_sweep/from_step_N), --legacy_weights,
--init_from and --resume are the sweep's own.

Exit status: 0 every line completed; 1 a DPO child failed (2 if on bad data or flags); 2 bad flags
or a malformed queue line (named file:line); 130/143/129 interrupted after the children saved.
`;

const say = (line: string): void => void process.stdout.write(`${line}\n`);
const warn = (line: string): void => void process.stderr.write(`${line}\n`);

runMain(NAME, async () => {
  const flags = parseSweepFlags(process.argv.slice(2));
  if (flags.help) {
    process.stdout.write(HELP);
    return EXIT.ok;
  }
  const pipeline = pipelineSettings(process.env, sweepPipelineFlags(flags), REPO);
  const settings = sweepSettings(pipeline, process.env, localExecutor, { queueFile: flags.queue });
  if (flags.report) return reportCommand(settings, say);
  if (pipeline.executor === "slurm" && flags.watch) {
    throw new UserError(
      "--watch with EXECUTOR=slurm: a job array is sized when it is submitted; run the sweep once SFT has finished",
    );
  }

  process.stdout.on("error", () => {});
  process.stderr.on("error", () => {});
  const stop = new StopController();
  const slurm = pipeline.slurm;
  const unroute = routeStopSignals(stop, {
    onSignal(signal, outcome) {
      if (slurm !== null) {
        if (outcome === "stop")
          warn(`[sweep] ${signal}: stopping the following (the array's tasks go on in Slurm)`);
        return;
      }
      if (outcome === "stop")
        warn(
          `[sweep] ${signal}: stopping — each DPO child saves a checkpoint and exits (Ctrl+C again kills them)`,
        );
      else if (outcome === "force") warn(`[sweep] ${signal} again: killing the DPO children now`);
    },
  });
  try {
    // EXECUTOR=slurm: the sweep is one job array, a task per pending line (sweep/array.ts).
    if (slurm !== null) {
      return await sweepArrayCommand(settings, { maxParallel: flags.maxParallel, stop, slurm, say, warn });
    }
    const outcome = await sweepCommand(settings, {
      watch: flags.watch,
      maxParallel: flags.maxParallel,
      stop,
      say,
      warn,
    });
    return outcome.exitCode;
  } finally {
    unroute();
  }
});
