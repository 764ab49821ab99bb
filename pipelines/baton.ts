#!/usr/bin/env -S node --import tsx
/**
 * `npm run baton` — the daemon's command-line client (docs/daemon.md#the-cli), over its Unix socket:
 *
 *   submit [--slots N] [--sweep] [--name TEXT] [pipeline flags…]   queue a pipeline run (a sweep: dpo-sweep flags)
 *   ls [--status S] | show ID | logs ID [-f] | stop ID [--reason TEXT] | health     (--json: the API's answer)
 *
 * `submit` takes the pipeline's variables from this environment and makes relative paths absolute
 * against this directory, so it means what `npm run pipeline` here would.
 */
import { resolve } from "node:path";
import { EXIT, UserError } from "../lib/cli/errors.ts";
import { runMain } from "../lib/cli/main.ts";
import { FINAL_STATUSES, type RunStatus } from "../lib/registry/schema.ts";
import { DaemonClient } from "./daemon/client.ts";
import { healthText, isProgramLogLine, runDetails, runTable } from "./daemon/format.ts";
import { daemonPaths } from "./daemon/paths.ts";
import { PATH_FLAGS, PATH_VARIABLES, SUBMISSION_VARIABLES } from "./daemon/submission/variables.ts";
import type { RunView } from "./daemon/view.ts";

const NAME = "baton";
const HELP = `Usage: npm run baton -- [--socket PATH | --out DIR] COMMAND

  submit [--slots N] [--sweep] [--name TEXT] [flags…]
                      queue a run of npm run pipeline with these flags (--sweep: npm run dpo-sweep),
                      the pipeline's variables taken from this environment; --slots: GPUs it needs [1]
  ls [--status S]     runs, newest first
  show ID             one run: its command, slots, exit, outputs
  logs ID [-f]        its log; -f follows it until the run ends
  stop ID [--reason TEXT]
                      stop it (TERM, its STOP_GRACE_SEC to save, then KILL); a queued run is cancelled
  health              the daemon: version, uptime, slots, queue

  --json (ls, show, health, submit): print the API's JSON answer
  --socket PATH       the daemon's socket [BATON_SOCKET, else <out>/daemon/baton.sock]
  --out DIR           the daemon's out root [out]
`;

runMain(NAME, async () => {
  const argv = process.argv.slice(2);
  let socket = process.env.BATON_SOCKET || null;
  let out = "out";
  while (argv[0] === "--socket" || argv[0] === "--out") {
    const [flag, value] = argv.splice(0, 2);
    if (value === undefined) throw new UserError(`${flag}: expected a path`);
    if (flag === "--socket") socket = value;
    else out = value;
  }
  const command = argv.shift();
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(HELP);
    return command === undefined ? EXIT.badInput : EXIT.ok;
  }
  const client = new DaemonClient({ socket: resolve(socket ?? daemonPaths(resolve(out)).socket) });
  const json = take(argv, "--json");
  const print = (text: string): void => void process.stdout.write(text);
  switch (command) {
    case "submit": {
      const run = await client.json<RunView>("POST", "/api/v1/runs", submission(argv));
      print(json ? `${JSON.stringify(run)}\n` : `submitted run ${run.id} (${run.status})\n`);
      return EXIT.ok;
    }
    case "ls": {
      const status = option(argv, "--status");
      noMore(argv, command);
      const { runs } = await client.json<{ runs: RunView[] }>(
        "GET",
        `/api/v1/runs${status ? `?status=${encodeURIComponent(status)}` : ""}`,
      );
      print(json ? `${JSON.stringify(runs)}\n` : runs.length === 0 ? "no runs\n" : runTable(runs));
      return EXIT.ok;
    }
    case "show": {
      const run = await client.json<RunView>("GET", `/api/v1/runs/${runId(argv, command)}`);
      print(json ? `${JSON.stringify(run)}\n` : runDetails(run));
      return EXIT.ok;
    }
    case "stop": {
      const reason = option(argv, "--reason") ?? "asked with npm run baton -- stop";
      const run = await client.json<RunView>("POST", `/api/v1/runs/${runId(argv, command)}/stop`, { reason });
      print(
        json
          ? `${JSON.stringify(run)}\n`
          : `run ${run.id}: ${run.status === "cancelled" ? "cancelled" : "stopping"}\n`,
      );
      return EXIT.ok;
    }
    case "logs": {
      const follow = take(argv, "-f") || take(argv, "--follow");
      return logs(client, runId(argv, command), follow, print);
    }
    case "health": {
      noMore(argv, command);
      const health = await client.json<Record<string, unknown>>("GET", "/api/v1/health");
      print(json ? `${JSON.stringify(health)}\n` : healthText(health));
      return EXIT.ok;
    }
    default:
      throw new UserError(
        `unknown command ${JSON.stringify(command)} (expected submit, ls, show, logs, stop or health; see --help)`,
      );
  }
});

