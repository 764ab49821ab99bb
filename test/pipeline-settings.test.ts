// The pipeline's command line, environment and trainer-argument layering, its run record, its
// signal routing and its echo — everything that needs no trainer.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { UserError } from "../lib/cli/errors.ts";
import { flags, flagValue, mergeFlagLayers, parseFlagGroups } from "../lib/cli/flag-layers.ts";
import { splitShellWords } from "../lib/cli/shell-words.ts";
import { labelledEcho } from "../lib/process/echo.ts";
import { StopController } from "../lib/process/index.ts";
import { parsePipelineFlags } from "../pipelines/pipeline/cli.ts";
import { RunRecorder } from "../pipelines/pipeline/run-record.ts";
import { pipelineSettings } from "../pipelines/pipeline/settings.ts";
import { routeStopSignals } from "../pipelines/pipeline/signals.ts";
import { tempDir } from "./fixtures/checkpoint-helpers.ts";
import { collector } from "./fixtures/child-kit.ts";

const REPO = "/repo";
const settingsFor = (env: Record<string, string>, argv: string[] = []) =>
  pipelineSettings(env, parsePipelineFlags(argv), REPO);

describe("pipeline flags", () => {
  test("defaults: every stage and infer; --skip-* removes; --stages selects in pipeline order", () => {
    assert.deepEqual(parsePipelineFlags([]).steps, ["pretrain", "sft", "dpo", "r1", "infer"]);
    assert.deepEqual(parsePipelineFlags(["--skip-pretrain", "--skip-infer"]).steps, ["sft", "dpo", "r1"]);
    assert.deepEqual(parsePipelineFlags(["--stages", "r1,full_sft"]).steps, ["sft", "r1"]);
    assert.deepEqual(parsePipelineFlags(["--stages=rlhf,infer", "--skip-infer"]).steps, ["dpo"]);
    assert.deepEqual(parsePipelineFlags(["--infer-only"]).steps, ["infer"]);
    assert.equal(parsePipelineFlags(["--infer-checkpoint", "out/sft"]).inferCheckpoint, "out/sft");
  });

  test("everything after -- is kept for the trainers, untouched", () => {
    const parsed = parsePipelineFlags(["--smoke-test", "--", "--max_steps", "5", "--", "--stages"]);
    assert.equal(parsed.smokeTest, true);
    assert.deepEqual(parsed.rest, ["--max_steps", "5", "--", "--stages"]);
  });

  test("bad flags are one-line UserErrors that say where trainer flags go", () => {
    assert.throws(
      () => parsePipelineFlags(["--max_steps", "5"]),
      (e: unknown) => {
        assert.ok(e instanceof UserError);
        assert.match(e.message, /Unknown option '--max_steps' \(trainer flags go after --; see --help\)$/);
        assert.doesNotMatch(e.message, /\n/);
        return true;
      },
    );
    assert.throws(() => parsePipelineFlags(["--stages", "pretrain,sfx"]), /unknown stage "sfx"/);
    assert.throws(() => parsePipelineFlags(["extra"]), /unexpected argument "extra"/);
    assert.throws(() => parsePipelineFlags(["--infer-only", "--stages", "sft"]), /cannot be combined/);
  });
});

