/**
 * One Server-Sent Events response that can never hold the server's memory hostage: what the
 * client has not read yet is bounded (`maxBufferedBytes` past the kernel's socket buffer), and a
 * client that falls further behind is cut off — its connection destroyed, its buffer freed —
 * rather than slowing anyone else. A client that reconnects with `Last-Event-ID` picks up where it
 * left off (the sender replays from its store).
 */
import type { IncomingMessage, ServerResponse } from "node:http";

export interface SseOptions {
  /** Bytes queued for this client beyond which it is cut off. */
  maxBufferedBytes: number;
  /** A comment line this often keeps proxies from closing an idle stream (default 15 s; 0: never). */
  keepAliveMs?: number;
  /** Reconnection delay the client is told (default 1 s). */
  retryMs?: number;
  /** Called once when the stream ends, with "cut-off" when this side ended it for being too far behind. */
  onClose?(why: "client" | "cut-off" | "server"): void;
}

export interface SseMessage {
  id?: number | string;
  event?: string;
  /** One line of text (JSON); a newline in it is sent as several data lines. */
  data: string;
}

/** The Last-Event-ID a reconnecting client sends, or `?after=` for a first connection; null when neither. */
export function lastEventId(req: IncomingMessage, url: URL): string | null {
  const header = req.headers["last-event-id"];
  const value = (Array.isArray(header) ? header[0] : header) ?? url.searchParams.get("after");
  return value === undefined || value === null || value === "" ? null : value;
}

export class SseStream {
  readonly #res: ServerResponse;
  readonly #options: SseOptions;
  #open = true;
  #peak = 0;
  #timer: NodeJS.Timeout | null = null;

  constructor(req: IncomingMessage, res: ServerResponse, options: SseOptions) {
    this.#res = res;
    this.#options = options;
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    res.write(`retry: ${options.retryMs ?? 1000}\n\n`);
    const keepAlive = options.keepAliveMs ?? 15_000;
    if (keepAlive > 0) {
      this.#timer = setInterval(() => this.#write(": keep-alive\n\n"), keepAlive);
      this.#timer.unref();
    }
    req.on("close", () => this.#end("client"));
    res.on("close", () => this.#end("client"));
    res.on("error", () => this.#end("client"));
  }

  get open(): boolean {
    return this.#open;
  }

  /** Bytes written but not yet taken by the socket. */
  get buffered(): number {
    return this.#res.writableLength;
  }

  /** The most bytes ever queued for this client (never more than the bound and one message). */
  get peakBuffered(): number {
    return this.#peak;
  }

  /** Whether to wait for drained() before sending more (a replay paces itself by this). */
  get behind(): boolean {
    return this.#res.writableNeedDrain;
  }

  /** Send one message; false when the stream is closed (or this write cut it off). */
  send(message: SseMessage): boolean {
    let frame = "";
    if (message.id !== undefined) frame += `id: ${message.id}\n`;
    if (message.event !== undefined) frame += `event: ${message.event}\n`;
    for (const line of message.data.split("\n")) frame += `data: ${line}\n`;
    return this.#write(`${frame}\n`);
  }

  /** Resolves when the client has taken what is queued, or the stream closed, or `timeoutMs` passed (false). */
  drained(timeoutMs: number): Promise<boolean> {
    if (!this.#open) return Promise.resolve(false);
    if (!this.behind) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        this.#res.off("drain", onDrain);
        this.#res.off("close", onClose);
        resolve(ok && this.#open);
      };
      const onDrain = (): void => done(true);
      const onClose = (): void => done(false);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#res.on("drain", onDrain);
      this.#res.on("close", onClose);
    });
  }

  /** End the stream from this side (shutdown): the client reconnects to whoever serves next. */
  close(): void {
    if (!this.#open) return;
    this.#res.end();
    this.#end("server");
  }

  /** Cut the client off now (a replay it never reads). */
  cutOff(): void {
    if (!this.#open) return;
    this.#res.destroy();
    this.#end("cut-off");
  }

  #write(text: string): boolean {
    if (!this.#open) return false;
    this.#res.write(text);
    this.#peak = Math.max(this.#peak, this.#res.writableLength);
    if (this.#res.writableLength > this.#options.maxBufferedBytes) {
      this.cutOff();
      return false;
    }
    return true;
  }

  #end(why: "client" | "cut-off" | "server"): void {
    if (!this.#open) return;
    this.#open = false;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#options.onClose?.(why);
  }
}
