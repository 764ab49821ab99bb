/**
 * A client of the daemon's API over its Unix socket (or a URL with a token): what `npm run baton`
 * and the tests use. Errors are one line: the daemon's own answer, or that no daemon listens.
 */
import { type RequestOptions, request } from "node:http";
import { EXIT, isNodeError, UserError } from "../../lib/cli/errors.ts";

export interface DaemonAddress {
  socket?: string;
  url?: string;
  token?: string;
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export class DaemonClient {
  constructor(readonly address: DaemonAddress) {}

  async call(method: string, path: string, body?: unknown): Promise<Answer> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request({ ...this.#target(path), method, headers: this.#headers(payload) }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString("utf8"),
          }),
        );
        res.on("error", reject);
      });
      req.on("error", (error) => reject(this.#unreachable(error)));
      req.end(payload);
    });
  }

  /** The JSON answer of a call that must succeed; a refusal becomes a UserError with the daemon's words. */
  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const answer = await this.call(method, path, body);
    if (answer.status >= 400) {
      throw new UserError(
        answer.body.trim() || `HTTP ${answer.status}`,
        answer.status >= 500 ? EXIT.failure : EXIT.badInput,
      );
    }
    return JSON.parse(answer.body) as T;
  }

  /**
   * Follow an event stream: `onMessage` gets each message with an id (its data parsed); return
   * false from it to stop. Resolves when the stream ends or is stopped.
   */
  async stream(
    path: string,
    onMessage: (id: number, data: unknown) => boolean | undefined,
    lastId?: number,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { ...this.#headers(undefined), accept: "text/event-stream" };
      if (lastId !== undefined) headers["last-event-id"] = String(lastId);
      const req = request({ ...this.#target(path), headers }, (res) => {
        if ((res.statusCode ?? 0) >= 400) {
          let text = "";
          res.on("data", (chunk) => {
            text += chunk;
          });
          res.on("end", () => reject(new UserError(text.trim() || `HTTP ${res.statusCode}`)));
          return;
        }
        res.setEncoding("utf8");
        let buffer = "";
        let id: number | null = null;
        let data: string[] = [];
        res.on("data", (chunk: string) => {
          buffer += chunk;
          for (let newline = buffer.indexOf("\n"); newline !== -1; newline = buffer.indexOf("\n")) {
            const line = buffer.slice(0, newline);
            buffer = buffer.slice(newline + 1);
            if (line === "") {
              if (id !== null && data.length > 0 && onMessage(id, JSON.parse(data.join("\n"))) === false) {
                req.destroy();
                resolve();
                return;
              }
              id = null;
              data = [];
            } else if (line.startsWith("id: ")) id = Number(line.slice(4));
            else if (line.startsWith("data: ")) data.push(line.slice(6));
          }
        });
        res.on("end", () => resolve());
        res.on("error", () => resolve());
      });
      req.on("error", (error) => reject(this.#unreachable(error)));
      req.end();
    });
  }

  #target(path: string): RequestOptions {
    if (this.address.url === undefined) return { socketPath: this.address.socket as string, path };
    const url = new URL(path, this.address.url);
    return { hostname: url.hostname, port: url.port, path: `${url.pathname}${url.search}` };
  }

  #headers(payload: string | undefined): Record<string, string> {
    const headers: Record<string, string> = this.address.url === undefined ? { host: "localhost" } : {};
    if (payload !== undefined) headers["content-type"] = "application/json";
    if (this.address.token) headers.authorization = `Bearer ${this.address.token}`;
    return headers;
  }

  #unreachable(error: Error): Error {
    const code = isNodeError(error) ? error.code : undefined;
    if (code === "ENOENT" || code === "ECONNREFUSED") {
      return new UserError(
        `no daemon answers on ${this.address.socket ?? this.address.url} (start one with npm run daemon)`,
        EXIT.failure,
      );
    }
    return error;
  }
}
