/**
 * Where a session starts: a checkpoint to resume (model, optimizer, RNG, data position), or initial
 * weights from --init_from, or seeded random weights.
 */
import { join } from "node:path";
import {
  type CheckpointState,
  loadLatestCheckpoint,
  loadNamedCheckpoint,
} from "../../lib/checkpoint/index.ts";
import { UserError } from "../../lib/cli/errors.ts";
import { Rng } from "../../lib/rng/index.ts";
import { decodeSafetensors } from "../../lib/safetensors/index.ts";
import type { TrainerArgs } from "../args.ts";
import type { Tokenizer } from "../data/tokenizer.ts";
import type { ModelConfig } from "../model/config.ts";
import {
  initialWeights,
  loadWeights,
  MODEL_FILE,
  type StateDict,
  weightsFromTensors,
} from "../model/state-dict.ts";

export interface ResumePoint {
  path: string;
  state: CheckpointState;
  weights: StateDict;
  /** optimizer.safetensors bytes, hash-verified. */
  optimizer: Uint8Array;
  /** rng.json text, hash-verified. */
  rng: string;
}

export interface StartPoint {
  resume: ResumePoint | null;
  weights: StateDict;
  initialisedFrom: { path: string; state?: Record<string, unknown> } | null;
  /** The "init" stream after drawing the initial weights (saved in rng.json). */
  initRng: Rng;
  /** One line for the log. */
  description: string;
}

async function findResumeCheckpoint(args: TrainerArgs, warn: (m: string) => void) {
  if (args.resume === "none") return null;
  if (args.resume === "auto")
    return loadLatestCheckpoint(args.ckpt_dir, { onWarning: warn, keepContents: true });
  return loadNamedCheckpoint(args.resume, "--resume", { onWarning: warn, keepContents: true });
}

/** Shape and tokenizer must match to resume; batch size and learning rate may change, with a warning. */
function checkCompatible(
  state: CheckpointState,
  path: string,
  config: ModelConfig,
  tokenizer: Tokenizer,
  args: TrainerArgs,
  warn: (m: string) => void,
): void {
  const saved = state.model_config as Partial<ModelConfig>;
  for (const key of Object.keys(config) as Array<keyof ModelConfig>) {
    if (saved[key] !== undefined && saved[key] !== config[key]) {
      throw new UserError(
        `cannot resume ${path}: it was trained with ${key} ${String(saved[key])}, this run has ${String(config[key])} ` +
          "(pass the same model flags, or --resume none to start over)",
      );
    }
  }
  const savedTokenizer = state.tokenizer;
  if (typeof savedTokenizer === "string" && savedTokenizer !== tokenizer.id) {
    throw new UserError(
      `cannot resume ${path}: it was trained with tokenizer ${savedTokenizer}, this run uses ${tokenizer.id}`,
    );
  }
  const savedArgs = state.args as Partial<TrainerArgs>;
  for (const key of ["batch_size", "learning_rate", "accumulation_steps", "epochs"] as const) {
    if (savedArgs[key] !== undefined && savedArgs[key] !== args[key]) {
      warn(`resuming with --${key} ${args[key]} (the checkpoint was trained with ${savedArgs[key]})`);
    }
  }
}

export async function chooseStart(
  args: TrainerArgs,
  config: ModelConfig,
  tokenizer: Tokenizer,
  warn: (m: string) => void,
  defaultInit?: (args: TrainerArgs) => Promise<string>,
): Promise<StartPoint> {
  const initRng = Rng.fromSeed(args.seed, "init");
  const found = await findResumeCheckpoint(args, warn);
  if (found) {
    checkCompatible(found.state, found.path, config, tokenizer, args, warn);
    const bytes = (name: string) => {
      const content = found.contents?.get(name);
      if (!content) throw new UserError(`${found.path}: checkpoint has no ${name}`);
      return content;
    };
    const modelFile = join(found.path, MODEL_FILE);
    const weights = weightsFromTensors(
      config,
      decodeSafetensors(bytes(MODEL_FILE), modelFile).tensors,
      modelFile,
    );
    const s = found.state;
    return {
      resume: {
        path: found.path,
        state: s,
        weights,
        optimizer: bytes("optimizer.safetensors"),
        rng: Buffer.from(bytes("rng.json")).toString("utf8"),
      },
      weights,
      initialisedFrom: null,
      initRng,
      description: `resuming from ${found.path} (epoch ${s.epoch}, batch ${s.step_in_epoch}, step ${s.global_step})`,
    };
  }
  const initFrom = args.init_from || (defaultInit ? await defaultInit(args) : "");
  if (initFrom) {
    const loaded = await loadWeights(initFrom, config, warn);
    return {
      resume: null,
      weights: loaded.weights,
      initialisedFrom: { path: loaded.description, state: loaded.checkpointState },
      initRng,
      description: `initialising from ${loaded.description}`,
    };
  }
  return {
    resume: null,
    weights: initialWeights(config, initRng),
    initialisedFrom: null,
    initRng,
    description: `starting from random weights (seed ${args.seed})`,
  };
}
