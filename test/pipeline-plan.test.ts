// The pipeline's per-stage decision (DESIGN §5) as a pure function, and the survey that feeds it
// from real checkpoint folders.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { saveCheckpoint } from "../lib/checkpoint/index.ts";
import {
  type CheckpointSummary,
  decisionArgs,
  describeDecision,
  planStage,
  type StageSurvey,
} from "../lib/pipeline/plan.ts";
import { surveyStage } from "../lib/pipeline/survey.ts";
import { stateFor, tempDir } from "./fixtures/checkpoint-helpers.ts";

const ckpt = (stage: string, step: number, extra: Partial<CheckpointSummary> = {}): CheckpointSummary => ({
  path: `out/${stage}/checkpoints/step_${String(step).padStart(8, "0")}`,
  step,
  epoch: 0,
  stepInEpoch: step * 8,
  finished: false,
  ...extra,
});

function sftSurvey(
  overrides: Partial<StageSurvey> = {},
  previous: Partial<NonNullable<StageSurvey["previous"]>> = {},
): StageSurvey {
  return {
    stage: "sft",
    latest: null,
    ckptDir: "out/sft/checkpoints",
    initOverride: null,
    previous: {
      stage: "pretrain",
      latest: null,
      ckptDir: "out/pretrain/checkpoints",
      legacyFile: "out/pretrain_128.safetensors",
      legacyExists: false,
      ...previous,
    },
    ...overrides,
  };
}

describe("planStage", () => {
  test("a finished latest checkpoint: skip, whatever the previous stage holds", () => {
    const own = ckpt("sft", 100, { finished: true });
    const survey = sftSurvey({ latest: own }, { latest: ckpt("pretrain", 50) });
    const decision = planStage(survey);
    assert.deepEqual(decision, { kind: "skip", checkpoint: own });
    assert.deepEqual(decisionArgs(decision), []);
    assert.equal(
      describeDecision(survey, decision),
      "already finished at step 100 (out/sft/checkpoints/step_00000100); skipping",
    );
  });

  test("a valid unfinished checkpoint: resume it, logged with epoch and batch", () => {
    const own = ckpt("sft", 40, { epoch: 0, stepInEpoch: 320 });
    const survey = sftSurvey(
      { latest: own, initOverride: "elsewhere.safetensors" },
      { latest: ckpt("pretrain", 9) },
    );
    const decision = planStage(survey);
    assert.deepEqual(decision, { kind: "resume", checkpoint: own });
    assert.deepEqual(decisionArgs(decision), ["--resume", "auto"]);
    assert.equal(
      describeDecision(survey, decision),
      "resuming from out/sft/checkpoints/step_00000040 (epoch 0, batch 320)",
    );
  });

  test("nothing of its own: start from the previous stage's latest valid checkpoint", () => {
    const previous = ckpt("pretrain", 30, { finished: true });
    const survey = sftSurvey({}, { latest: previous, legacyExists: true });
    const decision = planStage(survey);
    assert.equal(decision.kind, "init");
    assert.deepEqual(decisionArgs(decision), ["--resume", "auto", "--init_from", previous.path]);
    assert.equal(
      describeDecision(survey, decision),
      `initialising from ${previous.path} (pretrain's latest checkpoint)`,
    );
  });

  test("the previous stage stopped half-way: still its latest, and the line says so", () => {
    const survey = sftSurvey({}, { latest: ckpt("pretrain", 12) });
    assert.match(describeDecision(survey, planStage(survey)), /not finished: pretrain stopped at step 12/);
  });

  test("no previous checkpoint but its legacy weights file: start from that", () => {
    const survey = sftSurvey({}, { legacyExists: true });
    const decision = planStage(survey);
    assert.deepEqual(decision, { kind: "init", from: "out/pretrain_128.safetensors", source: "legacy" });
    assert.deepEqual(decisionArgs(decision), [
      "--resume",
      "auto",
      "--init_from",
      "out/pretrain_128.safetensors",
    ]);
  });

  test("INIT_FROM wins over the previous stage, but never over a checkpoint of its own", () => {
    const survey = sftSurvey({ initOverride: "minimind.safetensors" }, { latest: ckpt("pretrain", 30) });
    assert.deepEqual(planStage(survey), { kind: "init", from: "minimind.safetensors", source: "override" });
  });

  test("pretrain with nothing on disk starts fresh", () => {
    const survey: StageSurvey = {
      stage: "pretrain",
      latest: null,
      ckptDir: "x",
      initOverride: null,
      previous: null,
    };
    assert.deepEqual(planStage(survey), { kind: "fresh" });
  });

  test("the previous stage produced nothing: blocked, naming the stage to run first", () => {
    const survey: StageSurvey = {
      ...sftSurvey(),
      stage: "dpo",
      previous: {
        stage: "sft",
        latest: null,
        ckptDir: "out/sft/checkpoints",
        legacyFile: "out/full_sft_128.safetensors",
        legacyExists: false,
      },
    };
    const decision = planStage(survey);
    assert.equal(decision.kind, "blocked");
    assert.equal(decision.kind === "blocked" && decision.runFirst, "sft");
    const line = describeDecision(survey, decision);
    assert.match(line, /^nothing to start from: run the sft stage first /);
    assert.match(line, /out\/sft\/checkpoints/);
    assert.match(line, /out\/full_sft_128\.safetensors/);
    assert.doesNotMatch(line, /\n/);
    assert.deepEqual(decisionArgs(decision), []);
  });
});