describe("trainer argument layers", () => {
  test("a later layer replaces every spelling of a flag; booleans and = forms count", () => {
    const merged = mergeFlagLayers([
      flags([
        ["max_steps", 10],
        ["eval_size", 16],
        ["batch_size", undefined],
      ]),
      parseFlagGroups(["--max-steps=20", "--no-eval"], "rest"),
      parseFlagGroups(["--eval", "true", "--learning_rate", "-1e-3"], "SFT_ARGS"),
    ]);
    assert.deepEqual(merged, [
      "--eval_size",
      "16",
      "--max-steps=20",
      "--eval",
      "true",
      "--learning_rate",
      "-1e-3",
    ]);
    assert.equal(flagValue(merged, "max_steps"), "20");
    assert.equal(flagValue(merged, "learning_rate"), "-1e-3");
    assert.equal(flagValue(merged, "batch_size"), undefined);
  });

  test("words before any flag are refused, naming their source", () => {
    assert.throws(
      () => parseFlagGroups(["5", "--max_steps"], "SFT_ARGS"),
      /^UserError: SFT_ARGS: "5" is not a flag/,
    );
  });

  test("shell-style splitting of <STAGE>_ARGS", () => {
    assert.deepEqual(splitShellWords(`  --a 1 --b "two words" --c 'it''s' --d \\"q\\" `, "X"), [
      "--a",
      "1",
      "--b",
      "two words",
      "--c",
      "its",
      "--d",
      '"q"',
    ]);
    assert.deepEqual(splitShellWords(`--e ""`, "X"), ["--e", ""]);
    assert.throws(() => splitShellWords(`--a "open`, "SFT_ARGS"), /SFT_ARGS: unterminated " quote/);
  });
});

describe("pipeline settings", () => {
  test("paths, shape and KEEP_LAST go to every trainer; trainer defaults are left alone", () => {
    const s = settingsFor({});
    const args = s.stages.sft.trainerArgs([]);
    assert.equal(flagValue(args, "data_path"), join(REPO, "data", "sft_mini_512.jsonl"));
    assert.equal(flagValue(args, "out_dir"), join("out", "sft"));
    assert.equal(flagValue(args, "tensorboard_dir"), join("out", "tensorboard", "sft"));
    assert.equal(flagValue(args, "hidden_size"), "128");
    assert.equal(flagValue(args, "num_hidden_layers"), "4");
    assert.equal(flagValue(args, "keep_last_checkpoints"), "3");
    for (const name of [
      "save_interval",
      "max_steps",
      "epochs",
      "batch_size",
      "learning_rate",
      "log_interval",
    ]) {
      assert.equal(flagValue(args, name), undefined, `--${name} must stay the trainer's default`);
    }
    assert.equal(s.stages.sft.ckptDir, join("out", "sft", "checkpoints"));
    assert.equal(s.stages.dpo.legacyFile, join("out", "rlhf_128.safetensors"));
    assert.equal(s.recordFile, join("out", "pipeline.json"));
    assert.equal(s.stopGraceMs, 120_000);
    assert.equal(s.tensorBoard.auto, true);
    assert.equal(s.tensorBoard.logdir, join("out", "tensorboard"));
  });

  test("environment variables of docs/pipeline.md and run_mlx.sh", () => {
    const s = settingsFor({
      OUT_DIR: "/runs/a",
      DATA_DIR: "/data",
      DPO_JSON: "/mine/pairs.jsonl",
      TF_DIR: "/tb",
      MODEL_HIDDEN_SIZE: "512",
      MODEL_NUM_LAYERS: "8",
      SAVE_INTERVAL: "200",
      KEEP_LAST_CHECKPOINTS: "5",
      SFT_MAX_STEPS: "40",
      R1_ACCUM_STEPS: "8",
      R1_OUT: "/elsewhere/r1",
      STOP_GRACE_SEC: "2.5",
      TB_AUTO: "0",
      TB_PORT: "7007",
    });
    const dpo = s.stages.dpo.trainerArgs([]);
    assert.equal(flagValue(dpo, "data_path"), "/mine/pairs.jsonl");
    assert.equal(flagValue(s.stages.sft.trainerArgs([]), "data_path"), "/data/sft_mini_512.jsonl");
    assert.equal(flagValue(dpo, "hidden_size"), "512");
    assert.equal(flagValue(dpo, "save_interval"), "200");
    assert.equal(flagValue(dpo, "keep_last_checkpoints"), "5");
    assert.equal(flagValue(dpo, "max_steps"), undefined);
    assert.equal(flagValue(s.stages.sft.trainerArgs([]), "max_steps"), "40");
    assert.equal(flagValue(s.stages.r1.trainerArgs([]), "accumulation_steps"), "8");
    assert.equal(s.stages.r1.ckptDir, "/elsewhere/r1/checkpoints");
    assert.equal(s.stages.r1.legacyFile, "/elsewhere/reason_512.safetensors");
    assert.equal(flagValue(dpo, "tensorboard_dir"), "/tb/dpo");
    assert.equal(s.stopGraceMs, 2500);
    assert.equal(s.tensorBoard.auto, false);
    assert.equal(s.tensorBoard.port, 7007);
    assert.equal(s.tensorBoard.recordFile, "/runs/a/tensorboard.json");
  });

  test("precedence: shape < plan < --smoke-test < environment < -- rest < <STAGE>_ARGS", () => {
    const s = settingsFor(
      { SFT_MAX_STEPS: "30", SAVE_INTERVAL: "7", SFT_ARGS: "--save-interval 9 --out_dir /custom/sft" },
      ["--smoke-test", "--", "--max_steps", "50", "--hidden_size", "96"],
    );
    const sft = s.stages.sft.trainerArgs(["--resume", "auto", "--init_from", "prev"]);
    assert.equal(flagValue(sft, "max_steps"), "50", "-- rest beats SFT_MAX_STEPS and --smoke-test");
    assert.equal(flagValue(sft, "save_interval"), "9", "SFT_ARGS beats SAVE_INTERVAL and --smoke-test");
    assert.equal(flagValue(sft, "batch_size"), "4", "--smoke-test beats the trainer default");
    assert.equal(flagValue(sft, "init_from"), "prev");
    assert.equal(flagValue(sft, "hidden_size"), "96");
    assert.equal(
      sft.filter((a) => /max.steps|save.interval|hidden.size/.test(a)).length,
      3,
      "each flag once",
    );
    assert.equal(flagValue(s.stages.pretrain.trainerArgs([]), "save_interval"), "7");
    // The plan looks where the trainer will write.
    assert.equal(s.stages.sft.ckptDir, "/custom/sft/checkpoints");
    assert.equal(s.stages.sft.legacyFile, "/custom/full_sft_96.safetensors");
    assert.equal(s.outDir, join("out", "smoke"));
    assert.equal(s.cleanSmokeOutputs, true);
  });

  test("infer gets its own flags and the trainers' --backend, nothing else", () => {
    const s = settingsFor({ INFER_PROMPT: "hi", INFER_TOP_P: "0.9" }, [
      "--",
      "--backend",
      "cpu",
      "--max_steps",
      "3",
    ]);
    assert.equal(s.infer.prompt, "hi");
    assert.deepEqual(s.infer.args, [
      "--max_new_tokens",
      "64",
      "--temperature",
      "0",
      "--top_p",
      "0.9",
      "--backend",
      "cpu",
    ]);
  });

  test("bad values name the variable and what was expected", () => {
    assert.throws(
      () => settingsFor({ MODEL_HIDDEN_SIZE: "big" }),
      /^UserError: MODEL_HIDDEN_SIZE=big: expected a whole number ≥ 8$/,
    );
    assert.throws(() => settingsFor({ STOP_GRACE_SEC: "-1" }), /STOP_GRACE_SEC=-1: expected a number ≥ 0/);
    assert.throws(() => settingsFor({ TB_AUTO: "maybe" }), /TB_AUTO=maybe: expected 1 or 0/);
    assert.throws(() => settingsFor({ TB_PORT: "70000" }), /TB_PORT=70000/);
    assert.throws(() => settingsFor({ PRETRAIN_ARGS: "oops --x" }), /PRETRAIN_ARGS: "oops" is not a flag/);
  });
});

describe("run record", () => {
  test("written atomically after each change; attempts carry over to the next run", async (t) => {
    const dir = await tempDir("pipeline-record");
    t.after(dir.cleanup);
    const path = join(dir.path, "pipeline.json");
    const first = await RunRecorder.begin(path, { argv: ["--smoke-test"], outDir: dir.path });
    const onDisk = async () => JSON.parse(await readFile(path, "utf8"));
    assert.equal((await onDisk()).state, "running");
    // Many changes at once: the file ends with the newest state, never an older one.
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => first.update("sft", { attempts: i + 1, state: "running" })),
    );
    assert.equal((await onDisk()).stages[1].attempts, 20);
    await first.update("sft", { state: "interrupted", exit_code: 143 });
    await first.finish("interrupted", 130);
    const saved = await onDisk();
    assert.equal(saved.state, "interrupted");
    assert.equal(saved.exit_code, 130);
    assert.deepEqual(
      saved.stages.map((s: { stage: string }) => s.stage),
      ["pretrain", "sft", "dpo", "r1", "infer"],
    );

    const second = await RunRecorder.begin(path, { argv: [], outDir: dir.path });
    assert.equal(second.step("sft").attempts, 20);
    assert.equal(second.step("sft").state, "pending");
    assert.equal(second.record.state, "running");
  });
});

