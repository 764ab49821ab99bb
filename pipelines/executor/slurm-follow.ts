/**
 * Following one Slurm job from the submitting host: its state from the shared poller
 * (slurm-monitor.ts), its output from the log file it appends to (lib/process/log-tail.ts, so the
 * out folder must be on a filesystem both hosts see), the trainer's machine lines turned into
 * executor events, everything else echoed with the stage's label as the local executor does.
 *
 * A run-wide stop (Ctrl+C) ends the following only: the job goes on, and the execution ends
 * `interrupted`. Stopping this execution alone (a stall) cancels the job, with the reason.
 */
import { constants } from "node:os";
import { labelledEcho } from "../../lib/process/index.ts";
import { tailLog } from "../../lib/process/log-tail.ts";
import { Echo } from "../../lib/process/output.ts";
import { describeJobs, JOB_START_MARKER, type JobInfo } from "../../lib/slurm/index.ts";
import { isForProgramsOnly, parseTrainerLine } from "../../lib/stages/protocol.ts";
import { programLineForwarder } from "./forward.ts";
import type { JobMonitor } from "./slurm-monitor.ts";
import type { StageEvent, StageExecution, StageExit, StartOptions } from "./types.ts";

export interface FollowSpec {
  monitor: JobMonitor;
  jobId: string;
  label: string;
  /** The tag the trainer puts on its own lines (dropped so each echoed line has one label). */
  trainerTag?: string;
  /** The job's output file (its %j expanded). */
  log: string;
  /** Read the log from here (bytes): 0 for a new job. */
  offset: number;
  options: StartOptions;
  /** scancel the job (stop(why) of this execution). */
  cancel(jobId: string): Promise<void>;
}

const TAIL_LINES = 20;

