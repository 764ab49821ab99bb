/**
 * A node script run as a child with its output captured and watchable line by line: the one
 * harness under the trainer, pipeline and sweep helpers.
 */
import { type ChildProcess, spawn } from "node:child_process";

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface WatchedProcess {
  child: ChildProcess;
  /** Resolves with the first stdout line matching (lines printed before the call count too); rejects if the process exits first. */
  waitForLine(pattern: RegExp): Promise<string>;
  exited(): boolean;
  done: Promise<ProcessExit>;
}

export interface WatchedOptions {
  /** Names the process in a rejection ("pipeline exited (1) before printing …"). */
  label: string;
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /** node flags before `--import tsx`, e.g. `--import <hook>`. */
  execArgv?: string[];
  /** Lead its own process group, as a terminal would start it. */
  detached?: boolean;
}

export function startWatched(script: string, args: string[], options: WatchedOptions): WatchedProcess {
  // tsx by absolute URL: the working directory may be anywhere.
  const tsx = import.meta.resolve("tsx");
  const child = spawn(process.execPath, [...(options.execArgv ?? []), "--import", tsx, script, ...args], {
    cwd: options.cwd,
    // NODE_OPTIONS cleared: nothing (e.g. a test's loader hook) may reach grandchildren through it.
    env: { ...process.env, NODE_OPTIONS: "", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: options.detached ?? false,
  });
  let stdout = "";
  let stderr = "";
  let pending = "";
  let exited = false;
  const lines: string[] = [];
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void; reject: (e: Error) => void }> = [];
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
    pending += chunk;
    const complete = pending.split("\n");
    pending = complete.pop() ?? "";
    for (const line of complete) {
      lines.push(line);
      for (const waiter of [...waiters]) {
        if (!waiter.pattern.test(line)) continue;
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const done = new Promise<ProcessExit>((resolve) => {
    child.on("close", (code, signal) => {
      exited = true;
      for (const waiter of waiters.splice(0)) {
        const reason = `${options.label} exited (${code ?? signal}) before printing ${waiter.pattern}`;
        waiter.reject(new Error(`${reason}\n${stdout}\n${stderr}`));
      }
      resolve({ code, signal, stdout, stderr });
    });
  });
  return {
    child,
    done,
    exited: () => exited,
    waitForLine(pattern) {
      const seen = lines.find((line) => pattern.test(line));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => waiters.push({ pattern, resolve, reject }));
    },
  };
}
