/**
 * The trainer's side of `<out_dir>/metadata.json` (lib/metadata/run-metadata.ts): `running` when a
 * session starts, `finished` (with the evaluation), `interrupted` or `failed` when it ends, each end announced
 * as `METADATA_FILE:<path>` on stdout.
 */
import { resolve } from "node:path";
import { type CheckpointState, latestValidCheckpoint } from "../../lib/checkpoint/index.ts";
import {
  type RunMetadataState,
  readRunMetadata,
  runMetadataPath,
  writeRunMetadata,
} from "../../lib/metadata/run-metadata.ts";
import type { TrainerArgs } from "../../lib/stages/args.ts";
import { METADATA_LINE } from "../../lib/stages/protocol.ts";

interface Position {
  globalStep: number;
  tokensSeen: number;
}

export class RunMetadataWriter {
  readonly #args: TrainerArgs;
  readonly #stage: string;
  readonly #startedFrom: string | null;

  /** `startedFrom`: the checkpoint this session resumed, or the weights it was initialised from, or null (random). */
  constructor(args: TrainerArgs, stage: string, startedFrom: string | null) {
    this.#args = args;
    this.#stage = stage;
    this.#startedFrom = startedFrom;
  }

  /** A session begins: the file says `running` (so no watcher mistakes an earlier run's end for this one's). */
  async started(position: Position): Promise<void> {
    await this.#write("running", position, null);
  }

  /** The session ends after its last save: write the file and announce it. */
  async ended(
    state: Exclude<RunMetadataState, "running">,
    position: Position,
    evaluation: Record<string, number> | null = null,
  ): Promise<void> {
    this.#announce(await this.#write(state, position, evaluation));
  }

  /**
   * Nothing to train (the latest checkpoint is the finished one): announce the file the finishing
   * session wrote, which holds its evaluation, or write one without it if that is missing.
   */
  async alreadyFinished(state: CheckpointState): Promise<void> {
    const path = runMetadataPath(this.#args.out_dir);
    const existing = await readRunMetadata(path).catch(() => null);
    if (existing?.state === "finished" && existing.global_step === state.global_step) {
      this.#announce(path);
      return;
    }
    await this.ended("finished", { globalStep: state.global_step, tokensSeen: state.tokens_seen });
  }

  async #write(
    state: RunMetadataState,
    position: Position,
    evaluation: Record<string, number> | null,
  ): Promise<string> {
    const latest = await latestValidCheckpoint(this.#args.ckpt_dir);
    return writeRunMetadata(this.#args.out_dir, {
      stage: this.#stage,
      state,
      global_step: position.globalStep,
      tokens_seen: position.tokensSeen,
      last_checkpoint: latest?.path ? resolve(latest.path) : null,
      started_from: this.#startedFrom,
      out_dir: resolve(this.#args.out_dir),
      ckpt_dir: resolve(this.#args.ckpt_dir),
      evaluation,
    });
  }

  #announce(path: string): void {
    process.stdout.write(`${METADATA_LINE}${resolve(path)}\n`);
  }
}
