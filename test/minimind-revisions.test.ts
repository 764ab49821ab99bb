/**
 * Both MiniMind revisions against PyTorch models written to MiniMind's own code
 * (test/python/minimind2.py, minimind3.py): the same derived hyper-parameters, the same
 * state-dict names in the same order, weights that load with `load_state_dict(strict=True)`,
 * and the same logits on the same tokens (max |Δ| < 1e-4) — from a float32 .pth and, through
 * Baton's reader, from a bfloat16 one. A bare .pth tells its revision and shape by its tensors.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import { Rng } from "../lib/rng/index.ts";
import { loadBackend } from "../trainer/backend/load.ts";
import { loadModelForInference } from "../trainer/inference/load-model.ts";
import {
  intermediateSize,
  MODEL_REVISIONS,
  type ModelConfig,
  type ModelRevision,
  resolveModelConfig,
} from "../trainer/model/config.ts";
import { MiniMind } from "../trainer/model/minimind.ts";
import { encodeWeightsPth, miniMindStateDictShapes } from "../trainer/model/pth.ts";
import { initialWeights, type StateDict } from "../trainer/model/state-dict.ts";
import { TORCH_MISSING, torchJson } from "./support/python-torch.ts";

const root = mkdtempSync(join(tmpdir(), "baton-revisions-"));
after(() => rmSync(root, { recursive: true, force: true }));

const HIDDEN_SIZES = [32, 64, 512, 640, 768, 1024];
const BATCH = 2;
const SEQ = 12;

function configFor(revision: ModelRevision): ModelConfig {
  return resolveModelConfig({
    model_revision: revision,
    vocab_size: 97,
    hidden_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_seq_len: 32,
  });
}

/**
 * Weights that make every part of the model count: wide matrices (so logits are O(1), not ~0),
 * norms away from 1, and small query/key projections, so each head's RMS is near the norm's eps
 * and a wrong eps or a skipped q/k norm moves the logits far beyond the tolerance.
 */
function telltaleWeights(config: ModelConfig, seed: number): StateDict {
  const rng = Rng.fromSeed(seed, "revision-test");
  const weights = initialWeights(config, rng);
  for (const [name, values] of weights) {
    const isNorm = name.endsWith("norm.weight");
    const small = /self_attn\.[qk]_proj/.test(name);
    for (let i = 0; i < values.length; i++) {
      values[i] = isNorm ? 1 + rng.nextNormal(0, 0.3) : rng.nextNormal(0, small ? 4e-4 : 0.15);
    }
  }
  return weights;
}

function batonLogits(config: ModelConfig, weights: StateDict, ids: number[][]): Float32Array {
  const model = new MiniMind(config, weights);
  try {
    return tf.tidy(
      () => model.logits(model.hidden(tf.tensor2d(ids, [BATCH, SEQ], "int32"))).dataSync() as Float32Array,
    );
  } finally {
    model.dispose();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

describe("MiniMind revisions against PyTorch", { skip: TORCH_MISSING }, () => {
  before(() => loadBackend("cpu"));

  for (const revision of MODEL_REVISIONS) {
    describe(revision, () => {
      test("MLP width, norm eps and rope theta are the revision's MiniMindConfig defaults", () => {
        const python = torchJson<
          Array<{ hidden_size: number; intermediate_size: number; rms_norm_eps: number; rope_theta: number }>
        >("config", revision, ...HIDDEN_SIZES.map(String));
        const ours = HIDDEN_SIZES.map((h) => {
          const c = resolveModelConfig({
            model_revision: revision,
            vocab_size: 6400,
            hidden_size: h,
            num_hidden_layers: 1,
            num_attention_heads: 8,
            num_key_value_heads: 2,
            max_seq_len: 64,
          });
          assert.equal(c.intermediate_size, intermediateSize(h, revision));
          return {
            hidden_size: h,
            intermediate_size: c.intermediate_size,
            rms_norm_eps: c.rms_norm_eps,
            rope_theta: c.rope_theta,
          };
        });
        assert.deepEqual(ours, python);
      });

      test("same state-dict names in the same order, strict load, same logits (fp32 and bf16 files)", async () => {
        const config = configFor(revision);
        const weights = telltaleWeights(config, revision === "minimind2" ? 2 : 3);
        const rng = Rng.fromSeed(9, "tokens");
        const ids = Array.from({ length: BATCH }, () =>
          Array.from({ length: SEQ }, () => rng.nextInt(config.vocab_size)),
        );
        const files = { F32: join(root, `${revision}-f32.pth`), BF16: join(root, `${revision}-bf16.pth`) };
        writeFileSync(files.F32, encodeWeightsPth(config, weights, "F32"));
        writeFileSync(files.BF16, encodeWeightsPth(config, weights, "BF16"));
        const shape = {
          hidden_size: config.hidden_size,
          num_hidden_layers: config.num_hidden_layers,
          num_attention_heads: config.num_attention_heads,
          num_key_value_heads: config.num_key_value_heads,
          vocab_size: config.vocab_size,
          max_position_embeddings: config.max_position_embeddings,
        };
        const out = {
          F32: join(root, `${revision}-f32.logits`),
          BF16: join(root, `${revision}-bf16.logits`),
        };
        const report = torchJson<{ state_dict_keys: string[] }>(
          "logits",
          revision,
          JSON.stringify(shape),
          JSON.stringify(ids),
          files.F32,
          out.F32,
          files.BF16,
          out.BF16,
        );
        assert.deepEqual(
          miniMindStateDictShapes(config).map(([name]) => name),
          report.state_dict_keys,
        );
        const torchLogits = (path: string) => new Float32Array(new Uint8Array(readFileSync(path)).buffer);

        const fp32 = maxAbsDiff(batonLogits(config, weights, ids), torchLogits(out.F32));
        // Baton reads the bfloat16 file back (what --init_from FILE.pth does) and runs it in float32, as PyTorch does.
        const loaded = await loadModelForInference(
          files.BF16,
          { numAttentionHeads: config.num_attention_heads, maxSeqLen: 32 },
          () => {},
        );
        const bf16 = maxAbsDiff(batonLogits(loaded.config, loaded.weights, ids), torchLogits(out.BF16));
        const scale = maxAbsDiff(torchLogits(out.F32), new Float32Array(BATCH * SEQ * config.vocab_size));
        process.stderr.write(
          `${revision}: max |logit| ${scale.toFixed(3)}, max |Δ| fp32 ${fp32.toExponential(2)}, bf16 ${bf16.toExponential(2)}\n`,
        );
        assert.ok(scale > 1, `logits too small to tell models apart (${scale})`);
        assert.ok(fp32 < 1e-4, `fp32 logits differ by ${fp32}`);
        assert.ok(bf16 < 1e-4, `bf16 logits differ by ${bf16}`);
      });

      test("a bare .pth tells its revision and shape by its tensors", async () => {
        const config = configFor(revision);
        const path = join(root, `${revision}-bare.pth`);
        writeFileSync(path, encodeWeightsPth(config, initialWeights(config, Rng.fromSeed(1, "init")), "F16"));
        // Heads given wrong on purpose: MiniMind-3's q_norm tells them; MiniMind2 needs the hint.
        const hints = { numAttentionHeads: revision === "minimind3" ? 2 : 4, maxSeqLen: 32 };
        const loaded = await loadModelForInference(path, hints, () => {});
        assert.deepEqual(loaded.config, config);
      });
    });
  }
});
