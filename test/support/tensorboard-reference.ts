/*
 * A plain transcription of what TensorBoard's data provider makes of a logdir (its
 * plugin_event_accumulator with data_compat and dataclass_compat), written the slow, obvious way
 * over the reflection decoder: whole files, plain arrays. Tests hold the board's fast incremental
 * reader against it, and both against the fixtures TensorBoard itself produced.
 */
import { readdirSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { scalarOf } from "../../lib/tensorboard/event-proto.ts";
import { readEvents } from "../../lib/tensorboard/event-reader.ts";

export type Point = [wallTime: number, step: number, value: number];

/** run → tag → points, for every scalar series. */
export type Reference = Map<string, Map<string, Point[]>>;

function runDirs(logdir: string): string[] {
  const dirs: string[] = [];
  const walk = (dir: string): void => {
    const names = readdirSync(dir);
    if (names.some((name) => name.includes("tfevents") && statSync(join(dir, name)).isFile())) dirs.push(dir);
    for (const name of names) if (statSync(join(dir, name)).isDirectory()) walk(join(dir, name));
  };
  walk(logdir);
  return dirs;
}

export async function referenceScalars(logdir: string): Promise<Reference> {
  const result: Reference = new Map();
  for (const dir of runDirs(logdir)) {
    const name = relative(logdir, dir).split(sep).join("/") || ".";
    const files = readdirSync(dir)
      .filter((file) => file.includes("tfevents"))
      .sort();
    let fileVersion: number | null = null;
    let seenStart = false;
    let lastSummaryStep = -1;
    const plugin = new Map<string, string>(); // the run's first metadata of each tag: its plugin
    const points = new Map<string, Point[]>();
    for (const file of files) {
      const fileFirst = new Map<string, string>(); // plugin of each tag's first metadata in this file
      const { events } = await readEvents(join(dir, file));
      for (const event of events) {
        if (event.fileVersion !== undefined)
          fileVersion = Number(event.fileVersion.split("brain.Event:").pop());
        const values = event.summary?.value;
        if (fileVersion !== null && fileVersion >= 2) {
          if (event.sessionLog?.status === "START") {
            if (seenStart)
              for (const [tag, list] of points)
                points.set(
                  tag,
                  list.filter((p) => p[1] < event.step),
                );
            seenStart = true;
          }
        } else if (values && event.step < lastSummaryStep) {
          for (const value of values) {
            const list = points.get(value.tag);
            if (list)
              points.set(
                value.tag,
                list.filter((p) => p[1] < event.step),
              );
          }
        }
        if (event.summary) lastSummaryStep = event.step;
        for (const value of values ?? []) {
          const isSimple = value.simpleValue !== undefined;
          const pluginName = isSimple ? "scalars" : value.metadata?.pluginData?.pluginName;
          const hasMetadata = isSimple || value.metadata !== undefined;
          if (hasMetadata && !fileFirst.has(value.tag)) fileFirst.set(value.tag, pluginName ?? "");
          if (hasMetadata && !plugin.has(value.tag)) plugin.set(value.tag, fileFirst.get(value.tag) ?? "");
          const number = scalarOf(value);
          if (number === undefined) continue;
          points.set(value.tag, [...(points.get(value.tag) ?? []), [event.wallTime, event.step, number]]);
        }
      }
    }
    const scalars = new Map<string, Point[]>();
    for (const [tag, list] of points) if (plugin.get(tag) === "scalars") scalars.set(tag, list);
    result.set(name, scalars);
  }
  return result;
}
