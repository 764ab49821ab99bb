/**
 * The daemon's slots: the GPUs it was given (--gpus, else CUDA_VISIBLE_DEVICES, read as the sweep
 * reads it), or without any, --cpu-slots CPU slots. A run takes all it asks for at once or waits;
 * a run adopted after a restart takes back exactly the devices it held.
 */
import { visibleDevices } from "../sweep/gpu-slots.ts";

export type SlotKind = "gpu" | "cpu";

export class SlotPool {
  readonly kind: SlotKind;
  readonly ids: readonly string[];
  readonly #holder = new Map<string, number>();

  constructor(kind: SlotKind, ids: readonly string[]) {
    this.kind = kind;
    this.ids = ids;
  }

  /** From --gpus (a list like 0,1), else the daemon's CUDA_VISIBLE_DEVICES, else `cpuSlots` CPU slots. */
  static fromSettings(
    gpus: string | null,
    env: Readonly<Record<string, string | undefined>>,
    cpuSlots: number,
  ): SlotPool {
    const devices = visibleDevices({ CUDA_VISIBLE_DEVICES: gpus ?? env.CUDA_VISIBLE_DEVICES });
    if (devices !== null) return new SlotPool("gpu", devices);
    return new SlotPool(
      "cpu",
      Array.from({ length: cpuSlots }, (_, i) => `cpu${i}`),
    );
  }

  get free(): number {
    return this.ids.length - this.#holder.size;
  }

  /** `count` free slots for `runId` (lowest first), or null when fewer are free. */
  take(runId: number, count: number): string[] | null {
    const free = this.ids.filter((id) => !this.#holder.has(id));
    if (free.length < count) return null;
    const taken = free.slice(0, count);
    for (const id of taken) this.#holder.set(id, runId);
    return taken;
  }

  /** Take back the slots an adopted run holds; ids this daemon no longer has are ignored (and returned). */
  reserve(runId: number, ids: readonly string[]): string[] {
    const unknown: string[] = [];
    for (const id of ids) {
      if (this.ids.includes(id) && !this.#holder.has(id)) this.#holder.set(id, runId);
      else unknown.push(id);
    }
    return unknown;
  }

  release(runId: number): void {
    for (const [id, holder] of [...this.#holder]) if (holder === runId) this.#holder.delete(id);
  }

  /** Each slot and the run holding it (null: free). */
  view(): Array<{ id: string; run: number | null }> {
    return this.ids.map((id) => ({ id, run: this.#holder.get(id) ?? null }));
  }
}