describe("surveyStage", () => {
  test("reads the latest valid checkpoint, ignores invalid newer ones, and checks the legacy file", async (t) => {
    const dir = await tempDir("pipeline-survey");
    t.after(dir.cleanup);
    const pretrain = join(dir.path, "pretrain", "checkpoints");
    const sft = join(dir.path, "sft", "checkpoints");
    const legacy = join(dir.path, "pretrain_64.safetensors");
    const save = (ckptDir: string, step: number, finished: boolean) =>
      saveCheckpoint(ckptDir, {
        step,
        files: { "model.safetensors": "weights" },
        state: { ...stateFor(step), epoch: 1, step_in_epoch: 7, finished },
        keepLast: 5,
      });
    await save(pretrain, 10, false);
    await save(pretrain, 20, true);
    await save(sft, 5, false);
    // A newer step dir whose model file lost bytes (its size no longer matches state.json) is never chosen.
    await saveCheckpoint(sft, {
      step: 9,
      files: { "model.safetensors": "w" },
      state: stateFor(9),
      keepLast: 5,
    });
    await writeFile(join(sft, "step_00000009", "model.safetensors"), "truncated!");

    const survey = await surveyStage(
      { stage: "sft", ckptDir: sft, legacyFile: join(dir.path, "full_sft_64.safetensors") },
      { stage: "pretrain", ckptDir: pretrain, legacyFile: legacy },
      null,
    );
    assert.equal(survey.latest?.step, 5);
    assert.equal(survey.latest?.stepInEpoch, 7);
    assert.equal(survey.latest?.epoch, 1);
    assert.equal(survey.previous?.latest?.step, 20);
    assert.equal(survey.previous?.latest?.finished, true);
    assert.equal(survey.previous?.legacyExists, false);
    assert.equal(planStage(survey).kind, "resume");

    await writeFile(legacy, "w");
    const empty = await surveyStage(
      { stage: "dpo", ckptDir: join(dir.path, "dpo", "checkpoints"), legacyFile: "x" },
      { stage: "sft", ckptDir: join(dir.path, "nothing"), legacyFile: legacy },
      null,
    );
    assert.equal(empty.latest, null);
    assert.deepEqual(planStage(empty), { kind: "init", from: legacy, source: "legacy" });
  });
});
