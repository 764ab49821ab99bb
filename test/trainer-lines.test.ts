/** The trainers' machine lines (lib/stages/protocol.ts): what orchestrators parse, and what they hide. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { isForProgramsOnly, metricsLine, parseTrainerLine } from "../lib/stages/protocol.ts";

test("each machine line parses to its event; anything else is not one", () => {
  assert.deepEqual(parseTrainerLine("START:random"), { kind: "start", from: null });
  assert.deepEqual(parseTrainerLine("START:/o/pretrain/checkpoints/step_00000005"), {
    kind: "start",
    from: "/o/pretrain/checkpoints/step_00000005",
  });
  assert.deepEqual(parseTrainerLine("CHECKPOINT:/c/step_00000010"), {
    kind: "checkpoint",
    path: "/c/step_00000010",
  });
  assert.deepEqual(parseTrainerLine("METADATA_FILE:/o/sft/metadata.json"), {
    kind: "metadata",
    path: "/o/sft/metadata.json",
  });
  assert.deepEqual(parseTrainerLine("HEARTBEAT:12"), { kind: "heartbeat", step: 12 });
  for (const line of [
    "HEARTBEAT:x",
    "[sft] step 5/10 loss 1.2",
    "",
    "METRICS:5",
    "METRICS:5 [1]",
    "METRICS:a {}",
  ]) {
    assert.equal(parseTrainerLine(line), null, line);
  }
});

test("METRICS: the logged scalars round-trip; values JSON cannot hold are left out", () => {
  const line = metricsLine(40, { loss: 1.8398, lr: 2e-4, grad_norm: Number.NaN, tokens_per_sec: 1234.5 });
  assert.equal(line, 'METRICS:40 {"loss":1.8398,"lr":0.0002,"tokens_per_sec":1234.5}');
  assert.deepEqual(parseTrainerLine(line), {
    kind: "metrics",
    step: 40,
    values: { loss: 1.8398, lr: 0.0002, tokens_per_sec: 1234.5 },
  });
  assert.deepEqual(parseTrainerLine('METRICS:3 {"loss":2,"note":"text"}'), {
    kind: "metrics",
    step: 3,
    values: { loss: 2 },
  });
});

test("heartbeats, START and METRICS are for programs only; CHECKPOINT and METADATA_FILE are shown", () => {
  const shown = ["CHECKPOINT:/c/step_00000010", "METADATA_FILE:/m.json"];
  const hidden = ["HEARTBEAT:1", "START:random", metricsLine(1, { loss: 1 })];
  for (const line of shown)
    assert.equal(isForProgramsOnly(parseTrainerLine(line) ?? assert.fail(line)), false);
  for (const line of hidden)
    assert.equal(isForProgramsOnly(parseTrainerLine(line) ?? assert.fail(line)), true);
});
