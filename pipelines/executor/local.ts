/**
 * The local executor: each stage a child process leading its own process group on this machine
 * (lib/process runChild), its output drained line by line into its log and echoed with its label,
 * stopped with TERM → grace → KILL to the whole group, and reaped so no process of it survives.
 */
import {
  describeExit,
  formatFailureReport,
  labelledEcho,
  runChild,
  StopController,
} from "../../lib/process/index.ts";
import { isForProgramsOnly, parseTrainerLine } from "../../lib/stages/protocol.ts";
import { programLineForwarder } from "./forward.ts";
import type { Executor, StageCommand, StageExecution, StageExit, StartOptions } from "./types.ts";

/** Make `child` follow `parent`'s stop requests (graceful, then forced) until the returned unlink. */
export function linkStop(parent: StopController, child: StopController): () => void {
  return parent.subscribe({ onStop: (reason, why) => child.stop(reason, why), onForce: () => child.force() });
}

/** The exit of a chained execution whose predecessor did not finish. */
export function notStarted(label: string, before: StageExit, options: Pick<StartOptions, "stop">): StageExit {
  const message = `[${label}] was not started: ${before.label} did not finish (${before.state})`;
  return neverRan(label, message, before.state === "interrupted" ? "interrupted" : "failed", options);
}

/** The exit of an execution that never got a process (or a job): nothing ran, `message` says why. */
export function neverRan(
  label: string,
  message: string,
  state: "failed" | "interrupted",
  options: Pick<StartOptions, "stop">,
): StageExit {
  return {
    label,
    state,
    exitCode: null,
    signal: null,
    interrupted: options.stop.reason,
    message,
    report: message,
    id: null,
    durationMs: 0,
  };
}

export const localExecutor: Executor = {
  name: "local",
  start(command: StageCommand, options: StartOptions): StageExecution {
    const own = new StopController();
    const unlink = linkStop(options.stop, own);
    const { echo } = options;
    const tag = command.trainerTag ?? command.label;
    let stoppedWhy: string | null = null;
    const forward = programLineForwarder(echo, command.label);
    const launch = (): Promise<StageExit> =>
      runChild({
        label: command.label,
        file: command.file,
        args: command.args,
        env: command.env,
        cwd: command.cwd,
        logFile: command.logFile,
        graceMs: options.graceMs,
        stop: own,
        echo:
          echo === false
            ? false
            : {
                stdout: labelledEcho(echo.stdout, command.label, tag),
                stderr: labelledEcho(echo.stderr, command.label, tag),
              },
        onSpawn: (pid) => options.onEvent({ kind: "started", id: String(pid) }),
        onStdoutLine: (line) => {
          const event = parseTrainerLine(line);
          if (event !== null) forward?.(line, event);
          options.onEvent(event ?? { kind: "line", stream: "stdout", line });
        },
        onStderrLine: (line) => options.onEvent({ kind: "line", stream: "stderr", line }),
        hideStdoutLine: (line) => {
          const event = parseTrainerLine(line);
          return event !== null && isForProgramsOnly(event);
        },
      }).then((result): StageExit => {
        const finished = result.exitCode === 0 && result.spawnError === undefined && result.pid !== undefined;
        const interrupted = options.stop.reason;
        const state = finished
          ? "finished"
          : result.interrupted !== null && stoppedWhy === null
            ? "interrupted"
            : "failed";
        return {
          label: command.label,
          state,
          exitCode: result.exitCode,
          signal: result.signal,
          interrupted: interrupted ?? null,
          message: finished ? null : (stoppedWhy ?? describeExit(result)),
          report: stoppedWhy
            ? `[${command.label}] ${stoppedWhy}\n${formatFailureReport(result)}`
            : formatFailureReport(result),
          stderrTail: result.stderrTail,
          id: result.pid === undefined ? null : String(result.pid),
          durationMs: result.durationMs,
        };
      });
    const after = options.after;
    // Chained: start once the earlier execution finished; never when it did not.
    const done = (
      after === undefined
        ? launch()
        : after.done.then((before) =>
            before.state === "finished" ? launch() : notStarted(command.label, before, options),
          )
    ).finally(unlink);
    return {
      stop(why) {
        // A stop of this stage alone (a stall) is a failure of it, not an interruption of the run.
        if (options.stop.reason === null) stoppedWhy ??= why;
        own.stop("SIGTERM", why);
      },
      done,
    };
  },
};
