/*
 * The scalars of one run, accumulated exactly as TensorBoard's data-provider path does (its
 * plugin_event_accumulator behind `/data/plugin/scalars/*`, after the data_compat and
 * dataclass_compat read-time migrations), so the curves match what TensorBoard shows:
 *
 * - `simple_value` becomes a scalar with display name = its metadata's display name or the tag;
 *   a tensor value is a scalar when its tag's first metadata names the "scalars" plugin.
 * - A tag's metadata is the first one seen in the run; a tag whose metadata is not of the scalar
 *   data class is not listed.
 * - Orphaned points are purged before the event that reveals them is stored. In a file whose
 *   version is 2 or more (every modern writer's "brain.Event:2"), the run's first SessionLog START
 *   only marks the start of training; every later START at step s discards all points of the run
 *   at steps ≥ s. Without such a version, an event whose step goes back below the last summary's
 *   step discards the points at ≥ its step of the tags it holds.
 * - Every point is kept (TensorBoard's server keeps a reservoir sample of 1000 per series).
 */
import {
  DATA_CLASS_SCALAR,
  DATA_CLASS_UNKNOWN,
  type ScanEvent,
  type ScanMetadata,
  SESSION_START,
} from "./event-scan.ts";
import { ScalarSeries } from "./scalar-series.ts";

export const SCALARS_PLUGIN = "scalars";

/** Told of every change, in order, so a follower can mirror the series without re-reading them. */
export interface ScalarChangeListener {
  append(tag: string, wallTime: number, step: number, value: number): void;
  /** Points at steps ≥ `fromStep` of `tags` (null: every tag of the run) were discarded. */
  purge(tags: readonly string[] | null, fromStep: number): void;
  /** A new scalar tag became listed (its first point follows as an append). */
  tagAdded?(tag: string): void;
}

export interface SessionStartMark {
  step: number;
  wallTime: number;
  /** Points this START discarded (0 for the first START, which TensorBoard does not act on). */
  purged: number;
}

export interface ScalarTagInfo {
  tag: string;
  displayName: string;
  description: string;
}

interface TagMetadata extends ScanMetadata {}

export class RunScalars {
  /** Wall time of the run's first event, the run's start time in /data/runs. */
  firstEventTime: number | null = null;
  readonly sessionStarts: SessionStartMark[] = [];
  private fileVersion: number | null = null;
  private seenSessionStart = false;
  private mostRecentStep = -1;
  /** The run's first metadata of each tag. */
  private readonly metadata = new Map<string, TagMetadata>();
  /** Per event file: each tag's first metadata in that file (dataclass_compat tracks it per loader). */
  private fileMetadata = new Map<string, TagMetadata>();
  /** Points of every tag that is or may yet be a scalar. */
  private readonly store = new Map<string, ScalarSeries>();
  /** Tags dropped because a point could not be read as one number, with a count of such points. */
  readonly unreadable = new Map<string, number>();

  constructor(private readonly listener: ScalarChangeListener | null = null) {}

  /** Call before the first event of each event file. */
  beginFile(): void {
    this.fileMetadata = new Map();
  }

  process(event: ScanEvent): void {
    this.firstEventTime ??= event.wallTime;
    if (event.fileVersion !== undefined) this.fileVersion = parseFileVersion(event.fileVersion);
    this.maybePurge(event);
    if (event.values !== undefined) this.mostRecentStep = event.step;
    if (event.values === undefined) return;

    for (const value of event.values) {
      const migrated = this.migrate(value.tag, value.kind, value.metadata);
      if (migrated && !this.metadata.has(value.tag)) this.noteMetadata(value.tag, migrated);
      if (value.kind !== "simple" && value.kind !== "tensor") continue;
      const tag = value.tag || value.nodeName;
      const known = this.metadata.get(tag);
      if (known && !isScalar(known)) continue;
      if (value.number === undefined) {
        this.unreadable.set(tag, (this.unreadable.get(tag) ?? 0) + 1);
        continue;
      }
      let series = this.store.get(tag);
      if (!series) {
        series = new ScalarSeries();
        this.store.set(tag, series);
      }
      series.append(event.wallTime, event.step, value.number);
      if (known) this.listener?.append(tag, event.wallTime, event.step, value.number);
    }
  }

