/** `npm run dpo-sweep`'s own flags, and the pipeline flags they amount to (shared with the daemon, which checks a sweep before it queues it). */
import { UserError } from "../../lib/cli/errors.ts";
import { parseStrictArgs } from "../../lib/cli/flags.ts";
import { type PipelineFlags, parseMaxParallel } from "../pipeline/cli.ts";

export interface SweepFlags {
  help: boolean;
  watch: boolean;
  maxParallel: number;
  report: boolean;
  queue: string | null;
  /** --executor local|slurm (else EXECUTOR). */
  executor?: string;
  /** The arguments after `--`, for every DPO child. */
  rest: string[];
}

export function parseSweepFlags(argv: readonly string[]): SweepFlags {
  const split = argv.indexOf("--");
  const rest = split === -1 ? [] : argv.slice(split + 1);
  const { values } = parseStrictArgs(split === -1 ? argv : argv.slice(0, split), SWEEP_OPTIONS);
  if (values.help) return { help: true, watch: false, maxParallel: 1, report: false, queue: null, rest };
  if (values.report && (values.watch || values["max-parallel"] !== undefined)) {
    throw new UserError("--report trains nothing: it cannot be combined with --watch or --max-parallel");
  }
  return {
    help: false,
    watch: values.watch === true,
    maxParallel: parseMaxParallel(values["max-parallel"]),
    report: values.report === true,
    queue: values.queue ?? null,
    ...(values.executor === undefined ? {} : { executor: values.executor }),
    rest,
  };
}

/** What the pipeline's settings need to know of a sweep's flags. */
export function sweepPipelineFlags(flags: SweepFlags): PipelineFlags {
  return {
    help: false,
    smokeTest: false,
    steps: [],
    inferCheckpoint: null,
    rest: flags.rest,
    dpoSweep: { watch: flags.watch, maxParallel: flags.maxParallel },
    dpoSweepReport: false,
    restart: [],
    ...(flags.executor === undefined ? {} : { executor: flags.executor }),
  };
}

const SWEEP_OPTIONS = {
  help: { type: "boolean", short: "h" },
  watch: { type: "boolean" },
  "max-parallel": { type: "string" },
  report: { type: "boolean" },
  queue: { type: "string" },
  executor: { type: "string" },
} as const;
