/**
 * Where a stage's session starts — the one rule the trainer and the pipeline both follow
 * (docs/stages.md#where-a-stage-starts). Pure: the survey (survey.ts) reads the disk, this decides.
 *
 *   --restart            its checkpoints are moved aside, then as if it had none
 *   own checkpoints      none valid → refuse; --resume none → refuse (two runs in one folder);
 *                        another model shape → refuse; its source was retrained since → refuse (stale);
 *                        finished → skip, or continue when asked to run longer; else resume
 *   nothing of its own   --init_from; else the first stage it starts from with a valid checkpoint,
 *                        else that stage's legacy weights file; pretrain: random weights;
 *                        else blocked: run the earlier stage first
 */
import { resolve } from "node:path";
import type { TrainerArgs } from "./args.ts";
import { compareSettings, describeChanges, plannedUpdates } from "./compare.ts";
import type { CheckpointSummary, FolderSurvey, StageSurvey } from "./survey.ts";
import { laterStages, type StageName } from "./table.ts";

export interface StartRequest {
  /** The session's arguments, fully resolved (what the trainer will run with). */
  args: TrainerArgs;
  /** Updates per epoch with the current data and batch size, when known (the trainer knows; the pipeline does not). */
  updatesPerEpoch?: number | null;
  /** How this caller's user asks to retrain stages: `--restart` (trainer), `--restart dpo,r1` (pipeline). */
  restartHint(stages: readonly StageName[]): string;
  /** How this caller's user names initial weights: `--init_from <…>` (trainer), `INIT_FROM` (pipeline). */
  initHint: string;
}

export type InitSource =
  | { kind: "init_from" }
  | { kind: "checkpoint"; stage: StageName; checkpoint: CheckpointSummary }
  | { kind: "legacy"; stage: StageName };

export type StartDecision =
  | { kind: "skip"; checkpoint: CheckpointSummary; notes: string[] }
  | {
      kind: "resume";
      checkpoint: CheckpointSummary;
      /** A finished run asked to train longer: it continues to this many updates. */
      continuesTo: number | null;
      /**
       * `--resume <older step>` in its own folder: the newer checkpoints there must be moved aside
       * first, so an auto-resume after a crash can never pick one of them up.
       */
      rewind: boolean;
      /** Invalid newer checkpoints passed over, changed settings: one line each, for the log. */
      notes: string[];
    }
  | { kind: "init"; from: string; source: InitSource; restart: boolean; notes: string[] }
  | { kind: "fresh"; restart: boolean; notes: string[] }
  | { kind: "refuse"; message: string }
  | { kind: "blocked"; runFirst: StageName; message: string };

const same = (a: string, b: string): boolean => resolve(a) === resolve(b);

function listInvalid(folder: FolderSurvey): string {
  return folder.invalidNewer.map((c) => `${c.name}: ${c.reason}`).join("; ");
}

export function decideStart(survey: StageSurvey, request: StartRequest): StartDecision {
  const { args } = request;
  const own = survey.own;
  const hint = request.restartHint([survey.stage]);
  if (args.restart) {
    if (survey.named !== null) {
      return {
        kind: "refuse",
        message: `--restart starts over; it cannot be combined with --resume ${args.resume}`,
      };
    }
    if (own.stepDirs > 0) return startAfresh(survey, request, true);
  }
  if (own.stepDirs > 0 && args.resume === "none") {
    return {
      kind: "refuse",
      message:
        `--resume none: ${own.ckptDir} already holds ${own.stepDirs} checkpoint(s)` +
        `${own.latest ? ` (latest step ${own.latest.step})` : ""}; a new run there would mix two runs in one folder — ` +
        `pass ${hint} to move them aside and start over, or drop --resume none to resume`,
    };
  }
  if (survey.named !== null) {
    const named = survey.named.latest as CheckpointSummary;
    const decision = resumeOrSkip(survey, request, named, []);
    const newer = own.latest !== null && own.latest.step > named.step;
    if (decision.kind === "resume" && newer && same(survey.named.ckptDir, own.ckptDir)) {
      return { ...decision, rewind: true };
    }
    return decision;
  }
  if (own.latest === null && own.stepDirs > 0) {
    return {
      kind: "refuse",
      message:
        `${own.ckptDir} holds ${own.stepDirs} checkpoint(s) and none is valid (${listInvalid(own)}); ` +
        `nothing was changed — repair or remove them, or pass ${hint} to move them aside and start over`,
    };
  }
  if (own.latest !== null) {
    const passedOver = own.invalidNewer.map(
      (c) =>
        `checkpoint ${own.ckptDir}/${c.name} is invalid (${c.reason}); using the older ${own.latest?.path}`,
    );
    return resumeOrSkip(survey, request, own.latest, passedOver);
  }
  return startAfresh(survey, request, false);
}

