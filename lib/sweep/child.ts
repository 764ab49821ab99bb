/**
 * One DPO child of a sweep: run it through runChild (its own process group, output drained line by
 * line into `<run dir>/logs/attempt-N.log`, stopped by the shared stop decision), and pick up what
 * it announces on stdout — `CHECKPOINT:<path>` after each save, `METADATA_FILE:<path>` at its end.
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import type { Writable } from "node:stream";
import { CHECKPOINT_LINE_PREFIX, METADATA_LINE_PREFIX } from "../metadata/run-metadata.ts";
import { type ChildResult, labelledEcho, runChild, type StopController } from "../process/index.ts";

export interface DpoChildSpec {
  /** `dpo:from_step_40`: prefixes its echoed lines and names it in reports. */
  label: string;
  file: string;
  args: string[];
  env: Record<string, string>;
  logsDir: string;
  stop: StopController;
  graceMs: number;
  /** Where to echo its lines; false: the log only. */
  echo: { stdout: Writable; stderr: Writable } | false;
  onSpawn?: (pid: number) => void;
}

export interface DpoChildOutcome {
  result: ChildResult;
  state: "finished" | "interrupted" | "failed";
  /** The last `METADATA_FILE:` path it printed, or null. */
  metadataFile: string | null;
  /** The last `CHECKPOINT:` path it printed, or null. */
  lastCheckpoint: string | null;
}

export async function runDpoChild(spec: DpoChildSpec): Promise<DpoChildOutcome> {
  const attempt = (await highestAttempt(spec.logsDir)) + 1;
  let metadataFile: string | null = null;
  let lastCheckpoint: string | null = null;
  const result = await runChild({
    label: spec.label,
    file: spec.file,
    args: spec.args,
    env: spec.env,
    logFile: join(spec.logsDir, `attempt-${attempt}.log`),
    graceMs: spec.graceMs,
    stop: spec.stop,
    echo:
      spec.echo === false
        ? false
        : {
            stdout: labelledEcho(spec.echo.stdout, spec.label, "dpo"),
            stderr: labelledEcho(spec.echo.stderr, spec.label, "dpo"),
          },
    ...(spec.onSpawn ? { onSpawn: spec.onSpawn } : {}),
    onStdoutLine: (line) => {
      if (line.startsWith(METADATA_LINE_PREFIX)) metadataFile = line.slice(METADATA_LINE_PREFIX.length);
      else if (line.startsWith(CHECKPOINT_LINE_PREFIX))
        lastCheckpoint = line.slice(CHECKPOINT_LINE_PREFIX.length);
    },
  });
  const finished = result.exitCode === 0 && result.pid !== undefined && result.spawnError === undefined;
  return {
    result,
    state: finished ? "finished" : result.interrupted !== null ? "interrupted" : "failed",
    metadataFile,
    lastCheckpoint,
  };
}

/** The highest N among `attempt-N.log` files, so every attempt gets a log of its own. */
async function highestAttempt(logsDir: string): Promise<number> {
  const names = await readdir(logsDir).catch(() => [] as string[]);
  let highest = 0;
  for (const name of names) {
    const match = /^attempt-(\d+)\.log$/.exec(name);
    if (match) highest = Math.max(highest, Number(match[1]));
  }
  return highest;
}
