// Where a stage starts (lib/stages/start.ts): the one pure decision the trainer and the pipeline
// both make, every case, the start chain of each stage; and the survey that feeds it from real folders.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { saveCheckpoint } from "../lib/checkpoint/index.ts";
import { parseTrainerArgs } from "../lib/stages/args.ts";
import { decideStart, describeStart, type StartDecision } from "../lib/stages/start.ts";
import {
  type CheckpointSummary,
  type FolderSurvey,
  type StageSurvey,
  surveyStage,
} from "../lib/stages/survey.ts";
import { STAGES, type StageName } from "../lib/stages/table.ts";
import { stateFor, tempDir } from "./fixtures/checkpoint-helpers.ts";

const stepName = (step: number) => `step_${String(step).padStart(8, "0")}`;

function ckpt(stage: string, step: number, extra: Partial<CheckpointSummary> = {}): CheckpointSummary {
  return {
    path: `out/${stage}/checkpoints/${stepName(step)}`,
    step,
    epoch: 0,
    stepInEpoch: step * 8,
    finished: false,
    runId: "run-a",
    args: { ...parseTrainerArgs(stage as StageName, []) },
    modelConfig: {},
    tokenizer: "byte-v1",
    startedFrom: null,
    updatesPerEpoch: null,
    ...extra,
  };
}

function folder(
  stage: string,
  latest: CheckpointSummary | null,
  extra: Partial<FolderSurvey> = {},
): FolderSurvey {
  return {
    ckptDir: `out/${stage}/checkpoints`,
    latest,
    stepDirs: latest ? 1 : 0,
    invalidNewer: [],
    ...extra,
  };
}

/** A survey of `stage` whose sources are its real start chain, each with what `sources` says. */
function survey(
  stage: StageName,
  own: FolderSurvey = folder(stage, null),
  sources: Partial<Record<StageName, { latest?: CheckpointSummary | null; legacy?: boolean }>> = {},
  extra: Partial<StageSurvey> = {},
): StageSurvey {
  return {
    stage,
    own,
    named: null,
    sources: STAGES[stage].startsFrom.map((source) => ({
      stage: source,
      folder: folder(source, sources[source]?.latest ?? null),
      legacyFile: `out/${STAGES[source].legacyPrefix}_128.safetensors`,
      legacyExists: sources[source]?.legacy ?? false,
    })),
    lineage: null,
    ...extra,
  };
}

const hints = { restartHint: (s: readonly string[]) => `--restart ${s.join(",")}`, initHint: "INIT_FROM" };
const decide = (s: StageSurvey, argv: string[] = [], updatesPerEpoch?: number): StartDecision =>
  decideStart(s, { args: parseTrainerArgs(s.stage, argv), updatesPerEpoch, ...hints });
const line = (d: StartDecision) => {
  assert.ok(d.kind !== "refuse" && d.kind !== "blocked", `unexpected ${d.kind}`);
  return describeStart(d);
};
const message = (d: StartDecision) => {
  assert.ok(d.kind === "refuse" || d.kind === "blocked", `expected a refusal, got ${d.kind}`);
  assert.doesNotMatch(d.message, /\n/);
  return d.message;
};

