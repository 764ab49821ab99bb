/**
 * Progress of a training run: a live bar on a terminal, plain lines every log interval otherwise
 * (the pipeline reads trainers through pipes, and its logs should read as sentences).
 */
import { SingleBar } from "cli-progress";

/** Tokens per second over the current log window, and milliseconds per update over the session. */
export class Meter {
  #windowStart = performance.now();
  #windowTokens = 0;
  readonly #sessionStart = performance.now();
  #updates = 0;

  add(tokens: number): void {
    this.#windowTokens += tokens;
    this.#updates += 1;
  }

  tokensPerSecond(): number {
    return this.#windowTokens / Math.max((performance.now() - this.#windowStart) / 1000, 1e-9);
  }

  secondsPerUpdate(): number {
    return (performance.now() - this.#sessionStart) / 1000 / Math.max(this.#updates, 1);
  }

  /** Start a new log window. */
  restart(): void {
    this.#windowStart = performance.now();
    this.#windowTokens = 0;
  }
}

export interface ProgressSnapshot {
  step: number;
  total: number;
  /** 0-based; shown 1-based like everywhere else. */
  epoch: number;
  epochs: number;
  loss: number;
  lr: number;
  meter: Meter;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** `loss 1.2345, lr 0.0010`: metrics by name, for one log line. */
export function describeMetrics(metrics: Record<string, number>): string {
  return Object.entries(metrics)
    .map(([name, value]) => `${name} ${value.toFixed(4)}`)
    .join(", ");
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
    const secondsPerStep = s.meter.secondsPerUpdate();
    const tokensPerSecond = s.meter.tokensPerSecond();
    const eta = formatDuration((s.total - s.step) * secondsPerStep);
    if (this.bar) {
      this.bar.update(s.step, {
        epoch: `${s.epoch + 1}/${s.epochs}`,
        loss: s.loss.toFixed(4),
        tps: Math.round(tokensPerSecond),
        eta_text: eta,
      });
      return;
    }
    if (!logLine) return;
    const percent = Math.floor((100 * s.step) / Math.max(s.total, 1));
    process.stdout.write(
      `${this.label} step ${s.step}/${s.total} (${percent}%) epoch ${s.epoch + 1}/${s.epochs} ` +
        `loss ${s.loss.toFixed(4)} lr ${s.lr.toExponential(2)} ${Math.round(tokensPerSecond)} tok/s ` +
        `${(secondsPerStep * 1000).toFixed(0)} ms/step eta ${eta}\n`,
    );
  }

  stop(): void {
    this.bar?.stop();
  }
}
