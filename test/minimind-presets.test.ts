/**
 * `--preset` and `--model_revision` (MODEL_PRESET in the pipeline): the preset's shape for every flag
 * not given, explicit flags winning; MiniMind's tokenizer required (without it, one line naming the
 * file; with a tokenizer of another size, one line naming both sizes); a preset's weights load into
 * MiniMind's own model exactly as eval_llm.py builds it (its config defaults but for hidden size and
 * layers); and another revision than a checkpoint's is refused on resume, naming the flag.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { UserError } from "../lib/cli/errors.ts";
import { flagValue } from "../lib/cli/flag-layers.ts";
import { parseTrainerArgs } from "../lib/stages/args.ts";
import { compareSettings } from "../lib/stages/compare.ts";
import { MODEL_PRESETS, PRESET_NAMES } from "../lib/stages/presets.ts";
import { parsePipelineFlags } from "../pipelines/pipeline/cli.ts";
import { pipelineSettings } from "../pipelines/pipeline/settings.ts";
import { tinyTokenizerJson } from "./fixtures/tiny-hf-tokenizer.ts";
import { assertOneLineError } from "./support/one-line-error.ts";
import { runPipeline } from "./support/pipeline-process.ts";
import { TORCH_MISSING, torchJson } from "./support/python-torch.ts";
import { runDirs, runTrainerToEnd } from "./support/trainer-process.ts";

const root = mkdtempSync(join(tmpdir(), "baton-presets-"));
after(() => rmSync(root, { recursive: true, force: true }));

function tokenizerFile(name: string, vocabSize: number): string {
  mkdirSync(join(root, name));
  const path = join(root, name, "tokenizer.json");
  writeFileSync(path, JSON.stringify(tinyTokenizerJson(vocabSize)));
  return path;
}
/** A byte-level BPE tokenizer.json of MiniMind's size (6400 tokens), and a small one (272). */
const tokenizer6400 = tokenizerFile("minimind-size", 6400);
const tokenizerSmall = tokenizerFile("small", 0);

const userError = (pattern: RegExp) => (e: unknown) =>
  e instanceof UserError && !e.message.includes("\n") && pattern.test(e.message);

