import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { decodeEvent, scalarOf, type TbEvent } from "./event-proto.ts";
import { decodeRecords, type RecordCorruption } from "./tfrecord.ts";

export interface EventFileContents {
  events: TbEvent[];
  /** The first bad record (torn tail, CRC mismatch, undecodable payload), or null if the file is whole. */
  corruption: RecordCorruption | { offset: number; kind: "decode"; message: string } | null;
}

/** Read and verify an event file: every record's two CRCs, then each payload as an Event. */
export async function readEvents(file: string): Promise<EventFileContents> {
  return parseEvents(await readFile(file));
}

export interface RunEvents {
  /** Events of every event file in the run directory, files in name (≈ creation) order as TensorBoard reads them. */
  events: TbEvent[];
  files: Array<{ path: string; corruption: EventFileContents["corruption"] }>;
}

/** Read all `*tfevents*` files of one run directory (not its subdirectories: those are other runs). */
export async function readRunEvents(runDir: string): Promise<RunEvents> {
  const names = (await readdir(runDir)).filter((name) => name.includes("tfevents")).sort();
  const result: RunEvents = { events: [], files: [] };
  for (const name of names) {
    const path = join(runDir, name);
    const { events, corruption } = await readEvents(path);
    result.events.push(...events);
    result.files.push({ path, corruption });
  }
  return result;
}

export function parseEvents(bytes: Uint8Array): EventFileContents {
  const { records, offsets, corruption } = decodeRecords(bytes);
  const events: TbEvent[] = [];
  for (const [index, record] of records.entries()) {
    const offset = offsets[index] ?? 0;
    try {
      events.push(decodeEvent(record));
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      return {
        events,
        corruption: { offset, kind: "decode", message: `record at byte ${offset}: ${reason}` },
      };
    }
  }
  return { events, corruption };
}

/** Every value of one scalar tag as [step, value] pairs, in file order. */
export function scalarSeries(events: readonly TbEvent[], tag: string): Array<[number, number]> {
  const series: Array<[number, number]> = [];
  for (const event of events) {
    for (const value of event.summary?.value ?? []) {
      const scalar = value.tag === tag ? scalarOf(value) : undefined;
      if (scalar !== undefined) series.push([event.step, scalar]);
    }
  }
  return series;
}
