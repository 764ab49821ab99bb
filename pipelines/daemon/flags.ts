/** `npm run daemon`'s flags (docs/daemon.md#starting-it). */
import { resolve } from "node:path";
import { UserError } from "../../lib/cli/errors.ts";
import { parseStrictArgs } from "../../lib/cli/flags.ts";
import { parseOnOff, parseWholeNumber } from "../../lib/cli/values.ts";
import { isLoopbackHost } from "../board/access.ts";

export const DEFAULT_DAEMON_PORT = 8420;
export const DEFAULT_DAEMON_HOST = "127.0.0.1";

export interface DaemonFlags {
  help: boolean;
  detach: boolean;
  outRoot: string;
  /** The dashboard's scalar charts read the event files under it. */
  logdir: string;
  host: string;
  port: number;
  token: string | undefined;
  gpus: string | null;
  cpuSlots: number;
  allowPaths: string[];
  autoResume: boolean;
  lineRatePerSec: number;
  lineBurst: number;
  streamBufferBytes: number;
  killMarginMs: number;
}

export const DAEMON_HELP = `Usage: npm run daemon -- [flags]

Runs pipelines and sweeps submitted with npm run baton (or the HTTP API), one after another as GPU
slots free, each in its own process group so it outlives the daemon: a daemon that crashes or is
restarted adopts the runs still going, and queues again (to resume from their checkpoints) those
whose processes died with it. State in <out>/daemon/ (registry.db, runs/<id>/run.log).

Flags:
  --detach               run in the background, output to <out>/daemon/daemon.log
  --out DIR              the out root: runs write here by default, and paths they name must be
                         inside it [out]
  --allow-path DIR       paths inside DIR may be named too (repeat for more)
  --logdir DIR           the event files the dashboard's scalar charts show [the out root]
  --gpus 0,1             the GPUs to hand out, one slot each [CUDA_VISIBLE_DEVICES]; none: CPU slots
  --cpu-slots N          runs at once without GPUs [1]
  --host H, --port P     the HTTP API [${DEFAULT_DAEMON_HOST}:${DEFAULT_DAEMON_PORT}; --port 0: any free port]. Another
                         address than loopback needs BATON_TOKEN (a bearer token on every request)
  --auto-resume BOOL     queue runs found interrupted at start again [true]
  --line-rate N, --line-burst N
                         log lines per second (and at once) of one run that go into its event
                         stream [200, 2000]; the rest are counted (the log file keeps every line)
  --stream-buffer BYTES  unread bytes after which a stream subscriber is cut off [4194304]
  --kill-margin-sec S    after a run's STOP_GRACE_SEC, how much longer a stopped run gets before
                         its process groups are killed [30]
  -h, --help             this text

The Unix socket <out>/daemon/baton.sock (mode 0600) serves the same API without a token.
`;

export function parseDaemonFlags(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): DaemonFlags {
  const { values } = parseStrictArgs(argv, DAEMON_OPTIONS);
  const host = values.host ?? DEFAULT_DAEMON_HOST;
  const token = env.BATON_TOKEN || undefined;
  if (!isLoopbackHost(host) && token === undefined) {
    throw new UserError(
      `--host ${host} is not a loopback address: set BATON_TOKEN, which every request must then carry`,
    );
  }
  const gpus = values.gpus ?? null;
  if (gpus !== null && !/^[\w.:-]+(,[\w.:-]+)*$/.test(gpus)) {
    throw new UserError(
      `--gpus ${JSON.stringify(gpus)}: expected a comma-separated list of GPU ids, like 0,1`,
    );
  }
  return {
    help: values.help === true,
    detach: values.detach === true,
    outRoot: resolve(values.out ?? "out"),
    logdir: resolve(values.logdir ?? values.out ?? "out"),
    host,
    port: whole(values.port, "--port", DEFAULT_DAEMON_PORT, 0, 65535),
    token,
    gpus,
    cpuSlots: whole(values["cpu-slots"], "--cpu-slots", 1, 1, 1024),
    allowPaths: (values["allow-path"] ?? []).map((path) => resolve(path)),
    autoResume: bool(values["auto-resume"], "--auto-resume", true),
    lineRatePerSec: whole(values["line-rate"], "--line-rate", 200, 1, 10_000_000),
    lineBurst: whole(values["line-burst"], "--line-burst", 2000, 1, 10_000_000),
    streamBufferBytes: whole(values["stream-buffer"], "--stream-buffer", 4 * 1024 * 1024, 1024, 1 << 30),
    killMarginMs: whole(values["kill-margin-sec"], "--kill-margin-sec", 30, 0, 86_400) * 1000,
  };
}

const DAEMON_OPTIONS = {
  help: { type: "boolean", short: "h" },
  detach: { type: "boolean" },
  out: { type: "string" },
  logdir: { type: "string" },
  "allow-path": { type: "string", multiple: true },
  gpus: { type: "string" },
  "cpu-slots": { type: "string" },
  host: { type: "string" },
  port: { type: "string" },
  "auto-resume": { type: "string" },
  "line-rate": { type: "string" },
  "line-burst": { type: "string" },
  "stream-buffer": { type: "string" },
  "kill-margin-sec": { type: "string" },
} as const;

function whole(text: string | undefined, flag: string, fallback: number, min: number, max: number): number {
  return text === undefined ? fallback : parseWholeNumber(text, `${flag} ${JSON.stringify(text)}`, min, max);
}

function bool(text: string | undefined, flag: string, fallback: boolean): boolean {
  return text === undefined ? fallback : parseOnOff(text, `${flag} ${JSON.stringify(text)}`, "true or false");
}