describe("decideStart: a stage with checkpoints of its own", () => {
  test("a finished latest checkpoint: skip, whatever the previous stage holds", () => {
    const own = ckpt("sft", 100, { finished: true });
    const d = decide(survey("sft", folder("sft", own), { pretrain: { latest: ckpt("pretrain", 50) } }));
    assert.equal(d.kind, "skip");
    assert.equal(line(d), "already finished at step 100 (out/sft/checkpoints/step_00000100)");
  });

  test("a valid unfinished checkpoint: resume it, logged with epoch (counted from 1) and batch", () => {
    const own = ckpt("sft", 40, { epoch: 0, stepInEpoch: 320 });
    const d = decide(survey("sft", folder("sft", own), { pretrain: { latest: ckpt("pretrain", 9) } }), [
      "--init_from",
      "elsewhere.safetensors",
    ]);
    assert.equal(d.kind, "resume");
    assert.equal(line(d), "resuming from out/sft/checkpoints/step_00000040 (epoch 1, batch 320)");
  });

  test("newer invalid checkpoints are passed over with a note naming each and why", () => {
    const own = folder("sft", ckpt("sft", 40), {
      stepDirs: 2,
      invalidNewer: [{ name: stepName(50), reason: "state.json: missing" }],
    });
    const d = decide(survey("sft", own));
    assert.equal(d.kind, "resume");
    assert.match(
      d.kind === "resume" ? (d.notes[0] ?? "") : "",
      /step_00000050 is invalid \(state\.json: missing\); using the older/,
    );
  });

  test("checkpoints but none valid: refuse, naming the folder and each defect — never start over", () => {
    const own = folder("sft", null, {
      stepDirs: 2,
      invalidNewer: [
        { name: stepName(8), reason: "state.json: not valid JSON" },
        { name: stepName(6), reason: "model.safetensors: missing" },
      ],
    });
    const text = message(decide(survey("sft", own, { pretrain: { latest: ckpt("pretrain", 9) } })));
    assert.match(text, /^out\/sft\/checkpoints holds 2 checkpoint\(s\) and none is valid/);
    assert.match(
      text,
      /step_00000008: state\.json: not valid JSON; step_00000006: model\.safetensors: missing/,
    );
    assert.match(text, /--restart sft/);
  });

  test("--resume none over checkpoints: refuse (two runs in one folder), pointing at --restart", () => {
    const text = message(
      decide(survey("pretrain", folder("pretrain", ckpt("pretrain", 6))), ["--resume", "none"]),
    );
    assert.match(
      text,
      /^--resume none: out\/pretrain\/checkpoints already holds 1 checkpoint\(s\) \(latest step 6\)/,
    );
    assert.match(text, /--restart pretrain/);
  });

  test("--restart: as if it had none (the caller moves them aside), then the usual start", () => {
    const s = survey("sft", folder("sft", ckpt("sft", 6)), {
      pretrain: { latest: ckpt("pretrain", 30, { finished: true }) },
    });
    const d = decide(s, ["--restart"]);
    assert.equal(d.kind, "init");
    assert.equal(d.kind === "init" && d.restart, true);
    assert.equal(
      line(d),
      "initialising from out/pretrain/checkpoints/step_00000030 (pretrain's latest checkpoint)",
    );
    const fresh = decide(survey("pretrain", folder("pretrain", ckpt("pretrain", 6))), ["--restart"]);
    assert.deepEqual(fresh, { kind: "fresh", restart: true, notes: [] });
    // Nothing to move: --restart changes nothing.
    assert.equal((decide(survey("pretrain"), ["--restart"]) as { restart: boolean }).restart, false);
  });

  test("another model shape: refuse, naming the flag, both values and --restart", () => {
    const own = ckpt("pretrain", 6, { args: { ...parseTrainerArgs("pretrain", ["--hidden_size", "32"]) } });
    const text = message(decide(survey("pretrain", folder("pretrain", own)), ["--hidden_size", "64"]));
    assert.match(
      text,
      /^cannot resume out\/pretrain\/checkpoints\/step_00000006: it was trained with --hidden_size 32, this run has 64/,
    );
    assert.match(text, /--restart pretrain to move its checkpoints aside/);
  });

  test("a finished stage asked to train longer continues; asked the same, it is skipped", () => {
    const trained = { ...parseTrainerArgs("sft", ["--max_steps", "10"]) };
    const own = folder("sft", ckpt("sft", 10, { finished: true, args: trained, updatesPerEpoch: 100 }));
    const longer = decide(survey("sft", own), ["--max_steps", "30"]);
    assert.equal(longer.kind, "resume");
    assert.equal(longer.kind === "resume" && longer.continuesTo, 30);
    assert.match(line(longer), /^continuing the finished run from .*step_00000010 .* to 30 updates$/);
    assert.equal(decide(survey("sft", own), ["--max_steps", "10"]).kind, "skip");
    // More epochs with no step limit: epochs × updates per epoch.
    const byEpochs = folder("sft", ckpt("sft", 200, { finished: true, updatesPerEpoch: 100 }));
    const more = decide(survey("sft", byEpochs), ["--epochs", "3"]);
    assert.equal(more.kind === "resume" && more.continuesTo, 300);
    // Updates per epoch unknown (an older checkpoint): more epochs still continue.
    const old = folder("sft", ckpt("sft", 200, { finished: true }));
    assert.equal(decide(survey("sft", old), ["--epochs", "3"]).kind, "resume");
  });

  test("other hyper-parameters: resumed with a note listing each; a finished stage says they change nothing", () => {
    const own = folder("sft", ckpt("sft", 40));
    const d = decide(survey("sft", own), ["--learning_rate", "5e-4", "--batch_size", "4"]);
    assert.equal(d.kind, "resume");
    const note = d.kind === "resume" ? d.notes.join("\n") : "";
    assert.match(
      note,
      /applied from here on: --batch_size 4 \(trained with 8\), --learning_rate 0\.0005 \(trained with 0\.001\)/,
    );
    const finished = folder("sft", ckpt("sft", 40, { finished: true, updatesPerEpoch: 20 }));
    const skip = decide(survey("sft", finished), ["--learning_rate", "5e-4"]);
    assert.equal(skip.kind, "skip");
    assert.match(
      skip.kind === "skip" ? (skip.notes[0] ?? "") : "",
      /finished, so --learning_rate 0\.0005 .* changes nothing .*--restart sft/,
    );
  });

  test("stale: its source stage was retrained (or trained further) since — refuse, naming what to restart", () => {
    const startedFrom = {
      kind: "checkpoint" as const,
      path: "x",
      stage: "sft",
      step: 40,
      run_id: "sft-1",
      ckpt_dir: "out/sft/checkpoints",
    };
    const own = folder("dpo", ckpt("dpo", 5, { finished: true, startedFrom }));
    const same = { lineage: folder("sft", ckpt("sft", 40, { runId: "sft-1", finished: true })) };
    assert.equal(decide(survey("dpo", own, {}, same)).kind, "skip");
    const retrained = { lineage: folder("sft", ckpt("sft", 40, { runId: "sft-2", finished: true })) };
    const text = message(decide(survey("dpo", own, {}, retrained)));
    assert.match(text, /^dpo is stale: it was trained from sft step 40, and sft has since been retrained/);
    assert.match(text, /--restart dpo,r1$/);
    const further = { lineage: folder("sft", ckpt("sft", 80, { runId: "sft-1" })) };
    assert.match(message(decide(survey("dpo", own, {}, further))), /trained further \(now step 80\)/);
  });

  test("--resume <older step> in a folder with newer ones: resume it, the newer ones to be moved aside first", () => {
    const own = folder("sft", ckpt("sft", 40));
    const named = folder("sft", ckpt("sft", 20));
    const d = decide(survey("sft", own, {}, { named }), ["--resume", named.latest?.path ?? ""]);
    assert.ok(d.kind === "resume" && d.rewind, "rewind");
    assert.equal(line(d), "resuming from out/sft/checkpoints/step_00000020 (epoch 1, batch 160)");
    const latest = decide(survey("sft", own, {}, { named: own }), ["--resume", own.latest?.path ?? ""]);
    assert.ok(latest.kind === "resume" && !latest.rewind);
  });
});

