/**
 * Run pipelines/run.ts as a real process, the way a terminal does: leading its own process group
 * (so a "Ctrl+C" is a signal to that group), output captured and watchable line by line.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { descendantGroups, signalGroup } from "../../lib/process/index.ts";
import type { RunRecord } from "../../pipelines/pipeline/run-record.ts";
import { REPO, TINY_SHAPE } from "./trainer-process.ts";
import { type ProcessExit, startWatched, type WatchedProcess } from "./watched-process.ts";

export { REPO };
export const PIPELINE = join(REPO, "pipelines", "run.ts");

/** Trainer flags for a model that trains in tens of milliseconds per step (after `--`). */
export const TINY_TRAINER_FLAGS = [...TINY_SHAPE, "--eval", "false"];

/** Steps per training stage in a tiny pipeline run. */
export interface TinySteps {
  pretrain?: number;
  sft?: number;
  dpo?: number;
  r1?: number;
}

/**
 * The environment of a tiny pipeline run into `outDir` (a 32-wide one-layer model, a save and a
 * log line every 5 steps, 10 steps per stage unless `steps` says otherwise), then `extra`.
 */
export function tinyPipelineEnv(
  outDir: string,
  steps: TinySteps = {},
  extra: NodeJS.ProcessEnv = {},
): NodeJS.ProcessEnv {
  const { pretrain = 10, sft = 10, dpo = 10, r1 = 10 } = steps;
  return {
    OUT_DIR: outDir,
    MODEL_HIDDEN_SIZE: "32",
    MODEL_NUM_LAYERS: "1",
    SAVE_INTERVAL: "5",
    LOG_INTERVAL: "5",
    PRETRAIN_MAX_STEPS: String(pretrain),
    SFT_MAX_STEPS: String(sft),
    DPO_MAX_STEPS: String(dpo),
    R1_MAX_STEPS: String(r1),
    ...extra,
  };
}

/** A scratch folder for this test file, removed after it with every process still naming it. */
export function pipelineTestRoot(label: string): string {
  const root = mkdtempSync(join(tmpdir(), `baton-${label}-`));
  after(() => {
    killMentioning(root);
    rmSync(root, { recursive: true, force: true });
  });
  return root;
}

export interface PipelineOptions {
  env?: NodeJS.ProcessEnv;
  /** node flags before the script, e.g. `--import <hook>`. */
  execArgv?: string[];
  cwd?: string;
}

export function startPipeline(args: string[], options: PipelineOptions = {}): WatchedProcess {
  return startWatched(PIPELINE, args, {
    label: "pipeline",
    cwd: options.cwd ?? REPO,
    env: { FORCE_COLOR: "0", TB_AUTO: "0", ...options.env },
    execArgv: options.execArgv,
    detached: true,
  });
}

export function runPipeline(args: string[], options: PipelineOptions = {}): Promise<ProcessExit> {
  return startPipeline(args, options).done;
}

export function readRecord(outDir: string): RunRecord {
  return JSON.parse(readFileSync(join(outDir, "pipeline.json"), "utf8")) as RunRecord;
}

/**
 * Living processes whose command line mentions `text` (a test's temp dir): whatever the pipeline
 * claims, none may remain once it has exited.
 */
export function processesMentioning(text: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (cmdline.includes(text) && state !== "Z" && state !== "X") found.push(pid);
    } catch {
      // exited while we looked
    }
  }
  return found;
}

/**
 * Kill whatever a failed test left behind: the processes whose command line mentions `text`, and
 * with them the process groups below them (a daemon's runs: a launcher that mentions its log file
 * leads a group whose stand-in or pipeline need not mention anything) and the groups those lead.
 */
export function killMentioning(text: string): void {
  const found = processesMentioning(text);
  const groups = new Set<number>();
  for (const pid of found) {
    // Before any is killed: an orphan is reparented, out of reach of its grandparent's search.
    for (const group of descendantGroups(pid)) groups.add(group);
    if (leadsGroup(pid)) groups.add(pid);
  }
  for (const group of groups) {
    try {
      signalGroup(group, "SIGKILL");
    } catch {
      // not ours to signal
    }
  }
  for (const pid of found) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
}

function leadsGroup(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]) === pid;
  } catch {
    return false;
  }
}
