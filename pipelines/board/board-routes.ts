/*
 * The page's own data: run descriptions (tags, resume points, files and their problems), every
 * point of a tag's series in a compact binary form (24 bytes a point, no parsing), and the change
 * stream. The TensorBoard endpoints stay the reference; these carry the same points.
 */
import type { LogdirScalars } from "../../lib/tensorboard/logdir-scalars.ts";
import type { ChangeFeed } from "./feed.ts";
import { HttpError, type Route, sendJson } from "./http.ts";

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
 * its float64 wall times, steps and values (each `length` long). The columns are written straight
 * from the series' storage (no copy), so answering 100 runs costs no memory of its own.
 */
export function seriesPieces(
  scalars: LogdirScalars,
  tag: string,
  runs: string[] | null,
  seq: number,
): Buffer[] {
  const wanted = runs ?? scalars.runNames();
  const found = wanted.flatMap((run) => {
    const series = scalars.run(run)?.scalars.series(tag);
    return series ? [{ run, snapshot: series.snapshot() }] : [];
  });
  const header = Buffer.from(
    JSON.stringify({ seq, tag, runs: found.map(({ run, snapshot }) => ({ run, length: snapshot.length })) }),
    "utf8",
  );
  const lead = Buffer.alloc(Math.ceil((4 + header.byteLength) / 8) * 8);
  lead.writeUInt32LE(header.byteLength, 0);
  header.copy(lead, 4);
  const pieces: Buffer[] = [lead];
  const bytes = (view: Float64Array) => Buffer.from(view.buffer, view.byteOffset, view.byteLength);
  for (const { snapshot } of found) {
    for (const column of [snapshot.wallTime, snapshot.step, snapshot.value])
      pieces.push(...column.map(bytes));
  }
  return pieces;
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
      handle: (req, res, url) => {
        const tag = url.searchParams.get("tag");
        if (tag === null) throw new HttpError(400, "Invalid argument: tag must be specified");
        const runs = url.searchParams.getAll("run");
        const pieces = seriesPieces(scalars, tag, runs.length > 0 ? runs : null, feed.currentSeq());
        res.writeHead(200, {
          "content-type": "application/octet-stream",
          "content-length": String(pieces.reduce((sum, piece) => sum + piece.byteLength, 0)),
          "cache-control": "no-store",
        });
        if (req.method === "HEAD") {
          res.end();
          return;
        }
        res.cork();
        for (const piece of pieces) res.write(piece);
        res.end();
      },
    },
    {
      path: "/baton/events",
      handle: (req, res) => feed.attach(req, res),
    },
  ];
}
