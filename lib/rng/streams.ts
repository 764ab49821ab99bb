import { UserError } from "../cli/errors.ts";
import { parseRngState, Rng, type RngState } from "./rng.ts";

export const RNG_STREAMS_FORMAT_VERSION = 1;

/** The `rng.json` checkpoint file: every named stream's exact state. */
export interface RngStreamsFile {
  format_version: typeof RNG_STREAMS_FORMAT_VERSION;
  streams: Record<string, RngState>;
}

/** The `rng.json` object for a set of named streams (write it with JSON.stringify or rngStreamsToJson). */
export function rngStreamsFile(streams: Readonly<Record<string, Rng>>): RngStreamsFile {
  const states: Record<string, RngState> = {};
  for (const [name, rng] of Object.entries(streams)) states[name] = rng.state();
  return { format_version: RNG_STREAMS_FORMAT_VERSION, streams: states };
}

/** `rng.json` text, ready to hand to saveCheckpoint as a file. */
export function rngStreamsToJson(streams: Readonly<Record<string, Rng>>): string {
  return `${JSON.stringify(rngStreamsFile(streams), null, 2)}\n`;
}

/**
 * Restore named streams from `rng.json` text or its parsed object. `source` names the file in
 * errors; anything malformed is a UserError.
 */
export function rngStreamsFromJson(input: string | unknown, source = "rng.json"): Record<string, Rng> {
  let parsed: unknown = input;
  if (typeof input === "string") {
    try {
      parsed = JSON.parse(input);
    } catch {
      throw new UserError(`${source}: not valid JSON`);
    }
  }
  const file = parsed as Partial<RngStreamsFile> | null;
  if (typeof file !== "object" || file === null || file.format_version !== RNG_STREAMS_FORMAT_VERSION) {
    throw new UserError(
      `${source}: expected {"format_version": ${RNG_STREAMS_FORMAT_VERSION}, "streams": {…}}`,
    );
  }
  if (typeof file.streams !== "object" || file.streams === null || Array.isArray(file.streams)) {
    throw new UserError(`${source}: "streams" must be an object of named RNG states`);
  }
  const streams: Record<string, Rng> = {};
  for (const [name, state] of Object.entries(file.streams)) {
    streams[name] = Rng.fromState(parseRngState(state, `${source}: stream ${JSON.stringify(name)}`));
  }
  return streams;
}
