/** How numbers, steps and times read on axes and in the hover read-out. */

export type XAxis = "step" | "relative" | "wall";

export function formatValue(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e5)) return value.toExponential(4);
  return Number(value.toPrecision(5)).toString();
}

/** An axis label: as short as the tick spacing allows ("5e-4", "0.25", "1.2e+6"). */
export function formatTick(value: number | null): string {
  // uPlot leaves null where a log axis skips a split.
  if (value === null) return "";
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) {
    const [mantissa = "", exponent = ""] = value.toExponential(3).split("e");
    return `${Number(mantissa)}e${exponent}`;
  }
  return String(Number(value.toPrecision(6)));
}

export function formatStep(step: number): string {
  return Math.abs(step) >= 1e6 ? step.toExponential(3) : step.toLocaleString("en-US");
}

/** A duration in seconds as "1h 02m", "3m 05s" or "12.3s". */
export function formatDuration(seconds: number): string {
  const sign = seconds < 0 ? "-" : "";
  let s = Math.abs(seconds);
  if (s < 60) return `${sign}${Number(s.toPrecision(3))}s`;
  const days = Math.floor(s / 86400);
  s -= days * 86400;
  const hours = Math.floor(s / 3600);
  s -= hours * 3600;
  const minutes = Math.floor(s / 60);
  const secs = Math.floor(s - minutes * 60);
  const pad = (n: number): string => String(n).padStart(2, "0");
  if (days > 0) return `${sign}${days}d ${pad(hours)}h`;
  if (hours > 0) return `${sign}${hours}h ${pad(minutes)}m`;
  return `${sign}${minutes}m ${pad(secs)}s`;
}

export function formatWallTime(seconds: number): string {
  const date = new Date(seconds * 1000);
  const pad = (n: number): string => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(
    date.getMinutes(),
  )}:${pad(date.getSeconds())}`;
}

/** A wall time without the year, for the hover read-out. */
export function formatShortWallTime(seconds: number): string {
  return formatWallTime(seconds).slice(5);
}

export function formatX(axis: XAxis, x: number): string {
  if (axis === "step") return formatStep(x);
  if (axis === "relative") return formatDuration(x);
  return formatWallTime(x);
}
