/**
 * Where a session starts, on the trainer's side: the shared decision (lib/stages/start.ts) over a
 * survey of the disk, then the part only a trainer does — verify the chosen checkpoint's SHA-256s
 * (falling back to an older one, and saying so), move a restarted run aside, and load the weights,
 * optimizer state and RNG streams.
 */
import { randomBytes } from "node:crypto";
import { dirname, join, resolve } from "node:path";
import {
  type CheckpointState,
  listCheckpoints,
  parseStepDirName,
  runIdOf,
  verifyCheckpoint,
} from "../../lib/checkpoint/index.ts";
import { UserError } from "../../lib/cli/errors.ts";
import { Rng } from "../../lib/rng/index.ts";
import { decodeSafetensors } from "../../lib/safetensors/index.ts";
import type { TrainerArgs } from "../../lib/stages/args.ts";
import { legacyWeightsName } from "../../lib/stages/args.ts";
import { stagePaths } from "../../lib/stages/paths.ts";
import { moveRunAside } from "../../lib/stages/restart.ts";
import { decideStart, describeStart, type StartDecision } from "../../lib/stages/start.ts";
import {
  type CheckpointSummary,
  type StageSurvey,
  type StartedFrom,
  summarise,
  surveyStage,
} from "../../lib/stages/survey.ts";
import { STAGES, type StageName } from "../../lib/stages/table.ts";
import type { Tokenizer } from "../data/tokenizer.ts";
import { type ModelConfig, savedModelRevision } from "../model/config.ts";
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
  /** optimizer.safetensors bytes, hash-verified. */
  optimizer: Uint8Array;
  /** rng.json text, hash-verified. */
  rng: string;
}

export type StartPoint =
  | { finished: true; checkpoint: CheckpointSummary; state: CheckpointState; description: string }
  | {
      finished: false;
      resume: ResumePoint | null;
      /** A finished run asked to train longer. */
      continues: boolean;
      /** Resuming an older checkpoint of its folder: the newer ones move aside before the first update. */
      rewind: boolean;
      weights: StateDict;
      /** The "init" stream after drawing the initial weights (saved in rng.json). */
      initRng: Rng;
      /** The run this session belongs to: a resume keeps its checkpoint's, a new start gets a new one. */
      runId: string;
      /** What the run's first session started from (carried in every state.json; null in runs from before it was recorded). */
      startedFrom: StartedFrom | null;
      /** The one log line for the start. */
      description: string;
    };

/** Where the stage's own checkpoints are, and the stages it may start from beside its folder. */
function locations(stage: StageName, args: TrainerArgs) {
  const root = dirname(resolve(args.out_dir));
  return {
    stage,
    ckptDir: args.ckpt_dir,
    sources: STAGES[stage].startsFrom.map((source) => ({
      stage: source,
      ckptDir: join(root, source, "checkpoints"),
      legacyFile: join(root, legacyWeightsName(source, args.hidden_size)),
    })),
  };
}

const TRAINER_HINTS = {
  restartHint: () => "--restart",
  initHint: "--init_from <step dir, stage dir, .safetensors or .pth>",
};

type Decided = Exclude<StartDecision, { kind: "refuse" | "blocked" }>;

function decide(survey: StageSurvey, args: TrainerArgs, updatesPerEpoch: number): Decided {
  const decision = decideStart(survey, { args, updatesPerEpoch, ...TRAINER_HINTS });
  if (decision.kind === "refuse" || decision.kind === "blocked") throw new UserError(decision.message);
  return decision;
}

export async function chooseStart(
  stage: StageName,
  args: TrainerArgs,
  config: ModelConfig,
  tokenizer: Tokenizer,
  updatesPerEpoch: number,
  log: (m: string) => void,
  warn: (m: string) => void,
): Promise<StartPoint> {
  const survey = await surveyStage(locations(stage, args), { resume: args.resume });
  const decision = decide(survey, args, updatesPerEpoch);
  if (decision.kind === "resume" || decision.kind === "skip") {
    return resumePoint(survey, decision.checkpoint, { args, config, tokenizer, updatesPerEpoch, warn });
  }
  for (const note of decision.notes) warn(note);
  if (decision.restart) {
    const moved = await moveRunAside(stagePaths(args));
    log(
      `--restart: moved the earlier run's ${survey.own.stepDirs} checkpoint(s) to ${moved} (nothing was deleted); ` +
        "run again without --restart to resume this new run",
    );
  }
  const initRng = Rng.fromSeed(args.seed, "init");
  const fresh = {
    finished: false,
    resume: null,
    continues: false,
    rewind: false,
    initRng,
    runId: randomBytes(6).toString("hex"),
  } as const;
  if (decision.kind === "fresh") {
    return {
      ...fresh,
      weights: initialWeights(config, initRng),
      startedFrom: { kind: "random", path: null },
      description: describeStart(decision),
    };
  }
  const loaded = await loadWeights(decision.from, config, warn);
  const from = resolve(loaded.description);
  const state = loaded.checkpointState;
  return {
    ...fresh,
    weights: loaded.weights,
    startedFrom: state
      ? {
          kind: "checkpoint",
          path: from,
          stage: state.stage,
          step: state.global_step,
          run_id: runIdOf(state),
          ckpt_dir: dirname(from),
        }
      : { kind: "weights", path: from },
    // A stage folder named by --init_from resolves to the checkpoint it loaded: name that one.
    description:
      from === resolve(decision.from) ? describeStart(decision) : `initialising from ${loaded.description}`,
  };
}

