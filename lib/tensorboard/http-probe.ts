import { request } from "node:http";

/** Whether a board answers at host:port, and which logdir it serves. */
export interface HttpProbe {
  /** The server answered with some HTTP response. */
  answers: boolean;
  /** The logdir TensorBoard reported at /data/logdir, when it did. */
  logdir?: string;
}

/**
 * Ask a TensorBoard at host:port for its logdir. Any HTTP answer counts as "answers"; the
 * logdir is only reported when /data/logdir returned TensorBoard's JSON.
 */
export function probeTensorBoard(host: string, port: number, timeoutMs = 2000): Promise<HttpProbe> {
  return new Promise((resolve) => {
    const req = request(
      {
        host,
        port,
        path: "/data/logdir",
        method: "GET",
        agent: false,
        timeout: timeoutMs,
        headers: { connection: "close" },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", () => resolve({ answers: true }));
        res.on("end", () =>
          resolve({ answers: true, logdir: logdirFromJson(Buffer.concat(chunks).toString("utf8")) }),
        );
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => resolve({ answers: false }));
    req.end();
  });
}

function logdirFromJson(body: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(body);
    if (parsed && typeof parsed === "object" && "logdir" in parsed && typeof parsed.logdir === "string") {
      return parsed.logdir;
    }
  } catch {
    // Not TensorBoard's JSON: the server answered, which is all we can say.
  }
  return undefined;
}