  /** Listed scalar tags, in the order their metadata was first seen. */
  scalarTags(): ScalarTagInfo[] {
    const tags: ScalarTagInfo[] = [];
    for (const [tag, metadata] of this.metadata) {
      if (!isScalar(metadata) || !this.store.has(tag)) continue;
      tags.push({ tag, displayName: metadata.displayName, description: metadata.description });
    }
    return tags;
  }

  /** A listed scalar tag's points, or undefined if the run has no such scalar. */
  series(tag: string): ScalarSeries | undefined {
    const metadata = this.metadata.get(tag);
    return metadata && isScalar(metadata) ? this.store.get(tag) : undefined;
  }

  /** data_compat (simple_value → scalars tensor) and dataclass_compat (data class from the file's first metadata). */
  private migrate(tag: string, kind: string, metadata: ScanMetadata | null): TagMetadata | null {
    let result: TagMetadata | null = metadata ? { ...metadata } : null;
    if (kind === "simple") {
      result = {
        pluginName: SCALARS_PLUGIN,
        displayName: metadata?.displayName || tag,
        description: metadata?.description ?? "",
        dataClass: DATA_CLASS_UNKNOWN,
      };
    }
    let initial = this.fileMetadata.get(tag);
    if (!initial) {
      initial = result ? { ...result } : { pluginName: "", displayName: "", description: "", dataClass: 0 };
      this.fileMetadata.set(tag, initial);
    }
    if (result && initial.dataClass === DATA_CLASS_UNKNOWN && initial.pluginName === SCALARS_PLUGIN) {
      result.dataClass = DATA_CLASS_SCALAR;
    }
    return result;
  }

  private noteMetadata(tag: string, metadata: TagMetadata): void {
    this.metadata.set(tag, metadata);
    const series = this.store.get(tag);
    if (!isScalar(metadata)) {
      this.store.delete(tag);
      return;
    }
    this.listener?.tagAdded?.(tag);
    // Points stored before the tag's metadata arrived become visible now.
    series?.forEach((wallTime, step, value) => {
      this.listener?.append(tag, wallTime, step, value);
    });
  }

  private maybePurge(event: ScanEvent): void {
    if (this.fileVersion !== null && this.fileVersion >= 2) {
      if (event.sessionStatus !== SESSION_START) return;
      if (!this.seenSessionStart) {
        this.seenSessionStart = true;
        this.sessionStarts.push({ step: event.step, wallTime: event.wallTime, purged: 0 });
        return;
      }
      let purged = 0;
      for (const series of this.store.values()) purged += series.keepStepsBelow(event.step);
      this.sessionStarts.push({ step: event.step, wallTime: event.wallTime, purged });
      if (purged > 0) this.listener?.purge(null, event.step);
      return;
    }
    if (event.values === undefined || event.step >= this.mostRecentStep) return;
    const tags: string[] = [];
    for (const value of event.values) {
      const series = this.store.get(value.tag);
      if (series && series.keepStepsBelow(event.step) > 0) tags.push(value.tag);
    }
    if (tags.length > 0) this.listener?.purge(tags, event.step);
  }
}

function isScalar(metadata: TagMetadata): boolean {
  return metadata.dataClass === DATA_CLASS_SCALAR && metadata.pluginName === SCALARS_PLUGIN;
}

/** `brain.Event:2` → 2, as event_util.ParseFileVersion does; anything unparsable is -1 (out-of-order logic). */
export function parseFileVersion(text: string): number {
  const tail = text.split("brain.Event:").pop() ?? "";
  const version = Number(tail.trim());
  return tail.trim() !== "" && Number.isFinite(version) ? version : -1;
}
