/*
 * The page's own data: run descriptions (tags, resume points, files and their problems), every
 * point of a tag's series in a compact binary form (24 bytes a point, no parsing), and the change
 * stream. The TensorBoard endpoints stay the reference; these carry the same points.
 */
import type { LogdirScalars } from "../../lib/tensorboard/logdir-scalars.ts";
import type { ChangeFeed } from "./feed.ts";
import { HttpError, type Route, send, sendJson } from "./http.ts";

export interface RunDescription {
  name: string;
  /** Wall time (s) of the run's first event; null while it has none. */
  startTime: number | null;
  tags: Array<{ tag: string; displayName: string; points: number }>;
  /** Every SessionLog START TensorBoard acted on, in order; all but the first are resumes. */
  sessionStarts: Array<{ step: number; wallTime: number; purged: number }>;
  files: Array<{ name: string; size: number; offset: number; records: number }>;
  /** One line per event file the board stopped reading early, and why. */
  problems: string[];
}

export function describeRuns(scalars: LogdirScalars): RunDescription[] {
  return scalars.runNames().map((name) => {
    const loader = scalars.run(name);
    if (!loader) return { name, startTime: null, tags: [], sessionStarts: [], files: [], problems: [] };
    const run = loader.scalars;
    const problems = loader.files.flatMap((file) => (file.problem ? [file.problem.message] : []));
    for (const [tag, count] of run.unreadable) {
      problems.push(`${loader.dir}: ${count} value(s) of ${tag} are not a single number and are left out`);
    }
    return {
      name,
      startTime: run.firstEventTime,
      tags: run.scalarTags().map(({ tag, displayName }) => ({
        tag,
        displayName,
        points: run.series(tag)?.length ?? 0,
      })),
      sessionStarts: run.sessionStarts.map((mark) => ({ ...mark })),
      files: loader.files.map(({ name: file, size, offset, records }) => ({
        name: file,
        size,
        offset,
        records,
      })),
      problems,
    };
  });
}

/**
 * `/baton/series?tag=T[&run=R…]`: a little-endian uint32 header length, the UTF-8 JSON header
 * `{seq, tag, runs: [{run, length}]}`, zero padding to a multiple of 8 bytes, then for each run
 * its float64 wall times, steps and values (each `length` long).
 */
export function encodeSeries(
  scalars: LogdirScalars,
  tag: string,
  runs: string[] | null,
  seq: number,
): Buffer {
  const wanted = runs ?? scalars.runNames();
  const found = wanted.flatMap((run) => {
    const series = scalars.run(run)?.scalars.series(tag);
    return series ? [{ run, series }] : [];
  });
  const header = Buffer.from(
    JSON.stringify({ seq, tag, runs: found.map(({ run, series }) => ({ run, length: series.length })) }),
    "utf8",
  );
  const dataStart = Math.ceil((4 + header.byteLength) / 8) * 8;
  const points = found.reduce((sum, { series }) => sum + series.length, 0);
  const buffer = new ArrayBuffer(dataStart + points * 24);
  const bytes = Buffer.from(buffer);
  bytes.writeUInt32LE(header.byteLength, 0);
  header.copy(bytes, 4);
  let offset = dataStart;
  for (const { series } of found) {
    const n = series.length;
    const wallTime = new Float64Array(buffer, offset, n);
    const step = new Float64Array(buffer, offset + n * 8, n);
    const value = new Float64Array(buffer, offset + n * 16, n);
    series.copyColumns(wallTime, step, value);
    offset += n * 24;
  }
  return bytes;
}

export function boardRoutes(scalars: LogdirScalars, feed: ChangeFeed): Route[] {
  return [
    {
      path: "/baton/status",
      handle: (_req, res) =>
        sendJson(
          res,
          JSON.stringify({ logdir: scalars.logdir, loaded: scalars.loaded, runs: scalars.runNames().length }),
        ),
    },
    {
      path: "/baton/runs",
      handle: (_req, res) => {
        const seq = feed.currentSeq();
        sendJson(
          res,
          JSON.stringify({
            seq,
            logdir: scalars.logdir,
            loaded: scalars.loaded,
            runs: describeRuns(scalars),
          }),
        );
      },
    },
    {
      path: "/baton/series",
      handle: (_req, res, url) => {
        const tag = url.searchParams.get("tag");
        if (tag === null) throw new HttpError(400, "Invalid argument: tag must be specified");
        const runs = url.searchParams.getAll("run");
        const body = encodeSeries(scalars, tag, runs.length > 0 ? runs : null, feed.currentSeq());
        send(res, 200, "application/octet-stream", body);
      },
    },
    {
      path: "/baton/events",
      handle: (req, res) => feed.attach(req, res),
    },
  ];
}
