/** A chart's points as files: JSON in TensorBoard's shape per run, CSV with one row per point. */
import type { Series } from "./store.ts";

function save(name: string, type: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function fileName(tag: string, extension: string): string {
  return `${tag.replace(/[^\w.-]+/g, "_")}.${extension}`;
}

/** `{tag, runs: {run: [[wall_time, step, value], …]}}`. */
export function seriesJson(tag: string, series: Series[]): string {
  const runs: Record<string, Array<[number, number, number]>> = {};
  for (const s of series) runs[s.run] = s.points();
  return JSON.stringify({ tag, runs }, (_key, value: unknown) =>
    typeof value === "number" && !Number.isFinite(value) ? String(value) : value,
  );
}

function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** `run,tag,wall_time,step,value` rows. */
export function seriesCsv(tag: string, series: Series[]): string {
  const lines = ["run,tag,wall_time,step,value"];
  for (const s of series) {
    for (const [wall, step, value] of s.points()) {
      lines.push(`${csvField(s.run)},${csvField(tag)},${wall},${step},${value}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

export function downloadJson(tag: string, series: Series[]): void {
  save(fileName(tag, "json"), "application/json", seriesJson(tag, series));
}

export function downloadCsv(tag: string, series: Series[]): void {
  save(fileName(tag, "csv"), "text/csv", seriesCsv(tag, series));
}
