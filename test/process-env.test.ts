import assert from "node:assert/strict";
import { test } from "node:test";
import { UserError } from "../lib/cli/errors.ts";
import { childEnv } from "../lib/process/env.ts";

test("copies the parent environment and adds TensorFlow defaults", () => {
  const parent = { PATH: "/usr/bin", HOME: "/home/me", UNSET: undefined };
  const env = childEnv(parent);
  assert.deepEqual(env, {
    PATH: "/usr/bin",
    HOME: "/home/me",
    TF_FORCE_GPU_ALLOW_GROWTH: "true",
    TF_CPP_MIN_LOG_LEVEL: "2",
  });
  assert.equal("UNSET" in env, false);
  assert.deepEqual(
    parent,
    { PATH: "/usr/bin", HOME: "/home/me", UNSET: undefined },
    "the input is not modified",
  );
});

test("values the user set win over the defaults", () => {
  const env = childEnv({ TF_CPP_MIN_LOG_LEVEL: "0", TF_FORCE_GPU_ALLOW_GROWTH: "false" });
  assert.equal(env.TF_CPP_MIN_LOG_LEVEL, "0");
  assert.equal(env.TF_FORCE_GPU_ALLOW_GROWTH, "false");
});

test("CUDA_VISIBLE_DEVICES is set only when GPUs are assigned", () => {
  assert.equal(childEnv({}).CUDA_VISIBLE_DEVICES, undefined);
  assert.equal(childEnv({ CUDA_VISIBLE_DEVICES: "3" }).CUDA_VISIBLE_DEVICES, "3");
  assert.equal(childEnv({ CUDA_VISIBLE_DEVICES: "3" }, { gpus: ["0", "1"] }).CUDA_VISIBLE_DEVICES, "0,1");
  assert.equal(childEnv({}, { gpus: ["GPU-8f6e3c1a"] }).CUDA_VISIBLE_DEVICES, "GPU-8f6e3c1a");
  assert.equal(childEnv({ CUDA_VISIBLE_DEVICES: "0" }, { gpus: [] }).CUDA_VISIBLE_DEVICES, "");
});

test("a malformed GPU id is a user error", () => {
  assert.throws(() => childEnv({}, { gpus: ["0,1"] }), UserError);
  assert.throws(() => childEnv({}, { gpus: [""] }), /invalid GPU id ""/);
});
