/**
 * The sweep's results, step by step: a table on the terminal (SFT step → preference accuracy
 * after DPO, and before it) and every metric as CSV in `<dpo>/sweep_report.csv`, written
 * atomically. Built from the queue file alone (each completed line carries its run's evaluation),
 * plus the claim records to tell running lines from pending ones.
 */
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { writeFileAtomic } from "../../lib/fs/atomic.ts";
import { readQueue, resolveEntryPath } from "../../lib/queue/index.ts";
import { displayPath } from "../pipeline/settings.ts";
import { readClaimRecord } from "./claims.ts";
import { identityAlive } from "./process-identity.ts";

export type LineStatus = "completed" | "skipped" | "running" | "pending";

export interface ReportRow {
  step: number;
  status: LineStatus;
  checkpoint: string;
  dpoCheckpoint: string | null;
  metrics: Record<string, number> | null;
  /** Why a line was skipped; who runs a running one. */
  note: string | null;
}

/** Metrics shown first, in this order; the rest follow alphabetically. */
const LEADING_METRICS = [
  "preference_accuracy",
  "baseline_preference_accuracy",
  "reward_accuracy",
  "reward_margin",
];

export async function sweepReportRows(queueFile: string, dpoRoot: string): Promise<ReportRow[]> {
  const claimsDir = join(dpoRoot, ".sweep");
  const rows: ReportRow[] = [];
  for (const entry of await readQueue(queueFile)) {
    const row: ReportRow = {
      step: entry.step,
      status: entry.completed ? (entry.skipped ? "skipped" : "completed") : "pending",
      checkpoint: resolveEntryPath(queueFile, entry),
      dpoCheckpoint: typeof entry.dpo_checkpoint === "string" ? entry.dpo_checkpoint : null,
      metrics: numericMetrics(entry.metrics),
      note: typeof entry.skipped === "string" ? entry.skipped : null,
    };
    if (!entry.completed) {
      const claim = await readClaimRecord(claimsDir, entry.step);
      if (claim !== null && identityAlive(claim) !== false) {
        row.status = "running";
        row.note = `pid ${claim.pid} on ${claim.host}`;
      }
    }
    rows.push(row);
  }
  return rows;
}

export function metricNames(rows: readonly ReportRow[]): string[] {
  const names = new Set<string>();
  for (const row of rows) for (const name of Object.keys(row.metrics ?? {})) names.add(name);
  const leading = LEADING_METRICS.filter((name) => names.has(name));
  const rest = [...names].filter((name) => !LEADING_METRICS.includes(name)).sort();
  return [...leading, ...rest];
}

/** The terminal table: step, status, the leading metrics, the DPO run's final checkpoint. */
export function formatReportTable(rows: readonly ReportRow[]): string {
  if (rows.length === 0) return "(the queue is empty: no SFT checkpoint listed yet)\n";
  const shown = metricNames(rows).filter((name) => LEADING_METRICS.includes(name));
  const header = ["sft step", "status", ...shown.map(columnTitle), "dpo checkpoint"];
  const body = rows.map((row) => [
    String(row.step),
    row.status,
    ...shown.map((name) => formatMetric(row.metrics?.[name])),
    row.dpoCheckpoint === null ? (row.note ?? "") : displayPath(row.dpoCheckpoint),
  ]);
  const widths = header.map((title, i) =>
    Math.max(title.length, ...body.map((cells) => (cells[i] ?? "").length)),
  );
  const line = (cells: string[]): string =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return `${[line(header), ...body.map(line)].join("\n")}\n`;
}

/** Every row and every metric, RFC 4180 CSV. */
export function reportCsv(rows: readonly ReportRow[]): string {
  const names = metricNames(rows);
  const header = ["step", "status", "checkpoint", "dpo_checkpoint", ...names, "note"];
  const body = rows.map((row) => [
    String(row.step),
    row.status,
    row.checkpoint,
    row.dpoCheckpoint ?? "",
    ...names.map((name) => (row.metrics?.[name] === undefined ? "" : String(row.metrics[name]))),
    row.note ?? "",
  ]);
  return [header, ...body].map((cells) => `${cells.map(csvField).join(",")}\r\n`).join("");
}

/** Build the report, write the CSV atomically, and return the table. */
export async function writeSweepReport(
  queueFile: string,
  dpoRoot: string,
  csvFile: string,
): Promise<{ rows: ReportRow[]; table: string; csvFile: string }> {
  const rows = await sweepReportRows(queueFile, dpoRoot);
  await mkdir(dirname(csvFile), { recursive: true });
  await writeFileAtomic(csvFile, reportCsv(rows));
  return { rows, table: formatReportTable(rows), csvFile };
}

function numericMetrics(value: unknown): Record<string, number> | null {
  if (typeof value !== "object" || value === null) return null;
  const entries = Object.entries(value).filter((e): e is [string, number] => typeof e[1] === "number");
  return Object.fromEntries(entries);
}

function columnTitle(name: string): string {
  return name === "baseline_preference_accuracy" ? "before dpo" : name;
}

function formatMetric(value: number | undefined): string {
  return value === undefined ? "—" : value.toFixed(4);
}

function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}
