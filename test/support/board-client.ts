/** Talking to a running board from a test: plain HTTP, the binary series, and the event stream. */
import { request } from "node:http";

export async function getText(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string; headers: Headers }> {
  const response = await fetch(url, { headers: { connection: "close", ...headers }, redirect: "manual" });
  return { status: response.status, text: await response.text(), headers: response.headers };
}

export async function getJson<T>(url: string): Promise<T> {
  const { status, text } = await getText(url);
  if (status !== 200) throw new Error(`${url}: ${status} ${text}`);
  return JSON.parse(text) as T;
}

/** A request with a Host header of our choosing (fetch does not allow setting it). */
export function getWithHost(url: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const req = request(
      { host: target.hostname, port: target.port, path: target.pathname, headers: { host }, agent: false },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

export interface SeriesAnswer {
  seq: number;
  tag: string;
  runs: Map<string, Array<[number, number, number]>>;
}

export async function getSeries(base: string, tag: string): Promise<SeriesAnswer> {
  const response = await fetch(`${base}baton/series?tag=${encodeURIComponent(tag)}`, {
    headers: { connection: "close" },
  });
  const buffer = Buffer.from(await response.arrayBuffer());
  const headerBytes = buffer.readUInt32LE(0);
  const header = JSON.parse(buffer.subarray(4, 4 + headerBytes).toString("utf8")) as {
    seq: number;
    tag: string;
    runs: Array<{ run: string; length: number }>;
  };
  let offset = Math.ceil((4 + headerBytes) / 8) * 8;
  const runs = new Map<string, Array<[number, number, number]>>();
  for (const { run, length } of header.runs) {
    const column = (i: number) => (k: number) => buffer.readDoubleLE(offset + (i * length + k) * 8);
    const [w, s, v] = [column(0), column(1), column(2)];
    runs.set(
      run,
      Array.from({ length }, (_, k) => [w(k), s(k), v(k)]),
    );
    offset += length * 24;
  }
  return { seq: header.seq, tag: header.tag, runs };
}

export interface FeedReader {
  /** Every message so far (the hello included, as `{type: "hello", seq}`). */
  messages: Array<Record<string, unknown>>;
  waitFor(
    test: (message: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  close(): void;
}

/** Read /baton/events as a page's EventSource would. */
export async function openFeed(base: string): Promise<FeedReader> {
  const controller = new AbortController();
  const response = await fetch(`${base}baton/events`, { signal: controller.signal });
  if (!response.body) throw new Error("no event stream");
  const messages: Array<Record<string, unknown>> = [];
  const decoder = new TextDecoder();
  let pending = "";
  const reader = response.body.getReader();
  void (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        pending += decoder.decode(value, { stream: true });
        let end = pending.indexOf("\n\n");
        while (end !== -1) {
          const frame = pending.slice(0, end);
          pending = pending.slice(end + 2);
          const event = /^event: (.+)$/m.exec(frame)?.[1] ?? "message";
          const data = /^data: (.+)$/m.exec(frame)?.[1];
          if (data)
            messages.push(event === "hello" ? { type: "hello", ...JSON.parse(data) } : JSON.parse(data));
          end = pending.indexOf("\n\n");
        }
      }
    } catch {
      // aborted
    }
  })();
  const waitFor = async (test: (message: Record<string, unknown>) => boolean, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = messages.find(test);
      if (found) return found;
      if (Date.now() > deadline)
        throw new Error(`no such message; got ${JSON.stringify(messages).slice(0, 2000)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await waitFor((m) => m.type === "hello");
  return { messages, waitFor, close: () => controller.abort() };
}