/** The submission document for `submit`'s arguments and this environment. */
function submission(argv: string[]): object {
  const split = argv.indexOf("--");
  const own = split === -1 ? argv : argv.slice(0, split);
  const slotsText = option(own, "--slots") ?? option(own, "--gpus");
  const sweep = take(own, "--sweep");
  const name = option(own, "--name");
  const args = [...own, ...(split === -1 ? [] : argv.slice(split))];
  const env: Record<string, string> = {};
  for (const variable of SUBMISSION_VARIABLES) {
    const value = process.env[variable];
    if (value === undefined) continue;
    env[variable] = PATH_VARIABLES.has(variable) && value !== "" ? resolve(value) : value;
  }
  if (slotsText !== undefined && !/^\d+$/.test(slotsText))
    throw new UserError(`--slots ${JSON.stringify(slotsText)}: expected a whole number`);
  return {
    version: 1,
    kind: sweep ? "sweep" : "pipeline",
    ...(name === undefined ? {} : { name }),
    args: absolutePaths(args),
    env,
    ...(slotsText === undefined ? {} : { slots: Number(slotsText) }),
  };
}

/** Path flags' relative values made absolute against this directory. */
function absolutePaths(args: string[]): string[] {
  const result = [...args];
  for (let i = 0; i < result.length; i++) {
    const token = result[i] as string;
    const match = /^--?([A-Za-z][\w-]*)(=(.*))?$/.exec(token);
    if (!match) continue;
    const exempt = PATH_FLAGS.get((match[1] as string).replaceAll("-", "_"));
    if (exempt === undefined) continue;
    if (match[2] !== undefined) {
      if (!exempt.has(match[3] as string)) result[i] = `--${match[1]}=${resolve(match[3] as string)}`;
    } else if (
      i + 1 < result.length &&
      !(result[i + 1] as string).startsWith("-") &&
      !exempt.has(result[i + 1] as string)
    ) {
      result[i + 1] = resolve(result[i + 1] as string);
    }
  }
  return result;
}

/** Print the log so far, then (with -f) its new lines from the event stream until the run ends. */
async function logs(
  client: DaemonClient,
  id: number,
  follow: boolean,
  print: (text: string) => void,
): Promise<number> {
  const run = await client.json<RunView>("GET", `/api/v1/runs/${id}`);
  // Up to the offset its stored events end at; the stream carries on from its last event.
  const until = follow ? run.log_offset : Number.MAX_SAFE_INTEGER;
  let offset = 0;
  for (;;) {
    const answer = await client.call(
      "GET",
      `/api/v1/runs/${id}/log?offset=${offset}&limit=${Math.min(4 << 20, until - offset)}`,
    );
    if (answer.status !== 200) throw new UserError(answer.body.trim());
    print(
      answer.body
        .split("\n")
        .filter((line) => !isProgramLogLine(line))
        .join("\n"),
    );
    const next = Number(answer.headers["x-next-offset"]);
    if (next === offset || next >= until) break;
    offset = next;
  }
  // Still interrupted when asked: the daemon queues a resumed run again in the same turn.
  if (!follow || FINAL_STATUSES.has(run.status)) return EXIT.ok;
  await client.stream(
    `/api/v1/runs/${id}/events/stream`,
    (_seq, message) => {
      const { type, data } = message as {
        type: string;
        data: { text?: string; count?: number; status?: RunStatus; resumes?: boolean };
      };
      if (type === "line") print(`${data.text}\n`);
      else if (type === "dropped") print(`(${data.count} lines not shown: a flood; the log has them)\n`);
      // An interrupted run the daemon queues again goes on: follow it into its next attempt.
      else if (
        type === "state" &&
        data.status !== undefined &&
        FINAL_STATUSES.has(data.status) &&
        !data.resumes
      )
        return false;
      return true;
    },
    run.last_seq,
  );
  return EXIT.ok;
}

function take(argv: string[], flag: string): boolean {
  const index = argv.indexOf(flag);
  if (index === -1) return false;
  argv.splice(index, 1);
  return true;
}

function option(argv: string[], flag: string): string | undefined {
  const index = argv.indexOf(flag);
  if (index === -1) return undefined;
  const value = argv[index + 1];
  if (value === undefined) throw new UserError(`${flag}: expected a value`);
  argv.splice(index, 2);
  return value;
}

function runId(argv: string[], command: string): number {
  const text = argv.shift();
  if (text === undefined || !/^\d+$/.test(text))
    throw new UserError(`${command}: expected a run id (see npm run baton -- ls)`);
  noMore(argv, command);
  return Number(text);
}

function noMore(argv: string[], command: string): void {
  if (argv.length > 0) throw new UserError(`${command}: unexpected ${JSON.stringify(argv[0])} (see --help)`);
}
