import { readdir, readFile, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { describeFsError, isNodeError } from "../cli/errors.ts";
import { readFileHashed } from "./hash.ts";
import { parseStepDirName, STATE_FILE, stepDirName } from "./layout.ts";
import { type CheckpointState, parseCheckpointState } from "./state.ts";

/** One `step_NNNNNNNN` directory, as judged by the cheap validity rules (no hashing). */
export interface CheckpointInfo {
  /** Directory name, e.g. "step_00000123". */
  name: string;
  path: string;
  step: number;
  valid: boolean;
  /** Why it is invalid, in words (all problems joined with "; "); null when valid. */
  reason: string | null;
  /** Total size of the regular files directly inside. */
  bytes: number;
  /** The directory's modification time (informational only; "latest" is by step, never by time). */
  mtime: Date;
  /** The parsed state.json when it parsed, even if the checkpoint is invalid for another reason. */
  state: CheckpointState | null;
}

async function folderBytes(path: string): Promise<number> {
  try {
    const entries = await readdir(path, { withFileTypes: true });
    const sizes = await Promise.all(
      entries
        .filter((e) => e.isFile())
        .map((e) =>
          stat(join(path, e.name)).then(
            (s) => s.size,
            () => 0,
          ),
        ),
    );
    return sizes.reduce((sum, size) => sum + size, 0);
  } catch {
    return 0;
  }
}

async function readState(path: string): Promise<{ state: CheckpointState | null; problems: string[] }> {
  let text: string;
  try {
    text = await readFile(join(path, STATE_FILE), "utf8");
  } catch (error) {
    const why = isNodeError(error) && error.code === "ENOENT" ? "missing" : describeFsError(error);
    return { state: null, problems: [`${STATE_FILE}: ${why}`] };
  }
  const parsed = parseCheckpointState(text);
  if ("problem" in parsed) return { state: null, problems: [`${STATE_FILE}: ${parsed.problem}`] };
  return { state: parsed.state, problems: [] };
}

async function fileProblems(path: string, state: CheckpointState): Promise<string[]> {
  const checks = Object.entries(state.files).map(async ([name, entry]) => {
    try {
      const info = await stat(join(path, name));
      if (!info.isFile()) return `${name}: not a regular file`;
      if (info.size !== entry.bytes) return `${name}: ${info.size} bytes, expected ${entry.bytes}`;
      return null;
    } catch (error) {
      return `${name}: ${isNodeError(error) && error.code === "ENOENT" ? "missing" : describeFsError(error)}`;
    }
  });
  return (await Promise.all(checks)).filter((p): p is string => p !== null);
}

/** Every cheap-validity problem of a checkpoint directory (empty when valid). */
async function cheapProblems(
  path: string,
  step: number,
): Promise<{ state: CheckpointState | null; problems: string[] }> {
  const { state, problems } = await readState(path);
  if (!state) return { state, problems };
  if (state.global_step !== step) {
    problems.push(
      `${STATE_FILE}: global_step ${state.global_step} does not match directory ${stepDirName(step)}`,
    );
  }
  problems.push(...(await fileProblems(path, state)));
  return { state, problems };
}

/**
 * Judge one step directory by the cheap rules: state.json parses with every required field,
 * its global_step matches the name, and every listed file exists with the listed size.
 * `path`'s last segment must be a step_NNNNNNNN name.
 */
export async function inspectCheckpoint(path: string): Promise<CheckpointInfo> {
  const name = basename(path);
  const step = parseStepDirName(name);
  if (step === null) throw new Error(`inspectCheckpoint: ${path} is not a step_NNNNNNNN directory`);
  const [dirStat, { state, problems }, bytes] = await Promise.all([
    stat(path).catch(() => null),
    cheapProblems(path, step),
    folderBytes(path),
  ]);
  return {
    name,
    path,
    step,
    valid: problems.length === 0,
    reason: problems.length === 0 ? null : problems.join("; "),
    bytes,
    mtime: dirStat?.mtime ?? new Date(0),
    state,
  };
}

export interface VerifyResult {
  valid: boolean;
  /** Each problem in words, naming the file: "model.safetensors: SHA-256 mismatch (…)". */
  problems: string[];
  state: CheckpointState | null;
  step: number | null;
  /** With `keepContents` and a valid result, every listed file's verified bytes. */
  contents?: Map<string, Uint8Array>;
}

export interface VerifyOptions {
  /** Check every listed file's SHA-256 (default true); false applies only the cheap rules. */
  hashes?: boolean;
  /** Keep each verified file's bytes in memory, so the caller parses exactly what was checked. */
  keepContents?: boolean;
}

/** Full verification of one checkpoint directory: the cheap rules, then every file's SHA-256. */
export async function verifyCheckpoint(path: string, options: VerifyOptions = {}): Promise<VerifyResult> {
  const { hashes = true, keepContents = false } = options;
  const step = parseStepDirName(path);
  if (step === null) {
    return { valid: false, problems: [`${basename(path)}: not a step_NNNNNNNN name`], state: null, step };
  }
  let notADirectory: string | null = "not a directory";
  try {
    if ((await stat(path)).isDirectory()) notADirectory = null;
  } catch (error) {
    notADirectory = describeFsError(error);
  }
  if (notADirectory) return { valid: false, problems: [`${path}: ${notADirectory}`], state: null, step };
  const { state, problems } = await cheapProblems(path, step);
  const contents = keepContents ? new Map<string, Uint8Array>() : undefined;
  if (state && problems.length === 0 && hashes) {
    for (const [name, entry] of Object.entries(state.files)) {
      try {
        const read = await readFileHashed(join(path, name), keepContents);
        if (read.bytes !== entry.bytes) {
          problems.push(`${name}: ${read.bytes} bytes, expected ${entry.bytes}`);
        } else if (read.sha256 !== entry.sha256) {
          problems.push(`${name}: SHA-256 mismatch (expected ${entry.sha256}, got ${read.sha256})`);
        } else if (contents && read.content) {
          contents.set(name, read.content);
        }
      } catch (error) {
        problems.push(`${name}: ${describeFsError(error)}`);
      }
    }
  }
  return { valid: problems.length === 0, problems, state, step, ...(contents ? { contents } : {}) };
}
