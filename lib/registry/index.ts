/** The run registry (docs/daemon.md#the-registry): runs and their append-only events in SQLite. */
export type { LatencySummary } from "./latency.ts";
export { type RegistryStats, RunRegistry } from "./registry.ts";
export {
  type EventRow,
  FINAL_STATUSES,
  type NewRun,
  RUN_STATUSES,
  type RunPatch,
  type RunRow,
  type RunStatus,
} from "./schema.ts";
