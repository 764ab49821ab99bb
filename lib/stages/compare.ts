/**
 * What a run asks for against what its checkpoint was trained with (state.json `args`): shape
 * differences make a resume impossible, length differences make a finished stage continue, the
 * rest are hyper-parameters that apply from the next update on.
 */
import { LENGTH_FLAGS, SESSION_FLAGS, SHAPE_FLAGS, type TrainerArgs } from "./args.ts";
import { DEFAULT_MODEL_REVISION } from "./table.ts";

export interface SettingChange {
  flag: string;
  asked: unknown;
  trained: unknown;
}

export interface SettingChanges {
  shape: SettingChange[];
  length: SettingChange[];
  other: SettingChange[];
}

/** Flags whose value never makes two runs differ (where files go, how a session starts, stage switches). */
const IGNORED = new Set([...SESSION_FLAGS, "extra", "checkpoint_queue"]);

function flatten(args: Record<string, unknown>): Record<string, unknown> {
  const { extra, ...rest } = args;
  return {
    ...rest,
    ...(typeof extra === "object" && extra !== null ? (extra as Record<string, unknown>) : {}),
  };
}

/**
 * Flags added after checkpoints were first written, with the value every checkpoint from before
 * them was trained with (a flag missing from other old checkpoints is not compared at all).
 */
const BEFORE_RECORDED: Record<string, unknown> = { model_revision: DEFAULT_MODEL_REVISION };

export function compareSettings(asked: TrainerArgs, trained: Record<string, unknown>): SettingChanges {
  const now = flatten(asked as unknown as Record<string, unknown>);
  const then = { ...BEFORE_RECORDED, ...flatten(trained) };
  const changes: SettingChanges = { shape: [], length: [], other: [] };
  for (const [flag, value] of Object.entries(now)) {
    if (IGNORED.has(flag) || !(flag in then) || then[flag] === value) continue;
    const change = { flag, asked: value, trained: then[flag] };
    if ((SHAPE_FLAGS as readonly string[]).includes(flag)) changes.shape.push(change);
    else if ((LENGTH_FLAGS as readonly string[]).includes(flag)) changes.length.push(change);
    else changes.other.push(change);
  }
  return changes;
}

/** `--learning_rate 5e-4 (trained with 0.001)`, for each change, joined with ", ". */
export function describeChanges(changes: readonly SettingChange[]): string {
  return changes.map((c) => `--${c.flag} ${show(c.asked)} (trained with ${show(c.trained)})`).join(", ");
}

function show(value: unknown): string {
  if (value === "") return '""';
  return String(value);
}

/**
 * Optimizer updates the asked run makes in all: `max_steps` when set, else epochs × updates per
 * epoch — or null when the updates per epoch are not known (a checkpoint from before they were
 * recorded), where only a change of the two flags themselves can be judged.
 */
export function plannedUpdates(
  args: Pick<TrainerArgs, "max_steps" | "epochs">,
  updatesPerEpoch: number | null,
): number | null {
  if (updatesPerEpoch === null) return args.max_steps > 0 ? args.max_steps : null;
  const all = args.epochs * updatesPerEpoch;
  return args.max_steps > 0 ? Math.min(args.max_steps, all) : all;
}
