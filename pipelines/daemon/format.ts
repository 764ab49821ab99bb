/** How `npm run baton` shows runs and the daemon to a person. */
import { isForProgramsOnly, parseLabelledTrainerLine } from "../../lib/stages/protocol.ts";
import type { RunView } from "./view.ts";

export function runTable(runs: readonly RunView[]): string {
  const rows = [["ID", "STATUS", "KIND", "SLOTS", "SUBMITTED", "STEP", "NAME / ARGS"]];
  for (const run of runs) {
    const config = run.config as { args?: string[] };
    rows.push([
      String(run.id),
      run.status,
      run.kind,
      run.gpu_slots?.join(",") ?? String(run.slots_requested),
      run.submitted_at.replace("T", " ").slice(0, 19),
      run.last_step === null ? "" : String(run.last_step),
      run.name ?? (config.args ?? []).join(" ").slice(0, 60),
    ]);
  }
  const widths =
    rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] as string).length))) ?? [];
  return `${rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] as number))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")}\n`;
}

export function runDetails(run: RunView): string {
  const config = run.config as { args?: string[]; env?: Record<string, string> };
  const manifest = run.artifact_manifest as { out_dir?: string; checkpoints?: Record<string, string> };
  const lines = [
    `run ${run.id}${run.name ? ` (${run.name})` : ""}: ${run.status}`,
    `  ${run.kind} ${(config.args ?? []).join(" ")}`,
    ...Object.entries(config.env ?? {}).map(([name, value]) => `  ${name}=${value}`),
    `  slots: ${run.gpu_slots?.join(", ") ?? `${run.slots_requested} wanted`}; attempts ${run.attempts}`,
    `  submitted ${run.submitted_at}${run.started_at ? `, started ${run.started_at}` : ""}${run.finished_at ? `, ended ${run.finished_at}` : ""}`,
  ];
  if (run.last_heartbeat) lines.push(`  last heartbeat ${run.last_heartbeat} (step ${run.last_step})`);
  if (run.exit_code !== null) lines.push(`  exit code ${run.exit_code}`);
  if (run.failure_reason) lines.push(`  ${run.failure_reason}`);
  if (run.dropped_lines > 0)
    lines.push(`  ${run.dropped_lines} log lines not in its stream (the log has them)`);
  lines.push(`  log: ${run.log_path}`);
  if (manifest.out_dir) lines.push(`  outputs: ${manifest.out_dir}`);
  for (const [stage, path] of Object.entries(manifest.checkpoints ?? {}))
    lines.push(`  last ${stage} checkpoint: ${path}`);
  return `${lines.join("\n")}\n`;
}

export function healthText(health: Record<string, unknown>): string {
  const slots = health.slots as {
    kind: string;
    total: number;
    free: number;
    slots: Array<{ id: string; run: number | null }>;
  };
  const registry = health.registry as { writes: { p50Ms: number; p99Ms: number }; walBytes: number };
  return `${[
    `daemon ${health.pid} (Baton ${health.version}), up ${health.uptime_s} s, out root ${health.out_root}`,
    `  ${health.socket} and ${health.url}`,
    `  ${slots.kind} slots: ${slots.slots.map((slot) => `${slot.id}${slot.run === null ? " free" : ` run ${slot.run}`}`).join(", ")}`,
    `  ${health.running} running, ${health.queue_length} queued`,
    `  registry writes p50 ${registry.writes.p50Ms} ms, p99 ${registry.writes.p99Ms} ms; WAL ${registry.walBytes} bytes`,
  ].join("\n")}\n`;
}

/** A trainer's line for programs as the pipeline passes it on (`[sft] HEARTBEAT:120`): not shown in logs. */
export function isProgramLogLine(line: string): boolean {
  const machine = parseLabelledTrainerLine(line);
  return machine !== null && isForProgramsOnly(machine.message);
}
