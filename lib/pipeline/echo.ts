/**
 * The terminal side of a stage's output. runChild prefixes every line with `[sft] `; the trainers
 * already begin their own lines with `[sft] `, so the echo collapses the doubled prefix, and drops
 * lines left empty (a trainer's newline that ends a progress bar). Backpressure
 * passes through: while the terminal is behind, this stream reports it (writableLength), and
 * runChild's echo skips lines instead of queueing them (the log file keeps them all).
 */
import { Writable } from "node:stream";

export function labelledEcho(target: Writable, label: string): Writable {
  const prefix = `[${label}] `;
  const doubled = new RegExp(`^${escapeRegExp(prefix)}${escapeRegExp(prefix)}`, "gm");
  const empty = new RegExp(`^${escapeRegExp(prefix)}[ \\t\\r]*\n`, "gm");
  return new Writable({
    decodeStrings: false,
    write(chunk: string | Buffer, _encoding, callback) {
      const text = String(chunk).replace(doubled, prefix).replace(empty, "");
      if (target.destroyed || target.writableEnded) {
        callback();
        return;
      }
      if (target.write(text)) {
        callback();
        return;
      }
      const done = (): void => {
        target.off("drain", done);
        target.off("close", done);
        callback();
      };
      target.on("drain", done);
      target.on("close", done);
    },
  });
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
