/**
 * The run registry: one SQLite file (better-sqlite3) in WAL mode with synchronous=NORMAL — a
 * commit is durable against a crash of the process (the WAL is in the OS's hands at once) and
 * against power loss up to the last checkpoint — small transactions, and a periodic
 * `wal_checkpoint(TRUNCATE)` so the WAL file stays small. Knows runs and events, nothing about
 * what a run runs. Synchronous by design: each write is a short transaction on the caller's thread,
 * timed (stats()) so its latency stays visible.
 */
import { statSync } from "node:fs";
import Database from "better-sqlite3";
import { UserError } from "../cli/errors.ts";
import { type LatencySummary, LatencyWindow } from "./latency.ts";
import {
  type EventRow,
  type NewRun,
  type RunPatch,
  type RunRow,
  type RunStatus,
  SCHEMA,
  SCHEMA_VERSION,
  UPDATABLE_COLUMNS,
} from "./schema.ts";

export interface RegistryStats {
  writes: LatencySummary;
  checkpoints: LatencySummary;
  /** Bytes of the -wal file now, and the most seen at any write. */
  walBytes: number;
  walPeakBytes: number;
}

const UPDATABLE = new Set<string>(UPDATABLE_COLUMNS);

export class RunRegistry {
  readonly path: string;
  readonly #db: Database.Database;
  readonly #writeTimes = new LatencyWindow();
  readonly #checkpointTimes = new LatencyWindow();
  /** Last event seq of each run touched, so an append needs no read; reset when a write fails. */
  readonly #lastSeq = new Map<number, number>();
  readonly #touched = new Set<number>();
  readonly #updates = new Map<string, Database.Statement>();
  #walPeak = 0;
  #timer: NodeJS.Timeout | null = null;
  readonly #stmt: {
    insertRun: Database.Statement;
    setLogPath: Database.Statement;
    getRun: Database.Statement;
    lastSeq: Database.Statement;
    setLastSeq: Database.Statement;
    insertEvent: Database.Statement;
    eventsAfter: Database.Statement;
    allEventsAfter: Database.Statement;
    eventsOfTypes: Database.Statement;
    lastOfTypes: Database.Statement;
    lastEventId: Database.Statement;
    groupedMax: Database.Statement;
    byStatus: Database.Statement;
    list: Database.Statement;
    listStatus: Database.Statement;
    countStatus: Database.Statement;
  };

  /**
   * Open (creating it if need be) the registry at `path`; its folder must exist. Any failure — no
   * such folder, not a database, a schema newer than this Baton's — is a UserError naming the file,
   * with the handle closed.
   */
  static open(path: string): RunRegistry {
    let db: Database.Database | null = null;
    try {
      db = new Database(path);
      return new RunRegistry(path, db);
    } catch (error) {
      try {
        db?.close();
      } catch {
        // The error that matters is the one below.
      }
      if (error instanceof UserError) throw error;
      throw new UserError(`cannot open the run registry ${path}: ${(error as Error).message}`);
    }
  }

  private constructor(path: string, db: Database.Database) {
    this.path = path;
    this.#db = db;
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.pragma("busy_timeout = 5000");
    db.pragma("foreign_keys = ON");
    // After a checkpoint the WAL is cut back to this size, whatever a burst made it.
    db.pragma(`journal_size_limit = ${16 * 1024 * 1024}`);
    const version = db.pragma("user_version", { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new UserError(
        `the run registry ${path} has schema version ${version}, newer than this Baton's ${SCHEMA_VERSION}: use a newer Baton`,
      );
    }
    db.exec(SCHEMA);
    if (version < SCHEMA_VERSION) db.pragma(`user_version = ${SCHEMA_VERSION}`);
    this.#stmt = {
      insertRun: db.prepare(
        `INSERT INTO runs (status, kind, name, config, config_digest, slots_requested, submitted_at, log_path)
         VALUES (@status, @kind, @name, @config, @config_digest, @slots_requested, @submitted_at, '')`,
      ),
      setLogPath: db.prepare("UPDATE runs SET log_path = ? WHERE id = ?"),
      getRun: db.prepare("SELECT * FROM runs WHERE id = ?"),
      lastSeq: db.prepare("SELECT last_seq FROM runs WHERE id = ?"),
      setLastSeq: db.prepare("UPDATE runs SET last_seq = ? WHERE id = ?"),
      insertEvent: db.prepare("INSERT INTO events (run_id, seq, at, type, data) VALUES (?, ?, ?, ?, ?)"),
      eventsAfter: db.prepare("SELECT * FROM events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?"),
      allEventsAfter: db.prepare("SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?"),
      // By type, not by seq: the types asked for are a few rows among a run's millions of lines.
      eventsOfTypes: db.prepare(
        "SELECT * FROM events INDEXED BY events_by_type WHERE run_id = ? AND type IN (SELECT value FROM json_each(?)) ORDER BY seq LIMIT ?",
      ),
      lastOfTypes: db.prepare(
        "SELECT * FROM events WHERE run_id = ? AND type IN (SELECT value FROM json_each(?)) ORDER BY seq DESC LIMIT 1",
      ),
      lastEventId: db.prepare("SELECT COALESCE(MAX(id), 0) AS id FROM events"),
      groupedMax: db.prepare(
        `SELECT json_extract(data, '$.' || @key) AS key, MAX(json_extract(data, '$.' || @value)) AS max,
                COUNT(*) AS count, MAX(at) AS last_at
         FROM events WHERE run_id = @run AND type = @type GROUP BY 1 ORDER BY MIN(seq)`,
      ),
      byStatus: db.prepare("SELECT * FROM runs WHERE status = ? ORDER BY id"),
      list: db.prepare("SELECT * FROM runs WHERE id < ? ORDER BY id DESC LIMIT ?"),
      listStatus: db.prepare("SELECT * FROM runs WHERE status = ? AND id < ? ORDER BY id DESC LIMIT ?"),
      countStatus: db.prepare("SELECT status, COUNT(*) AS n FROM runs GROUP BY status"),
    };
  }

  /**
   * Run `body` as one transaction (a nested call joins the outer one); its duration is recorded.
   * Keep bodies small: the registry is synchronous and the daemon's event loop waits for it.
   */
  write<T>(body: () => T): T {
    const started = performance.now();
    try {
      return this.#db.transaction(() => {
        const result = body();
        for (const runId of this.#touched) this.#stmt.setLastSeq.run(this.#lastSeq.get(runId), runId);
        this.#touched.clear();
        return result;
      })();
    } catch (error) {
      this.#lastSeq.clear();
      this.#touched.clear();
      throw error;
    } finally {
      this.#writeTimes.add(performance.now() - started);
      this.#walPeak = Math.max(this.#walPeak, this.walBytes());
    }
  }

  /** A new run (inside write()); `log_path` is given its id. */
  insertRun(run: NewRun): RunRow {
    const { lastInsertRowid } = this.#stmt.insertRun.run({
      status: run.status,
      kind: run.kind,
      name: run.name,
      config: run.config,
      config_digest: run.config_digest,
      slots_requested: run.slots_requested,
      submitted_at: run.submitted_at,
    });
    const id = Number(lastInsertRowid);
    this.#stmt.setLogPath.run(run.log_path(id), id);
    return this.getRun(id) as RunRow;
  }

  updateRun(id: number, patch: RunPatch): void {
    const columns = Object.keys(patch).filter((key) => patch[key as keyof RunPatch] !== undefined);
    if (columns.length === 0) return;
    for (const column of columns) {
      if (!UPDATABLE.has(column)) throw new Error(`RunRegistry.updateRun: ${column} cannot be set`);
    }
    const key = columns.join(",");
    let statement = this.#updates.get(key);
    if (statement === undefined) {
      statement = this.#db.prepare(
        `UPDATE runs SET ${columns.map((column) => `${column} = @${column}`).join(", ")} WHERE id = @id`,
      );
      this.#updates.set(key, statement);
    }
    statement.run({ ...patch, id });
  }

  /** Append one event to a run (inside write()); it gets the run's next seq. */
  appendEvent(runId: number, type: string, data: object, at: string = new Date().toISOString()): EventRow {
    let last = this.#lastSeq.get(runId);
    if (last === undefined) {
      const row = this.#stmt.lastSeq.get(runId) as { last_seq: number } | undefined;
      if (row === undefined) throw new Error(`RunRegistry.appendEvent: no run ${runId}`);
      last = row.last_seq;
    }
    const seq = last + 1;
    const json = JSON.stringify(data);
    const { lastInsertRowid } = this.#stmt.insertEvent.run(runId, seq, at, type, json);
    this.#lastSeq.set(runId, seq);
    this.#touched.add(runId);
    return { id: Number(lastInsertRowid), run_id: runId, seq, at, type, data: json };
  }

  getRun(id: number): RunRow | undefined {
    return this.#stmt.getRun.get(id) as RunRow | undefined;
  }

  runsWithStatus(status: RunStatus): RunRow[] {
    return this.#stmt.byStatus.all(status) as RunRow[];
  }

  /** Newest first, below `beforeId` (paging). */
  listRuns(options: { status?: RunStatus; limit?: number; beforeId?: number } = {}): RunRow[] {
    const before = options.beforeId ?? Number.MAX_SAFE_INTEGER;
    const limit = options.limit ?? 100;
    return (
      options.status === undefined
        ? this.#stmt.list.all(before, limit)
        : this.#stmt.listStatus.all(options.status, before, limit)
    ) as RunRow[];
  }

  countByStatus(): Partial<Record<RunStatus, number>> {
    const counts: Partial<Record<RunStatus, number>> = {};
    for (const row of this.#stmt.countStatus.all() as Array<{ status: RunStatus; n: number }>) {
      counts[row.status] = row.n;
    }
    return counts;
  }

  /** A run's events with seq above `afterSeq`, in order. */
  eventsAfter(runId: number, afterSeq: number, limit = 500): EventRow[] {
    return this.#stmt.eventsAfter.all(runId, afterSeq, limit) as EventRow[];
  }

  /** Every run's events with id above `afterId`, in order. */
  allEventsAfter(afterId: number, limit = 500): EventRow[] {
    return this.#stmt.allEventsAfter.all(afterId, limit) as EventRow[];
  }

  /** A run's events of these types, in order (at most `limit`). */
  eventsOfTypes(runId: number, types: readonly string[], limit = 1000): EventRow[] {
    return this.#stmt.eventsOfTypes.all(runId, JSON.stringify(types), limit) as EventRow[];
  }

  /** A run's newest event of these types, if any. */
  lastEventOfTypes(runId: number, types: readonly string[]): EventRow | undefined {
    return this.#stmt.lastOfTypes.get(runId, JSON.stringify(types)) as EventRow | undefined;
  }

  /** The newest event id of any run (0 when there is none). */
  lastEventId(): number {
    return (this.#stmt.lastEventId.get() as { id: number }).id;
  }

  /**
   * A run's events of one type grouped by the data field `key`, in order of first appearance: the
   * highest value of the data field `value`, how many, and when the last came (one query, however many).
   */
  groupedMax(
    runId: number,
    type: string,
    key: string,
    value: string,
  ): Array<{ key: string | null; max: number | null; count: number; last_at: string }> {
    return this.#stmt.groupedMax.all({ run: runId, type, key, value }) as Array<{
      key: string | null;
      max: number | null;
      count: number;
      last_at: string;
    }>;
  }

  /** Make the next run id at least `floor` (ids are never reused, even if the file was replaced). */
  reserveIdsBelow(floor: number): void {
    this.write(() => {
      const row = this.#db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'runs'").get() as
        | { seq: number }
        | undefined;
      if ((row?.seq ?? 0) >= floor - 1) return;
      if (row === undefined)
        this.#db.prepare("INSERT INTO sqlite_sequence (name, seq) VALUES ('runs', ?)").run(floor - 1);
      else this.#db.prepare("UPDATE sqlite_sequence SET seq = ? WHERE name = 'runs'").run(floor - 1);
    });
  }

  /** Fold the WAL back into the database and cut the WAL file to nothing. */
  checkpoint(): void {
    const started = performance.now();
    this.#db.pragma("wal_checkpoint(TRUNCATE)");
    this.#checkpointTimes.add(performance.now() - started);
  }

  /** Checkpoint every `intervalMs` until close(). */
  startCheckpoints(intervalMs: number): void {
    this.#timer ??= setInterval(() => {
      try {
        this.checkpoint();
      } catch {
        // SQLITE_BUSY under a long reader: the next round catches up.
      }
    }, intervalMs);
    this.#timer.unref();
  }

  walBytes(): number {
    try {
      return statSync(`${this.path}-wal`).size;
    } catch {
      return 0;
    }
  }

  stats(): RegistryStats {
    return {
      writes: this.#writeTimes.summary(),
      checkpoints: this.#checkpointTimes.summary(),
      walBytes: this.walBytes(),
      walPeakBytes: this.#walPeak,
    };
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    if (!this.#db.open) return;
    try {
      this.checkpoint();
    } finally {
      this.#db.close();
    }
  }
}
