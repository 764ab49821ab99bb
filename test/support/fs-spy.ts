/**
 * Record the file-system calls this process makes under one folder — opens, writes, fsyncs,
 * renames, removals — in the order they start and end, without changing what they do. Code under
 * test is not touched: `node:fs`, `node:fs/promises` and FileHandle methods are wrapped, and
 * `syncBuiltinESMExports()` makes modules that imported those names see the wrappers. A crash test
 * cannot see a missing fsync (the page cache survives a killed process); this can.
 */
import fs from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { join, resolve } from "node:path";

/** `mark`: a point the test itself records (e.g. "the save returned"). */
export type FsOp = "open" | "write" | "sync" | "datasync" | "close" | "rename" | "rm" | "mark";

export interface FsCall {
  op: FsOp;
  phase: "start" | "end";
  /** Absolute path (of the file behind a descriptor, for descriptor calls). */
  path: string;
  /** rename's destination. */
  to?: string;
  /** The call threw (set on its start and end records). */
  failed?: true;
}

export interface FsSpy {
  calls: FsCall[];
  /** Record a point of the test's own between the calls; returns its index. */
  mark(label: string): number;
  /** Put every wrapped function back. */
  restore(): void;
}

type AnyFunction = (...args: never[]) => unknown;

/** Start recording the calls whose path lies under `root`; call restore() when done. */
export async function spyOnFileSystem(root: string): Promise<FsSpy> {
  const under = resolve(root);
  const calls: FsCall[] = [];
  const restores: Array<() => void> = [];
  const fdPaths = new Map<number, string>();
  const handlePaths = new WeakMap<object, string>();

  const record = (op: FsOp, phase: FsCall["phase"], path: string | undefined, to?: string) => {
    if (path === undefined || !(path === under || path.startsWith(`${under}/`))) return null;
    const call: FsCall = to === undefined ? { op, phase, path } : { op, phase, path, to };
    calls.push(call);
    return call;
  };
  const failed = (start: FsCall | null, end: FsCall | null) => {
    if (start) start.failed = true;
    if (end) end.failed = true;
  };
  const pathOf = (value: unknown) => resolve(String(value instanceof URL ? value.pathname : value));

  /** Replace `target[name]` by `wrap(original)` until restore(). */
  function patch<T extends object>(
    target: T,
    name: keyof T & string,
    wrap: (original: AnyFunction) => unknown,
  ) {
    const original = target[name] as unknown as AnyFunction;
    (target as Record<string, unknown>)[name] = wrap(original);
    restores.push(() => {
      (target as Record<string, unknown>)[name] = original;
    });
  }

  /** An async call: recorded when it starts and when it settles. */
  const timedAsync =
    (op: FsOp, where: (self: unknown, args: unknown[]) => [string | undefined, string?]) =>
    (original: AnyFunction) =>
      async function (this: unknown, ...args: unknown[]) {
        const [path, to] = where(this, args);
        const start = record(op, "start", path, to);
        try {
          const result = await (original as (...a: unknown[]) => Promise<unknown>).apply(this, args);
          record(op, "end", path, to);
          return result;
        } catch (error) {
          failed(start, record(op, "end", path, to));
          throw error;
        }
      };
  const timedSync =
    (op: FsOp, where: (args: unknown[]) => [string | undefined, string?]) => (original: AnyFunction) =>
      function (this: unknown, ...args: unknown[]) {
        const [path, to] = where(args);
        const start = record(op, "start", path, to);
        try {
          const result = (original as (...a: unknown[]) => unknown).apply(this, args);
          record(op, "end", path, to);
          return result;
        } catch (error) {
          failed(start, record(op, "end", path, to));
          throw error;
        }
      };

  const byHandle = (self: unknown): [string | undefined] => [handlePaths.get(self as object)];

  // node:fs/promises and the FileHandle methods the checkpoint store and atomic writer use.
  patch(fs.promises, "open", (original) => async (...args: unknown[]) => {
    const path = pathOf(args[0]);
    record("open", "start", path);
    const handle = (await (original as (...a: unknown[]) => Promise<fs.promises.FileHandle>)(
      ...args,
    )) as object;
    handlePaths.set(handle, path);
    record("open", "end", path);
    // close is an own property of each FileHandle (a class field), not a prototype method.
    const ownClose = handle as unknown as Record<string, AnyFunction>;
    if (Object.hasOwn(ownClose, "close"))
      ownClose.close = timedAsync("close", byHandle)(ownClose.close as AnyFunction) as AnyFunction;
    return handle;
  });
  patch(
    fs.promises,
    "rename",
    timedAsync("rename", (_, [from, to]) => [pathOf(from), pathOf(to)]),
  );
  patch(
    fs.promises,
    "rm",
    timedAsync("rm", (_, [path]) => [pathOf(path)]),
  );
  const probe = join(under, `.fs-spy-probe-${process.pid}`);
  const handle = await fs.promises.open(probe, "w");
  const FileHandle = Object.getPrototypeOf(handle) as Record<string, unknown>;
  await handle.close();
  await fs.promises.rm(probe);
  for (const [name, op] of [
    ["write", "write"],
    ["writev", "write"],
    ["writeFile", "write"],
    ["appendFile", "write"],
    ["sync", "sync"],
    ["datasync", "datasync"],
    ["close", "close"],
  ] as const) {
    if (!Object.hasOwn(FileHandle, name)) continue;
    patch(FileHandle, name, timedAsync(op, byHandle));
  }

  // The synchronous twins (writeFileAtomicSync, the event writer), by descriptor.
  patch(fs, "openSync", (original) => (...args: unknown[]) => {
    const fd = (original as (...a: unknown[]) => number)(...args);
    fdPaths.set(fd, pathOf(args[0]));
    record("open", "start", pathOf(args[0]));
    record("open", "end", pathOf(args[0]));
    return fd;
  });
  const byFd = (args: unknown[]): [string | undefined] => [fdPaths.get(args[0] as number)];
  patch(fs, "writeSync", timedSync("write", byFd));
  patch(fs, "fsyncSync", timedSync("sync", byFd));
  patch(fs, "fdatasyncSync", timedSync("datasync", byFd));
  patch(fs, "closeSync", timedSync("close", byFd));
  patch(
    fs,
    "renameSync",
    timedSync("rename", ([from, to]) => [pathOf(from), pathOf(to)]),
  );
  patch(
    fs,
    "rmSync",
    timedSync("rm", ([path]) => [pathOf(path)]),
  );
  syncBuiltinESMExports();

  return {
    calls,
    mark(label) {
      return calls.push({ op: "mark", phase: "end", path: label }) - 1;
    },
    restore() {
      for (const undo of restores.splice(0).reverse()) undo();
      syncBuiltinESMExports();
    },
  };
}
