/**
 * A submission checked before it is queued (docs/daemon.md#submitting): the document against its
 * schema (unknown fields refused, each error naming its field), its flags and variables with the
 * pipeline's own parsers (so a bad flag is a 400 now, not a failed run later), every path it names
 * inside the out root or an --allow-path folder, and its slots against the machine. The result is
 * normalised — paths absolute, OUT_DIR set — so that running it again (an interrupted run resumed)
 * means the same.
 */
import { createHash } from "node:crypto";
import { existsSync, realpathSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { Ajv2020, type ErrorObject } from "ajv/dist/2020.js";
import { UserError } from "../../../lib/cli/errors.ts";
import { type FlagLayer, parseFlagGroups } from "../../../lib/cli/flag-layers.ts";
import { suggestFlag } from "../../../lib/cli/flags.ts";
import { splitShellWords } from "../../../lib/cli/shell-words.ts";
import { parsePipelineFlags } from "../../pipeline/cli.ts";
import { type PipelineSettings, pipelineSettings } from "../../pipeline/settings.ts";
import { parseSweepFlags, sweepPipelineFlags } from "../../sweep/flags.ts";
import { type RunKind, SUBMISSION_SCHEMA, type Submission } from "./schema.ts";
import { FLAG_VARIABLES, PATH_FLAGS, PATH_VARIABLES, SUBMISSION_VARIABLES } from "./variables.ts";

export interface SubmissionContext {
  /** Absolute: where runs write by default, and what their paths must stay inside. */
  outRoot: string;
  /** Absolute folders paths may also name (--allow-path). */
  allowPaths: readonly string[];
  /** Where the children run, so where relative paths resolve. */
  cwd: string;
  repo: string;
  slots: { kind: "gpu" | "cpu"; ids: readonly string[] };
}

export interface NormalisedSubmission {
  version: 1;
  kind: RunKind;
  name: string | null;
  args: string[];
  env: Record<string, string>;
  slots: number;
}

export interface AcceptedSubmission {
  submission: NormalisedSubmission;
  digest: string;
  /** What the pipeline will make of it: folders for the run's manifest. */
  settings: PipelineSettings;
}

const ajv = new Ajv2020({ allErrors: false, strict: true });
const validate = ajv.compile<Submission>(SUBMISSION_SCHEMA);

export function acceptSubmission(body: unknown, context: SubmissionContext): AcceptedSubmission {
  if (!validate(body)) throw new UserError(describeSchemaError(validate.errors?.[0]));
  const args = [...(body.args ?? [])];
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(body.env ?? {})) {
    if (PATH_VARIABLES.has(name)) {
      if (value.trim() !== "") env[name] = resolve(context.cwd, value);
    } else env[name] = value;
  }

  let settings: PipelineSettings;
  if (body.kind === "pipeline") {
    const flags = field("args", () => parsePipelineFlags(args));
    if (flags.help) throw new UserError("args: --help only prints the pipeline's help; nothing to run");
    env.OUT_DIR ??= flags.smokeTest ? join(context.outRoot, "smoke") : context.outRoot;
    settings = field("env", () => pipelineSettings(env, flags, context.repo));
  } else {
    const flags = field("args", () => parseSweepFlags(args));
    if (flags.help) throw new UserError("args: --help only prints the sweep's help; nothing to run");
    env.OUT_DIR ??= context.outRoot;
    settings = field("env", () => pipelineSettings(env, sweepPipelineFlags(flags), context.repo));
  }

  const allowed = [context.outRoot, ...context.allowPaths];
  for (const [name, value] of Object.entries(env)) {
    if (PATH_VARIABLES.has(name)) checkPath(`env.${name}`, value, allowed, context);
    if (FLAG_VARIABLES.has(name))
      checkFlagPaths(`env.${name}`, parseFlagGroups(splitShellWords(value, name), name), allowed, context);
  }
  checkFlagPaths(
    "args",
    field("args", () =>
      parseFlagGroups(
        args.filter((arg) => arg !== "--"),
        "args",
      ),
    ),
    allowed,
    context,
  );

  const slots = body.slots ?? 1;
  const { kind, ids } = context.slots;
  if (slots > ids.length) {
    throw new UserError(
      `slots: asks for ${slots}, but this daemon has ${ids.length} ${kind === "gpu" ? "GPU" : "CPU"} slot${ids.length === 1 ? "" : "s"} (${ids.join(", ")})`,
    );
  }
  const submission: NormalisedSubmission = {
    version: 1,
    kind: body.kind,
    name: body.name ?? null,
    args,
    env: Object.fromEntries(Object.entries(env).sort(([a], [b]) => a.localeCompare(b))),
    slots,
  };
  const digest = createHash("sha256")
    .update(JSON.stringify({ kind: submission.kind, args, env: submission.env, slots }))
    .digest("hex");
  return { submission, digest, settings };
}

