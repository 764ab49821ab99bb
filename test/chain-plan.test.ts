/**
 * A Slurm chain's plan, made before anything is submitted (pipelines/chain/plan.ts), over real
 * checkpoints of a tiny local run — no Slurm needed: the jobs resume with `--resume auto` and never
 * get a checkpoint path; a stage this chain would leave stale, a stage with nothing to start from
 * and nothing before it in the chain, and a fixed `--resume` are refused up front; a stage whose
 * source trains earlier in the chain is predicted to start from it. EXECUTOR and SLURM_* settings.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { planChain } from "../pipelines/chain/plan.ts";
import { parsePipelineFlags } from "../pipelines/pipeline/cli.ts";
import { pipelineSettings } from "../pipelines/pipeline/settings.ts";
import { REPO, runPipeline, TINY_TRAINER_FLAGS } from "./support/pipeline-process.ts";

const root = mkdtempSync(join(tmpdir(), "baton-chain-plan-"));
after(() => rmSync(root, { recursive: true, force: true }));
const out = join(root, "out");
const ENV = {
  OUT_DIR: out,
  MODEL_HIDDEN_SIZE: "32",
  MODEL_NUM_LAYERS: "1",
  SAVE_INTERVAL: "5",
  PRETRAIN_MAX_STEPS: "10",
  SFT_MAX_STEPS: "10",
};
const none = { now: new Set<never>(), done: new Map<never, string>() };
const plan = (env: Record<string, string>, argv: string[] = []) =>
  planChain(
    pipelineSettings({ ...ENV, ...env }, parsePipelineFlags(["--", ...TINY_TRAINER_FLAGS, ...argv]), REPO),
    ["pretrain", "sft", "dpo", "r1"],
    { restarts: none, initOverride: null, maxRequeues: 3, show: (p) => p },
  );

describe("a Slurm chain's plan", () => {
  before(async () => {
    const run = await runPipeline(["--stages", "pretrain,sft", "--", ...TINY_TRAINER_FLAGS], { env: ENV });
    assert.equal(run.code, 0, run.stderr);
  });

  test("finished stages are skipped; the jobs get --resume auto, the requeue limit, and no checkpoint path", async () => {
    const chain = await plan({});
    assert.deepEqual(
      chain.map((c) => [c.stage, c.submit]),
      [
        ["pretrain", false],
        ["sft", false],
        ["dpo", true],
        ["r1", true],
      ],
    );
    assert.match(chain[0]?.line ?? "", /^already finished at step 10 .*; skipping$/);
    assert.match(
      chain[2]?.line ?? "",
      /^initialising from .*sft\/checkpoints\/step_00000010 \(sft's latest checkpoint\)/,
    );
    assert.equal(
      chain[3]?.line,
      "initialising from dpo's latest checkpoint once its job has finished (the job decides at run time)",
    );
    for (const stage of chain.filter((c) => c.submit)) {
      assert.deepEqual(stage.jobFlags, ["--resume", "auto", "--requeue_on_stop", "3"]);
    }
  });

  test("a stage the chain would leave stale is refused before anything is submitted", async () => {
    // pretrain asked to train longer: it continues, so sft (trained from its step 10) would be stale.
    await assert.rejects(
      plan({ PRETRAIN_MAX_STEPS: "20" }),
      /^UserError: sft would be stale: it was trained from pretrain step 10, and this chain trains pretrain again first; retrain it too with --restart sft,dpo,r1/,
    );
  });

  test("a fixed --resume is refused: a requeued job would start from it again", async () => {
    await assert.rejects(
      plan({}, ["--resume", join(out, "sft", "checkpoints", "step_00000005")]),
      /^UserError: pretrain: --resume .* cannot be used with EXECUTOR=slurm: a requeued job would start from it again/,
    );
  });

  test("nothing to start from: refused unless an earlier stage of the chain provides it", async () => {
    const empty = { OUT_DIR: join(root, "empty") };
    const settings = pipelineSettings(
      { ...ENV, ...empty },
      parsePipelineFlags(["--", ...TINY_TRAINER_FLAGS]),
      REPO,
    );
    const options = { restarts: none, initOverride: null, maxRequeues: 3, show: (p: string) => p };
    await assert.rejects(
      planChain(settings, ["dpo", "r1"], options),
      /^UserError: dpo: nothing to start from: run the sft stage first/,
    );
    const chain = await planChain(settings, ["sft", "dpo"], {
      ...options,
      initOverride: join(root, "weights.safetensors"),
    });
    assert.deepEqual(
      chain[0]?.jobFlags.slice(-2),
      ["--init_from", join(root, "weights.safetensors")],
      "INIT_FROM",
    );
    assert.match(
      chain[1]?.line ?? "",
      /^initialising from sft's latest checkpoint once its job has finished/,
    );
  });
});

describe("EXECUTOR and the Slurm settings", () => {
  const settings = (env: Record<string, string>, argv: string[] = []) =>
    pipelineSettings({ ...ENV, ...env }, parsePipelineFlags(argv), REPO);

  test("EXECUTOR or --executor (which wins); SLURM_* read and checked only for slurm", () => {
    assert.equal(settings({}).executor, "local");
    assert.equal(settings({}).slurm, null);
    assert.equal(settings({ EXECUTOR: "slurm" }).executor, "slurm");
    assert.equal(settings({ EXECUTOR: "slurm" }).slurm?.signalSeconds, 120);
    assert.equal(settings({ EXECUTOR: "slurm" }, ["--executor", "local"]).executor, "local");
    assert.equal(settings({ EXECUTOR: "slurm", SLURM_MAX_REQUEUES: "1" }).slurm?.maxRequeues, 1);
    assert.throws(
      () => settings({ EXECUTOR: "kubernetes" }),
      /^UserError: EXECUTOR "kubernetes": expected local or slurm$/,
    );
    assert.throws(
      () => settings({}, ["--executor", "pbs"]),
      /^UserError: --executor "pbs": expected local or slurm$/,
    );
    assert.throws(
      () => settings({ EXECUTOR: "slurm", SLURM_SIGNAL_SEC: "soon" }),
      /SLURM_SIGNAL_SEC=soon: expected a whole number/,
    );
    assert.doesNotThrow(() => settings({ SLURM_SIGNAL_SEC: "soon" }), "not read for the local executor");
    assert.throws(
      () => parsePipelineFlags(["--status", "--cancel"]),
      /--status and --cancel cannot be combined/,
    );
  });
});