/** Resume (or find finished) the chosen checkpoint — or, when its files fail verification, an older one. */
async function resumePoint(
  survey: StageSurvey,
  chosen: CheckpointSummary,
  context: {
    args: TrainerArgs;
    config: ModelConfig;
    tokenizer: Tokenizer;
    updatesPerEpoch: number;
    warn: (m: string) => void;
  },
): Promise<StartPoint> {
  const { args, config, tokenizer, updatesPerEpoch, warn } = context;
  const verified = await verifiedOrOlder(survey, chosen, warn);
  // An older checkpoint of the same folder that stands in is decided on again, as the latest.
  const decision =
    verified.state.global_step === chosen.step
      ? decide(survey, args, updatesPerEpoch)
      : decide(
          {
            ...survey,
            own: { ...survey.own, latest: summarise(verified.path, verified.state), invalidNewer: [] },
            named: null,
          },
          { ...args, resume: "auto" },
          updatesPerEpoch,
        );
  for (const note of decision.notes) warn(note);
  if (decision.kind === "skip") {
    return {
      finished: true,
      checkpoint: decision.checkpoint,
      state: verified.state,
      description: describeStart(decision),
    };
  }
  if (decision.kind !== "resume") throw new Error(`resumePoint: unexpected decision ${decision.kind}`);
  checkTrainedWith(verified.state, verified.path, config, tokenizer);
  const file = join(verified.path, MODEL_FILE);
  return {
    finished: false,
    resume: {
      path: verified.path,
      state: verified.state,
      optimizer: verified.bytes("optimizer.safetensors"),
      rng: Buffer.from(verified.bytes("rng.json")).toString("utf8"),
    },
    continues: decision.continuesTo !== null,
    rewind: decision.rewind,
    weights: weightsFromTensors(config, decodeSafetensors(verified.bytes(MODEL_FILE), file).tensors, file),
    initRng: Rng.fromSeed(args.seed, "init"),
    runId: runIdOf(verified.state),
    startedFrom: (verified.state.started_from as StartedFrom | undefined) ?? null,
    description: describeStart(decision),
  };
}

interface Verified {
  path: string;
  state: CheckpointState;
  bytes(name: string): Uint8Array;
}

/**
 * The chosen checkpoint with every SHA-256 checked; if a file is damaged, the next older one of
 * the same folder that verifies (with a warning for each passed over). None: refuse, changing nothing.
 */
async function verifiedOrOlder(
  survey: StageSurvey,
  chosen: CheckpointSummary,
  warn: (m: string) => void,
): Promise<Verified> {
  const folder = dirname(resolve(chosen.path));
  const candidates =
    folder === resolve(survey.own.ckptDir)
      ? (await listCheckpoints(survey.own.ckptDir)).filter((c) => c.valid && c.step <= chosen.step).reverse()
      : [{ path: chosen.path, step: chosen.step }];
  const problems: string[] = [];
  for (const candidate of candidates) {
    const result = await verifyCheckpoint(candidate.path, { keepContents: true });
    if (result.valid && result.state && result.contents) {
      const contents = result.contents;
      return {
        path: candidate.path,
        state: result.state,
        bytes(name) {
          const content = contents.get(name);
          if (!content) throw new UserError(`${candidate.path}: checkpoint has no ${name}`);
          return content;
        },
      };
    }
    problems.push(
      `step_${String(parseStepDirName(candidate.path)).padStart(8, "0")}: ${result.problems.join("; ")}`,
    );
    warn(
      `checkpoint ${candidate.path} failed verification: ${result.problems.join("; ")}; falling back to an older one`,
    );
  }
  throw new UserError(
    `no checkpoint in ${folder} passes verification (${problems.join("; ")}); nothing was changed — ` +
      "repair or remove them, or pass --restart to move them aside and start over",
  );
}

/** The resolved model and tokenizer must be the checkpoint's (the flags were compared already; this catches the rest). */
function checkTrainedWith(
  state: CheckpointState,
  path: string,
  config: ModelConfig,
  tokenizer: Tokenizer,
): void {
  // A checkpoint from before model_revision was recorded is MiniMind2's.
  const saved: Partial<ModelConfig> = {
    ...(state.model_config as Partial<ModelConfig>),
    model_revision: savedModelRevision(state.model_config, join(path, "state.json")),
  };
  for (const key of Object.keys(config) as Array<keyof ModelConfig>) {
    if (saved[key] !== undefined && saved[key] !== config[key]) {
      throw new UserError(
        `cannot resume ${path}: it was trained with ${key} ${String(saved[key])}, this run has ${String(config[key])} ` +
          "(pass the same model flags, or --restart to move its checkpoints aside and start over)",
      );
    }
  }
  if (typeof state.tokenizer === "string" && state.tokenizer !== tokenizer.id) {
    throw new UserError(
      `cannot resume ${path}: it was trained with tokenizer ${state.tokenizer}, this run uses ${tokenizer.id} ` +
        "(pass the same --tokenizer, or --restart to start over)",
    );
  }
}