/** Run a parser of the pipeline's, naming the part of the document its complaint is about. */
function field<T>(name: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof UserError) throw new UserError(`${name}: ${error.message}`);
    throw error;
  }
}

function describeSchemaError(error: ErrorObject | undefined): string {
  if (error === undefined) return "the submission is not valid";
  const at = error.instancePath.slice(1).replaceAll("/", ".");
  const where = at === "" ? "the submission" : at;
  switch (error.keyword) {
    case "additionalProperties": {
      const name = String(error.params.additionalProperty);
      const path = at === "" ? name : `${at}.${name}`;
      if (at === "env") {
        const near = suggestFlag(name, SUBMISSION_VARIABLES);
        if (name === "CUDA_VISIBLE_DEVICES")
          return `env.CUDA_VISIBLE_DEVICES: set by the daemon from the run's slots; ask for slots instead`;
        return `env.${name}: unknown variable — not one the pipeline reads${near ? ` (did you mean ${near}?)` : ""}`;
      }
      const known = Object.keys(SUBMISSION_SCHEMA.properties);
      const near = at === "" ? suggestFlag(name, known) : null;
      return `${path}: unknown field${near ? ` (did you mean ${near}?)` : ""}; expected ${known.join(", ")}`;
    }
    case "required":
      return `${at === "" ? "" : `${at}.`}${String(error.params.missingProperty)}: missing (required)`;
    case "const":
      return `${where}: must be ${JSON.stringify(error.params.allowedValue)} (this daemon reads submission version 1)`;
    case "enum":
      return `${where}: must be one of ${(error.params.allowedValues as unknown[]).join(", ")}`;
    default:
      return `${where}: ${error.message ?? "is not valid"}`;
  }
}

function checkFlagPaths(
  where: string,
  groups: FlagLayer,
  allowed: readonly string[],
  context: SubmissionContext,
): void {
  for (const group of groups) {
    const exempt = PATH_FLAGS.get(group.name);
    if (exempt === undefined) continue;
    const first = group.tokens[0] as string;
    const eq = first.indexOf("=");
    const value = eq !== -1 ? first.slice(eq + 1) : group.tokens[1];
    if (value === undefined || exempt.has(value)) continue;
    checkPath(`${where} ${first.split("=")[0]}`, value, allowed, context);
  }
}

function checkPath(
  where: string,
  value: string,
  allowed: readonly string[],
  context: SubmissionContext,
): void {
  const path = real(resolve(context.cwd, value));
  if (allowed.some((root) => inside(path, real(root)))) return;
  const extra = context.allowPaths.length > 0 ? ` or ${context.allowPaths.join(", ")}` : "";
  throw new UserError(
    `${where}: ${value} is outside the out root ${context.outRoot}${extra} (start the daemon with --allow-path <folder> to allow it)`,
  );
}

function inside(path: string, root: string): boolean {
  const rel = relative(root, path);
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel));
}

/** The path with every symbolic link of its existing part resolved, so a link cannot lead outside. */
function real(path: string): string {
  let existing = path;
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  try {
    return join(realpathSync(existing), relative(existing, path));
  } catch {
    return path;
  }
}
