/**
 * Progress of a training run: a live bar on a terminal, plain lines every log interval otherwise
 * (the pipeline reads trainers through pipes, and its logs should read as sentences).
 */
import { SingleBar } from "cli-progress";

export interface ProgressSnapshot {
  step: number;
  total: number;
  epoch: number;
  epochs: number;
  loss: number;
  lr: number;
  tokensPerSecond: number;
  secondsPerStep: number;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export class Progress {
  private readonly bar: SingleBar | null;
  private readonly label: string;

  constructor(label: string, total: number, startStep: number, interactive = Boolean(process.stdout.isTTY)) {
    this.label = label;
    this.bar = interactive
      ? new SingleBar({
          format: `${label} {bar} {value}/{total} | epoch {epoch} | loss {loss} | {tps} tok/s | ETA {eta_text}`,
          barsize: 24,
          hideCursor: true,
          clearOnComplete: false,
        })
      : null;
    this.bar?.start(total, startStep, { epoch: "-", loss: "-", tps: "-", eta_text: "?" });
  }

  update(s: ProgressSnapshot, logLine: boolean): void {
    const eta = formatDuration((s.total - s.step) * s.secondsPerStep);
    if (this.bar) {
      this.bar.update(s.step, {
        epoch: `${s.epoch + 1}/${s.epochs}`,
        loss: s.loss.toFixed(4),
        tps: Math.round(s.tokensPerSecond),
        eta_text: eta,
      });
      return;
    }
    if (!logLine) return;
    const percent = Math.floor((100 * s.step) / Math.max(s.total, 1));
    process.stdout.write(
      `${this.label} step ${s.step}/${s.total} (${percent}%) epoch ${s.epoch + 1}/${s.epochs} ` +
        `loss ${s.loss.toFixed(4)} lr ${s.lr.toExponential(2)} ${Math.round(s.tokensPerSecond)} tok/s ` +
        `${(s.secondsPerStep * 1000).toFixed(0)} ms/step eta ${eta}\n`,
    );
  }

  /** Print a message without breaking the bar. */
  note(message: string): void {
    if (this.bar) {
      process.stdout.write("\n");
    }
    process.stdout.write(`${message}\n`);
  }

  stop(): void {
    this.bar?.stop();
  }
}
