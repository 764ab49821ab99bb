/**
 * The terminal side of a child's output. runChild prefixes every line with the step's label
 * (`[sft] `, `[dpo:from_step_40] `); the trainers already begin their own lines with their stage
 * tag (`[sft] `, `[dpo] `), so the echo keeps one label only, and drops lines left empty (a
 * trainer's newline that ends a progress bar). Backpressure passes through: while the terminal is
 * behind, this stream reports it (writableLength), and runChild's echo skips lines instead of
 * queueing them (the log file keeps them all).
 */
import { Writable } from "node:stream";

/** `trainerTag`: the tag the child prints itself, dropped after the label (default: the label). */
export function labelledEcho(target: Writable, label: string, trainerTag: string = label): Writable {
  const prefix = `[${label}] `;
  const doubled = new RegExp(`^${escapeRegExp(prefix)}${escapeRegExp(`[${trainerTag}] `)}`, "gm");
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