describe("--preset resolution (lib/stages)", () => {
  test("each preset sets MiniMind's shape, revision and vocabulary", () => {
    for (const name of PRESET_NAMES) {
      const args = parseTrainerArgs("sft", ["--preset", name, "--tokenizer", "tok.json"]);
      const preset = MODEL_PRESETS[name];
      assert.deepEqual(
        [
          args.model_revision,
          args.hidden_size,
          args.num_hidden_layers,
          args.num_attention_heads,
          args.num_key_value_heads,
          args.vocab_size,
        ],
        [
          preset.model_revision,
          preset.hidden_size,
          preset.num_hidden_layers,
          preset.num_attention_heads,
          preset.num_key_value_heads,
          6400,
        ],
        name,
      );
      assert.equal(args.preset, name);
      // The legacy files are named by the preset's width, as MiniMind names them.
      assert.equal(args.legacy_weights, join("out", `full_sft_${preset.hidden_size}.safetensors`));
    }
    assert.deepEqual(
      Object.fromEntries(
        PRESET_NAMES.map((n) => [n, `${MODEL_PRESETS[n].hidden_size}x${MODEL_PRESETS[n].num_hidden_layers}`]),
      ),
      { "minimind2-small": "512x8", minimind2: "768x16", minimind3: "768x8" },
    );
  });

  test("explicit flags win, in either spelling; without a preset the defaults stay", () => {
    const args = parseTrainerArgs("pretrain", [
      "--preset",
      "minimind3",
      "--tokenizer",
      "tok.json",
      "--hidden-size",
      "64",
      "--num_key_value_heads=2",
      "--model_revision",
      "minimind2",
    ]);
    assert.deepEqual(
      [args.hidden_size, args.num_hidden_layers, args.num_attention_heads, args.num_key_value_heads],
      [64, 8, 8, 2],
    );
    assert.equal(args.model_revision, "minimind2");
    const plain = parseTrainerArgs("pretrain", []);
    assert.deepEqual(
      [plain.preset, plain.model_revision, plain.hidden_size, plain.vocab_size],
      ["", "minimind2", 128, 0],
    );
  });

  test("a preset without --tokenizer is refused in one line naming MiniMind's tokenizer.json", () => {
    assert.throws(
      () => parseTrainerArgs("sft", ["--preset", "minimind2-small"]),
      userError(
        /^--preset minimind2-small needs MiniMind's tokenizer \(6400 tokens\): pass --tokenizer <minimind>\/model\/tokenizer\.json, MiniMind2's model\/tokenizer\.json \(https:\/\/github\.com\/jingyaogong\/minimind/,
      ),
    );
    assert.throws(
      () => parseTrainerArgs("sft", ["--preset", "minimind3"]),
      userError(/MiniMind-3's model\/tokenizer\.json/),
    );
    assert.throws(
      () => parseTrainerArgs("sft", ["--preset", "minimind4"]),
      userError(/Argument: preset, Given: "minimind4", Choices: "minimind2-small", "minimind2", "minimind3"/),
    );
    assert.throws(
      () => parseTrainerArgs("sft", ["--model_revision", "3"]),
      userError(/Argument: model_revision, Given: "3", Choices: "minimind2", "minimind3"/),
    );
  });

  test("the revision is a shape flag; a checkpoint from before it was recorded is MiniMind2", () => {
    const asked = parseTrainerArgs("sft", ["--model_revision", "minimind3"]);
    const { model_revision: _, ...old } = parseTrainerArgs("sft", []);
    assert.deepEqual(compareSettings(asked, old).shape, [
      { flag: "model_revision", asked: "minimind3", trained: "minimind2" },
    ]);
    assert.deepEqual(compareSettings(parseTrainerArgs("sft", []), old).shape, []);
    // The preset and the legacy files' format are no difference between two runs.
    const withPreset = parseTrainerArgs("sft", [
      "--preset",
      "minimind2-small",
      "--tokenizer",
      "t.json",
      "--legacy_format",
      "pth",
    ]);
    const same = parseTrainerArgs("sft", [
      ...["--hidden_size", "512", "--num_hidden_layers", "8", "--num_attention_heads", "8"],
      ...["--num_key_value_heads", "2", "--vocab_size", "6400", "--tokenizer", "t.json"],
    ]);
    assert.deepEqual(compareSettings(withPreset, same as unknown as Record<string, unknown>), {
      shape: [],
      length: [],
      other: [],
    });
  });
});

describe("MODEL_PRESET (pipeline settings)", () => {
  const settings = (env: Record<string, string>, rest: string[] = []) =>
    pipelineSettings(env, parsePipelineFlags(["--", ...rest]), "/repo");

  test("goes to every trainer as --preset; MODEL_HIDDEN_SIZE and MODEL_NUM_LAYERS still win", () => {
    const s = settings({ MODEL_PRESET: "minimind2-small" }, ["--tokenizer", "tok.json"]);
    for (const stage of ["pretrain", "sft", "dpo", "r1"] as const) {
      const args = s.stages[stage].trainerArgs([]);
      assert.equal(flagValue(args, "preset"), "minimind2-small", stage);
      assert.equal(
        flagValue(args, "hidden_size"),
        undefined,
        `${stage}: the preset's width, not the default`,
      );
      assert.equal(s.stages[stage].args.num_key_value_heads, 2);
    }
    assert.equal(s.stages.sft.legacyFile, join("out", "full_sft_512.safetensors"));
    assert.deepEqual([s.hiddenSize, s.numLayers], [512, 8]);
    const narrow = settings({ MODEL_PRESET: "minimind3", MODEL_HIDDEN_SIZE: "256" }, [
      "--tokenizer",
      "t.json",
    ]);
    assert.deepEqual(
      [
        narrow.stages.dpo.args.hidden_size,
        narrow.stages.dpo.args.num_hidden_layers,
        narrow.stages.dpo.args.model_revision,
      ],
      [256, 8, "minimind3"],
    );
    assert.equal(narrow.stages.dpo.legacyFile, join("out", "rlhf_256.safetensors"));
    // --smoke-test's small shape is a default like any other: the preset replaces it.
    const smoke = pipelineSettings(
      { MODEL_PRESET: "minimind2-small" },
      parsePipelineFlags(["--smoke-test", "--", "--tokenizer", "t.json"]),
      "/repo",
    );
    assert.equal(smoke.stages.pretrain.args.hidden_size, 512);
  });

  test("a bad name, or no tokenizer: refused before anything starts", async () => {
    assert.throws(
      () => settings({ MODEL_PRESET: "minimind" }),
      userError(/^MODEL_PRESET=minimind: expected one of minimind2-small, minimind2, minimind3$/),
    );
    const run = await runPipeline([], {
      env: { OUT_DIR: join(root, "pipeline"), MODEL_PRESET: "minimind2" },
    });
    assertOneLineError(
      run,
      /^pipeline: error: pretrain trainer flags \(-- …, PRETRAIN_ARGS, PRETRAIN_\*\): --preset minimind2 needs MiniMind's tokenizer .*--tokenizer <minimind>\/model\/tokenizer\.json/,
    );
  });
});

describe("trainers with a preset", { concurrency: true }, () => {
  const tiny = (name: string) => [
    ...runDirs(root, name),
    ...[
      "--max_seq_len",
      "32",
      "--batch_size",
      "2",
      "--max_steps",
      "1",
      "--backend",
      "cpu",
      "--eval",
      "false",
    ],
  ];

  test("no --tokenizer: exit 2, one line naming the file to pass", async () => {
    const run = await runTrainerToEnd("train_pretrain.ts", [
      ...tiny("no-tokenizer"),
      "--preset",
      "minimind2-small",
    ]);
    assertOneLineError(
      run,
      /^train_pretrain: error: --preset minimind2-small needs MiniMind's tokenizer .*tokenizer\.json/,
    );
  });

  test("a tokenizer of another size: exit 2, naming both sizes", async () => {
    const run = await runTrainerToEnd("train_pretrain.ts", [
      ...tiny("small-tokenizer"),
      ...["--preset", "minimind3", "--tokenizer", tokenizerSmall],
    ]);
    assertOneLineError(
      run,
      new RegExp(
        `^train_pretrain: error: --preset minimind3: --tokenizer ${tokenizerSmall} has 272 tokens, MiniMind's has 6400 — pass MiniMind-3's`,
      ),
    );
  });

  // MiniMind's own widths are too slow for a test on the cpu backend; the preset's other fields
  // (heads, key/value heads, vocabulary, revision) are what eval_llm.py cannot be told, and they stay.
  for (const [preset, hidden] of [
    ["minimind2-small", 32],
    ["minimind3", 64],
  ] as const) {
    test(`${preset}'s weights strict-load into MiniMind's model as eval_llm.py builds it`, {
      skip: TORCH_MISSING,
    }, async () => {
      const name = `preset-${preset}`;
      const run = await runTrainerToEnd("train_pretrain.ts", [
        ...tiny(name),
        ...[
          "--preset",
          preset,
          "--tokenizer",
          tokenizer6400,
          "--hidden_size",
          String(hidden),
          "--num_hidden_layers",
          "1",
        ],
      ]);
      assert.equal(run.code, 0, run.stderr);
      const p = MODEL_PRESETS[preset];
      assert.match(
        run.stdout,
        new RegExp(
          `model: .*\\(${p.model_revision} --preset ${preset}, hidden ${hidden}, 1 layers, 8 heads, ${p.num_key_value_heads} kv heads, vocab 6400\\)`,
        ),
      );
      const pth = join(root, name, `pretrain_${hidden}.pth`);
      const loaded = torchJson<{ parameters: number }>(
        "eval-llm-load",
        p.model_revision,
        String(hidden),
        "1",
        pth,
      );
      const state = JSON.parse(
        readFileSync(join(root, name, "checkpoints", "step_00000001", "state.json"), "utf8"),
      ) as { model_config: Record<string, number> };
      assert.equal(state.model_config.num_key_value_heads, p.num_key_value_heads);
      assert.ok(loaded.parameters > 6400 * hidden, String(loaded.parameters));
    });
  }
});

describe("resuming with another --model_revision", () => {
  const flags = (name: string, ...more: string[]) => [
    ...runDirs(root, name),
    ...["--hidden_size", "32", "--num_hidden_layers", "1", "--num_attention_heads", "2"],
    ...["--num_key_value_heads", "1", "--max_seq_len", "32", "--batch_size", "2", "--backend", "cpu"],
    ...["--eval", "false", ...more],
  ];
  const refusal =
    /^train_pretrain: error: cannot resume .*step_00000001: it was trained with --model_revision minimind2, this run has minimind3 — pass the same model flags, or --restart/;

  test("is refused in one line naming the flag, also for a checkpoint from before the flag existed", async () => {
    const first = await runTrainerToEnd("train_pretrain.ts", flags("revision", "--max_steps", "1"));
    assert.equal(first.code, 0, first.stderr);
    const again = () =>
      runTrainerToEnd(
        "train_pretrain.ts",
        flags("revision", "--max_steps", "2", "--model_revision", "minimind3"),
      );
    assertOneLineError(await again(), refusal);
    // A checkpoint written before model_revision was recorded (neither in args nor in model_config).
    const stateFile = join(root, "revision", "checkpoints", "step_00000001", "state.json");
    const state = JSON.parse(readFileSync(stateFile, "utf8"));
    delete state.args.model_revision;
    delete state.model_config.model_revision;
    writeFileSync(stateFile, JSON.stringify(state));
    assertOneLineError(await again(), refusal);
    // The same revision resumes it.
    const resumed = await runTrainerToEnd("train_pretrain.ts", flags("revision", "--max_steps", "2"));
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, /continuing the finished run from .*step_00000001 .* to 2 updates/);
  });
});