function resumeOrSkip(
  survey: StageSurvey,
  request: StartRequest,
  checkpoint: CheckpointSummary,
  notes: string[],
): StartDecision {
  const { args } = request;
  const changes = compareSettings(args, checkpoint.args);
  if (changes.shape.length > 0) {
    const first = changes.shape[0];
    return {
      kind: "refuse",
      message:
        `cannot resume ${checkpoint.path}: it was trained with --${first?.flag} ${String(first?.trained)}, ` +
        `this run has ${String(first?.asked)}${changes.shape.length > 1 ? ` (and ${describeChanges(changes.shape.slice(1))})` : ""} — ` +
        `pass the same model flags, or ${request.restartHint([survey.stage])} to move its checkpoints aside and start over`,
    };
  }
  const stale = staleness(survey, checkpoint);
  if (stale !== null) {
    const retrain = [survey.stage, ...laterStages(survey.stage)];
    return { kind: "refuse", message: `${stale}; retrain it with ${request.restartHint(retrain)}` };
  }
  const other = changes.other.length > 0 ? describeChanges(changes.other) : null;
  if (checkpoint.finished) {
    const total = plannedUpdates(args, request.updatesPerEpoch ?? checkpoint.updatesPerEpoch);
    const longer =
      total !== null
        ? total > checkpoint.step
        : changes.length.some((c) => c.flag === "epochs" && Number(c.asked) > Number(c.trained));
    if (longer) {
      const length = changes.length.length > 0 ? ` (${describeChanges(changes.length)})` : "";
      const note = `it finished at step ${checkpoint.step} and is asked to train longer${length}: continuing`;
      return {
        kind: "resume",
        checkpoint,
        continuesTo: total,
        rewind: false,
        notes: [...notes, note, ...(other ? [`changed settings apply from here on: ${other}`] : [])],
      };
    }
    const ignored = [...changes.length, ...changes.other];
    if (ignored.length > 0) {
      notes.push(
        `it is finished, so ${describeChanges(ignored)} change${ignored.length > 1 ? "" : "s"} nothing — ` +
          `retrain it with ${request.restartHint([survey.stage])} to apply ${ignored.length > 1 ? "them" : "it"}`,
      );
    }
    return { kind: "skip", checkpoint, notes };
  }
  if (other) notes.push(`resuming with changed settings, applied from here on: ${other}`);
  return { kind: "resume", checkpoint, continuesTo: null, rewind: false, notes };
}

/**
 * A run that started from an earlier stage's checkpoint is stale once that stage's latest
 * checkpoint is another one (retrained, or trained further): what it learned on top no longer
 * matches what it would start from now.
 */
function staleness(survey: StageSurvey, checkpoint: CheckpointSummary): string | null {
  const from = checkpoint.startedFrom;
  const now = survey.lineage?.latest;
  if (from?.kind !== "checkpoint" || !now) return null;
  if (now.runId === from.run_id && now.step === from.step) return null;
  const source = from.stage ?? "the stage it started from";
  const changed =
    now.runId === from.run_id
      ? `trained further (now step ${now.step})`
      : `retrained (now step ${now.step} of another run)`;
  return `${survey.stage} is stale: it was trained from ${source} step ${from.step}, and ${source} has since been ${changed}`;
}

function startAfresh(survey: StageSurvey, request: StartRequest, restart: boolean): StartDecision {
  const { args } = request;
  const notes: string[] = [];
  // MiniMind's `--from_weight none`: random weights, asked for explicitly.
  if (args.init_from === "none") return { kind: "fresh", restart, notes };
  if (args.init_from) {
    return { kind: "init", from: args.init_from, source: recognise(survey, args.init_from), restart, notes };
  }
  for (const source of survey.sources) {
    const latest = source.folder.latest;
    if (latest) {
      return {
        kind: "init",
        from: latest.path,
        source: { kind: "checkpoint", stage: source.stage, checkpoint: latest },
        restart,
        notes,
      };
    }
    if (source.legacyExists) {
      return {
        kind: "init",
        from: source.legacyFile,
        source: { kind: "legacy", stage: source.stage },
        restart,
        notes,
      };
    }
  }
  const first = survey.sources[0];
  if (first === undefined) return { kind: "fresh", restart, notes };
  const tried = survey.sources
    .map((s) => {
      const why =
        s.folder.stepDirs > 0
          ? `none of the ${s.folder.stepDirs} checkpoints in ${s.folder.ckptDir} is valid`
          : `no valid checkpoint in ${s.folder.ckptDir}`;
      return `${why}, no ${s.legacyFile}`;
    })
    .join("; ");
  return {
    kind: "blocked",
    runFirst: first.stage,
    message: `nothing to start from: run the ${first.stage} stage first (${tried}; or set ${request.initHint})`,
  };
}

/** An explicit --init_from that is a source stage's latest checkpoint or legacy file is described as such. */
function recognise(survey: StageSurvey, path: string): InitSource {
  for (const source of survey.sources) {
    if (source.folder.latest && same(source.folder.latest.path, path)) {
      return { kind: "checkpoint", stage: source.stage, checkpoint: source.folder.latest };
    }
    if (same(source.legacyFile, path)) return { kind: "legacy", stage: source.stage };
  }
  return { kind: "init_from" };
}

/** The one line a session's start is logged with, after `[stage] `. `show` shortens paths for reading. */
export function describeStart(
  decision: Exclude<StartDecision, { kind: "refuse" | "blocked" }>,
  show: (path: string) => string = (path) => path,
): string {
  switch (decision.kind) {
    case "skip":
      return `already finished at step ${decision.checkpoint.step} (${show(decision.checkpoint.path)})`;
    case "resume": {
      const c = decision.checkpoint;
      const where = `${show(c.path)} (epoch ${c.epoch + 1}, batch ${c.stepInEpoch})`;
      return decision.continuesTo === null
        ? `resuming from ${where}`
        : `continuing the finished run from ${where} to ${decision.continuesTo} updates`;
    }
    case "fresh":
      return "starting from random weights";
    case "init": {
      const from = show(decision.from);
      const source = decision.source;
      if (source.kind === "init_from") return `initialising from ${from} (--init_from)`;
      if (source.kind === "legacy") {
        return `initialising from ${from} (${source.stage} has no valid checkpoint; using its weights file)`;
      }
      const c = source.checkpoint;
      const unfinished = c.finished ? "" : `, not finished: ${source.stage} stopped at step ${c.step}`;
      return `initialising from ${from} (${source.stage}'s latest checkpoint${unfinished})`;
    }
  }
}