export function followJob(spec: FollowSpec): StageExecution {
  const { jobId, label, options } = spec;
  const prefix = `[${label}] `;
  const tag = spec.trainerTag ?? label;
  const echo =
    options.echo === false
      ? null
      : {
          out: new Echo(labelledEcho(options.echo.stdout, label, tag), prefix),
          err: options.echo.stderr,
        };
  const notice = (line: string): void => void echo?.err.write(`${prefix}${line}\n`);
  const forward = programLineForwarder(options.echo, label);
  const emit = (event: StageEvent): void => {
    try {
      options.onEvent(event);
    } catch {
      // a listener's failure must not stop the following
    }
  };
  const tail: string[] = [];
  const startedAt = performance.now();
  let stoppedWhy: string | null = null;
  let lastPhase: JobInfo["phase"] | null = null;
  let lastReason = "";
  let lastRestart = -1;
  let running = false;
  let resolveDone: (exit: StageExit) => void = () => {};
  const done = new Promise<StageExit>((resolve) => {
    resolveDone = resolve;
  });
  let settled = false;
  let unwatch = (): void => {};
  let unsubscribe = (): void => {};

  const logTail = tailLog(spec.log, {
    offset: spec.offset,
    onLine(line) {
      const message = parseTrainerLine(line);
      if (message !== null) {
        emit(message);
        forward?.(line, message);
        // As locally: heartbeats, START: and METRICS: are for programs; CHECKPOINT: lines are shown.
        if (isForProgramsOnly(message)) return;
      } else {
        emit({ kind: "line", stream: "stdout", line });
        if (line.startsWith(JOB_START_MARKER)) tail.length = 0;
        tail.push(line);
        if (tail.length > TAIL_LINES) tail.shift();
      }
      echo?.out.lines([line]);
    },
  });

  type Ending = Omit<StageExit, "label" | "id" | "durationMs" | "interrupted">;
  /** `exit` may be a function: it is then called once the log is read to its end, so its report has the last lines. */
  const finish = async (ending: Ending | (() => Ending)) => {
    if (settled) return;
    settled = true;
    unwatch();
    unsubscribe();
    await logTail.stop();
    const exit = typeof ending === "function" ? ending() : ending;
    resolveDone({
      label,
      id: jobId,
      durationMs: Math.round(performance.now() - startedAt),
      interrupted: options.stop.reason,
      ...exit,
    });
  };

  unwatch = spec.monitor.watch(jobId, (info) => {
    if (settled) return;
    if (info === null) {
      void finish({
        state: "failed",
        exitCode: null,
        signal: null,
        message: `${prefix}Slurm does not know job ${jobId} (it ended more than MinJobAge ago, or slurmctld lost it)`,
        report: report(`Slurm does not know job ${jobId}`),
      });
      return;
    }
    if (info.phase === "pending") {
      if (info.reason === "DependencyNeverSatisfied") {
        // Submitted without --kill-on-invalid-dep (by hand): it would wait forever.
        void spec.cancel(jobId).catch(() => {});
        void finish(notRun(info));
        return;
      }
      if (lastPhase !== "pending" || info.reason !== lastReason) {
        emit({ kind: "waiting", id: jobId, reason: info.reason });
      }
    } else if (info.phase === "active") {
      // RUNNING only: right after a requeue the ended run shows as COMPLETING, Restarts already 1.
      if (info.state === "RUNNING" && (!running || info.restartCount > lastRestart)) {
        emit({ kind: "started", id: jobId, restart: info.restartCount });
        lastRestart = info.restartCount;
      }
    } else {
      // A rerun shorter than one poll was never seen RUNNING; it still ran again, so say so.
      if (info.restartCount > lastRestart) emit({ kind: "started", id: jobId, restart: info.restartCount });
      void finish(() => ended(info));
    }
    lastPhase = info.phase;
    lastReason = info.reason;
    running = info.state === "RUNNING";
  });

  // A run-wide stop ends the following; the job goes on without us.
  unsubscribe = options.stop.subscribe({
    onStop: () => {
      void finish({
        state: "interrupted",
        exitCode: null,
        signal: null,
        message: `${prefix}stopped following job ${jobId}; it goes on in Slurm`,
        report: `${prefix}stopped following job ${jobId}; it goes on in Slurm (log: ${spec.log})`,
      });
    },
    onForce: () => {},
  });

  function report(first: string): string {
    const lines = [`${prefix}${first}`];
    if (tail.length > 0) {
      lines.push(`${prefix}last ${tail.length} lines of its log:`);
      for (const line of tail) lines.push(`  | ${line.length > 500 ? `${line.slice(0, 500)}…` : line}`);
    }
    lines.push(`${prefix}full log: ${spec.log}`);
    return lines.join("\n");
  }

  function notRun(info: JobInfo) {
    const message = `${prefix}job ${jobId} never ran: a job it depends on did not finish (${info.reason})`;
    return { state: "failed" as const, exitCode: null, signal: null, message, report: message };
  }

  function ended(info: JobInfo) {
    const status = info.exitCode?.status ?? null;
    const signalNumber = info.exitCode?.signal ?? 0;
    const signal = signalNumber > 0 ? signalName(signalNumber) : null;
    if (info.state === "COMPLETED" && status === 0) {
      return { state: "finished" as const, exitCode: 0, signal: null, message: null, report: "" };
    }
    if (info.state === "CANCELLED" && /Dependency/.test(info.reason)) return notRun(info);
    if (info.state === "CANCELLED" && stoppedWhy === null) {
      // Someone else's stop (scancel, --cancel): the job was interrupted, not failed.
      const message = `${prefix}job ${jobId} was cancelled (scancel or --cancel)`;
      return { state: "interrupted" as const, exitCode: status, signal, message, report: message };
    }
    const why =
      stoppedWhy ??
      (info.state === "TIMEOUT"
        ? `job ${jobId} reached its time limit (SLURM_TIME) before the trainer saved and requeued it`
        : info.state === "CANCELLED"
          ? `job ${jobId} was cancelled`
          : info.state === "FAILED" && status !== null
            ? `job ${jobId} failed: exited with code ${status}`
            : `job ${jobId} ended ${describeJobs([info])}`);
    return {
      state: "failed" as const,
      exitCode: status,
      signal,
      message: `${prefix}${why}`,
      report: report(why),
    };
  }

  return {
    stop(why) {
      if (settled || stoppedWhy !== null) return;
      stoppedWhy = why;
      notice(`${why}: cancelling job ${jobId} (scancel)`);
      spec.cancel(jobId).catch((error: unknown) => {
        notice(`cannot cancel job ${jobId}: ${error instanceof Error ? error.message : String(error)}`);
      });
    },
    done,
  };
}

function signalName(number: number): string {
  const entry = Object.entries(constants.signals).find(([, n]) => n === number);
  return entry?.[0] ?? `signal ${number}`;
}