describe("decideStart: nothing of its own — the start chain of each stage", () => {
  test("pretrain starts from random weights", () => {
    assert.deepEqual(STAGES.pretrain.startsFrom, []);
    assert.equal(line(decide(survey("pretrain"))), "starting from random weights");
  });

  test("sft ← pretrain, dpo ← sft: the latest valid checkpoint, else the legacy weights file", () => {
    for (const [stage, source] of [
      ["sft", "pretrain"],
      ["dpo", "sft"],
    ] as const) {
      assert.deepEqual(STAGES[stage].startsFrom, [source]);
      const previous = ckpt(source, 30, { finished: true });
      const d = decide(survey(stage, undefined, { [source]: { latest: previous, legacy: true } }));
      assert.equal(line(d), `initialising from ${previous.path} (${source}'s latest checkpoint)`);
      const legacy = decide(survey(stage, undefined, { [source]: { legacy: true } }));
      assert.equal(
        line(legacy),
        `initialising from out/${STAGES[source].legacyPrefix}_128.safetensors (${source} has no valid checkpoint; using its weights file)`,
      );
    }
  });

  test("the previous stage stopped half-way: still its latest, and the line says so", () => {
    const d = decide(survey("sft", undefined, { pretrain: { latest: ckpt("pretrain", 12) } }));
    assert.match(line(d), /not finished: pretrain stopped at step 12/);
  });

  test("r1 ← dpo, else sft (checkpoint or weights file of each, in that order)", () => {
    assert.deepEqual(STAGES.r1.startsFrom, ["dpo", "sft"]);
    const fromDpo = decide(
      survey("r1", undefined, { dpo: { latest: ckpt("dpo", 3) }, sft: { latest: ckpt("sft", 9) } }),
    );
    assert.match(line(fromDpo), /^initialising from out\/dpo\/checkpoints\/step_00000003 \(dpo's latest/);
    const dpoLegacy = decide(
      survey("r1", undefined, { dpo: { legacy: true }, sft: { latest: ckpt("sft", 9) } }),
    );
    assert.match(line(dpoLegacy), /^initialising from out\/rlhf_128\.safetensors/);
    const fromSft = decide(survey("r1", undefined, { sft: { latest: ckpt("sft", 9) } }));
    assert.match(line(fromSft), /^initialising from out\/sft\/checkpoints\/step_00000009 \(sft's latest/);
  });

  test("an explicit --init_from (or INIT_FROM) wins over the chain, never over a checkpoint of its own", () => {
    const s = survey("sft", undefined, { pretrain: { latest: ckpt("pretrain", 30) } });
    assert.equal(
      line(decide(s, ["--init_from", "minimind.safetensors"])),
      "initialising from minimind.safetensors (--init_from)",
    );
    // Named by path, the previous stage's latest checkpoint is still described as such.
    assert.match(
      line(decide(s, ["--init_from", "out/pretrain/checkpoints/step_00000030"])),
      /\(pretrain's latest checkpoint, not finished/,
    );
    const own = folder("sft", ckpt("sft", 4));
    assert.equal(decide(survey("sft", own), ["--init_from", "minimind.safetensors"]).kind, "resume");
  });

  test("the earlier stage produced nothing: blocked, naming the stage to run first and what was tried", () => {
    const d = decide(survey("dpo", undefined, {}));
    assert.equal(d.kind, "blocked");
    assert.equal(d.kind === "blocked" && d.runFirst, "sft");
    const text = message(d);
    assert.match(text, /^nothing to start from: run the sft stage first /);
    assert.match(text, /out\/sft\/checkpoints/);
    assert.match(text, /out\/full_sft_128\.safetensors/);
    assert.match(text, /or set INIT_FROM\)$/);
    const r1 = message(decide(survey("r1")));
    assert.match(r1, /run the dpo stage first .*out\/dpo\/checkpoints.*out\/sft\/checkpoints/);
  });
});

describe("surveyStage", () => {
  test("reads the latest valid checkpoint, lists invalid newer ones, and checks the legacy file", async (t) => {
    const dir = await tempDir("stage-survey");
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

    const found = await surveyStage({
      stage: "sft",
      ckptDir: sft,
      sources: [{ stage: "pretrain", ckptDir: pretrain, legacyFile: legacy }],
    });
    assert.equal(found.own.latest?.step, 5);
    assert.equal(found.own.latest?.stepInEpoch, 7);
    assert.equal(found.own.latest?.epoch, 1);
    assert.equal(found.own.stepDirs, 2);
    assert.deepEqual(
      found.own.invalidNewer.map((c) => c.name),
      ["step_00000009"],
    );
    assert.match(found.own.invalidNewer[0]?.reason ?? "", /model\.safetensors: 10 bytes, expected 1/);
    assert.equal(found.sources[0]?.folder.latest?.step, 20);
    assert.equal(found.sources[0]?.folder.latest?.finished, true);
    assert.equal(found.sources[0]?.legacyExists, false);

    await writeFile(legacy, "w");
    const empty = await surveyStage({
      stage: "sft",
      ckptDir: join(dir.path, "dpo", "checkpoints"),
      sources: [{ stage: "pretrain", ckptDir: join(dir.path, "nothing"), legacyFile: legacy }],
    });
    assert.equal(empty.own.latest, null);
    const d = decideStart(empty, { args: parseTrainerArgs("sft", []), ...hints });
    assert.deepEqual(d.kind === "init" && [d.from, d.source.kind], [legacy, "legacy"]);
  });
});
