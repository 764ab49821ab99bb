/** The board's endpoints, as the page uses them (see pipelines/board/board-routes.ts). */

export interface RunTag {
  tag: string;
  displayName: string;
  points: number;
}

export interface RunDescription {
  name: string;
  startTime: number | null;
  tags: RunTag[];
  sessionStarts: Array<{ step: number; wallTime: number; purged: number }>;
  files: Array<{ name: string; size: number; offset: number; records: number }>;
  problems: string[];
}

export interface RunsAnswer {
  seq: number;
  logdir: string;
  loaded: boolean;
  runs: RunDescription[];
}

export interface SeriesBlock {
  seq: number;
  tag: string;
  runs: Array<{ run: string; wallTime: Float64Array; step: Float64Array; value: Float64Array }>;
}

type Num = number | string;
export type FeedMessage =
  | { seq: number; type: "points"; run: string; tag: string; wallTime: Num[]; step: Num[]; value: Num[] }
  | { seq: number; type: "purge"; run: string; tags: string[] | null; fromStep: number }
  | { seq: number; type: "runs" };

async function get(path: string): Promise<Response> {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${(await response.text()).trim()}`);
  return response;
}

export async function fetchRuns(): Promise<RunsAnswer> {
  return (await (await get("/baton/runs")).json()) as RunsAnswer;
}

/** Every point of `tag` for `runs` (all runs that have it when omitted), zero-copy views on one buffer. */
export async function fetchSeries(tag: string, runs?: string[]): Promise<SeriesBlock> {
  const query = new URLSearchParams({ tag });
  for (const run of runs ?? []) query.append("run", run);
  const buffer = await (await get(`/baton/series?${query}`)).arrayBuffer();
  const headerBytes = new DataView(buffer).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, headerBytes))) as {
    seq: number;
    tag: string;
    runs: Array<{ run: string; length: number }>;
  };
  let offset = Math.ceil((4 + headerBytes) / 8) * 8;
  const block: SeriesBlock = { seq: header.seq, tag: header.tag, runs: [] };
  for (const { run, length } of header.runs) {
    block.runs.push({
      run,
      wallTime: new Float64Array(buffer, offset, length),
      step: new Float64Array(buffer, offset + length * 8, length),
      value: new Float64Array(buffer, offset + length * 16, length),
    });
    offset += length * 24;
  }
  return block;
}

export interface Feed {
  close(): void;
}

/**
 * Follow the change stream. `onOpen` is called with the stream's current number each time it
 * (re)connects: only then may the page fetch, and after a reconnect it must fetch afresh.
 */
export function openFeed(handlers: {
  onOpen(seq: number, reconnected: boolean): void;
  onMessage(message: FeedMessage): void;
  onDown(): void;
}): Feed {
  const source = new EventSource("/baton/events");
  let opened = false;
  source.addEventListener("hello", (event) => {
    const { seq } = JSON.parse((event as MessageEvent<string>).data) as { seq: number };
    handlers.onOpen(seq, opened);
    opened = true;
  });
  source.addEventListener("message", (event) => {
    handlers.onMessage(JSON.parse((event as MessageEvent<string>).data) as FeedMessage);
  });
  source.addEventListener("error", () => handlers.onDown());
  return { close: () => source.close() };
}
