/**
 * GPU slots for parallel DPO children: each child gets exactly one of the devices listed in the
 * sweep's own CUDA_VISIBLE_DEVICES, as its whole CUDA_VISIBLE_DEVICES, and no device is handed to
 * a second child before the first gives it back.
 */

/**
 * The devices CUDA_VISIBLE_DEVICES lists (ordinals or UUIDs), duplicates dropped; null when it is
 * unset or lists none, in which case children inherit it untouched. Like CUDA, the list ends at the
 * first invalid entry (`-1` hides everything after it).
 */
export function visibleDevices(env: Readonly<Record<string, string | undefined>>): string[] | null {
  const text = env.CUDA_VISIBLE_DEVICES;
  if (text === undefined) return null;
  const devices: string[] = [];
  for (const raw of text.split(",")) {
    const device = raw.trim();
    if (device === "" || device.startsWith("-")) break;
    if (!devices.includes(device)) devices.push(device);
  }
  return devices.length > 0 ? devices : null;
}

/** How many children run at once: --max-parallel, but never more than there are devices. */
export function sweepCapacity(maxParallel: number, devices: readonly string[] | null): number {
  return devices === null ? maxParallel : Math.min(maxParallel, devices.length);
}

/** A pool of devices; without devices every take() succeeds with null (no assignment). */
export class GpuSlots {
  readonly devices: readonly string[] | null;
  readonly #free: string[];

  constructor(devices: readonly string[] | null) {
    this.devices = devices;
    this.#free = devices === null ? [] : [...devices];
  }

  /** How many children may start now (Infinity without devices). */
  get available(): number {
    return this.devices === null ? Number.POSITIVE_INFINITY : this.#free.length;
  }

  /** A free device (lowest listed first), or null when there are no devices to assign. Throws when none is free. */
  take(): string | null {
    if (this.devices === null) return null;
    const device = this.#free.shift();
    if (device === undefined) throw new Error("GpuSlots.take: every device is in use");
    return device;
  }

  give(device: string | null): void {
    if (device === null || this.devices === null) return;
    if (this.#free.includes(device) || !this.devices.includes(device)) {
      throw new Error(`GpuSlots.give: device ${device} was not taken`);
    }
    this.#free.push(device);
    this.#free.sort((a, b) => (this.devices as string[]).indexOf(a) - (this.devices as string[]).indexOf(b));
  }
}