describe("signal routing", () => {
  test("one stop per burst: a signal within the window is a duplicate, a later one forces", (t) => {
    let clock = 0;
    const stop = new StopController();
    const seen: string[] = [];
    const unroute = routeStopSignals(stop, {
      now: () => clock,
      onSignal: (signal, outcome) => seen.push(`${signal}:${outcome}`),
    });
    t.after(unroute);
    const before = process.listenerCount("SIGINT");
    process.emit("SIGINT", "SIGINT");
    clock = 5;
    process.emit("SIGINT", "SIGINT"); // npm-style forwarded copy
    clock = 100;
    process.emit("SIGHUP", "SIGHUP"); // closing terminal: SIGHUP then SIGTERM
    assert.equal(stop.reason, "SIGINT");
    assert.equal(stop.forced, false);
    clock = 900;
    process.emit("SIGINT", "SIGINT");
    assert.equal(stop.forced, true);
    assert.deepEqual(seen, ["SIGINT:stop", "SIGINT:duplicate", "SIGHUP:duplicate", "SIGINT:force"]);
    unroute();
    assert.equal(process.listenerCount("SIGINT"), before - 1);
  });
});

describe("echo", () => {
  test("collapses the trainer's own [stage] prefix under runChild's", async () => {
    const out = collector();
    const echo = labelledEcho(out.stream, "sft");
    echo.write("[sft] [sft] step 1\n[sft] \n[sft] CHECKPOINT:/x\n[sft] [sft] [sft] odd\n");
    await new Promise<void>((resolve) => echo.end(resolve));
    assert.equal(out.text(), "[sft] step 1\n[sft] CHECKPOINT:/x\n[sft] [sft] odd\n");
  });
});
