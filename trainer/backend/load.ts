/**
 * Pick and initialise the TensorFlow.js backend. The native bindings (@tensorflow/tfjs-node-gpu,
 * @tensorflow/tfjs-node) are optional peer dependencies: loaded only if installed, which is why they are
 * imported by a computed name. CUDA_VISIBLE_DEVICES is left exactly as the caller set it.
 */
import * as tf from "@tensorflow/tfjs-core";
// tfjs-core's gradient registrations ship only as extensionless ESM that Node cannot load; the
// @tensorflow/tfjs bundle registers them all on the same (deduplicated) tfjs-core engine.
import "@tensorflow/tfjs";
import { UserError } from "../../lib/cli/errors.ts";
import type { BackendChoice } from "../../lib/stages/args.ts";
import { installCpuKernels } from "./cpu-kernels.ts";
import { installWasmKernels } from "./wasm-kernels.ts";

export interface LoadedBackend {
  /** What the user asked for or what auto picked: "tensorflow-gpu" | "tensorflow" | "wasm" | "cpu". */
  name: Exclude<BackendChoice, "auto">;
  /** A line for the log: which backend, and why this one. */
  description: string;
}

const NATIVE_PACKAGES = {
  "tensorflow-gpu": "@tensorflow/tfjs-node-gpu",
  tensorflow: "@tensorflow/tfjs-node",
} as const;

async function importOptional(packageName: string): Promise<boolean> {
  try {
    await import(packageName);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") return false;
    throw new Error(`${packageName} is installed but failed to load: ${(error as Error).message}`);
  }
}

async function loadNative(name: "tensorflow-gpu" | "tensorflow"): Promise<boolean> {
  if (!(await importOptional(NATIVE_PACKAGES[name]))) return false;
  await tf.setBackend("tensorflow");
  await tf.ready();
  return true;
}

async function loadWasm(): Promise<boolean> {
  // Emscripten's glue installs process-wide handlers that rethrow and print the whole minified
  // module on any uncaught error; remove them so errors reach our own one-line reporting.
  const before = {
    uncaughtException: new Set(process.listeners("uncaughtException")),
    unhandledRejection: new Set(process.listeners("unhandledRejection")),
  };
  await import("@tensorflow/tfjs-backend-wasm");
  const ok = await tf.setBackend("wasm");
  if (ok) await tf.ready();
  for (const listener of process.listeners("uncaughtException")) {
    if (!before.uncaughtException.has(listener)) process.removeListener("uncaughtException", listener);
  }
  for (const listener of process.listeners("unhandledRejection")) {
    if (!before.unhandledRejection.has(listener)) process.removeListener("unhandledRejection", listener);
  }
  if (ok) installWasmKernels();
  return ok;
}

async function loadCpu(): Promise<boolean> {
  await import("@tensorflow/tfjs-backend-cpu");
  const ok = await tf.setBackend("cpu");
  if (ok) await tf.ready();
  if (ok) installCpuKernels();
  return ok;
}

export async function loadBackend(choice: BackendChoice): Promise<LoadedBackend> {
  // Production mode: no debug checks, and no "install tfjs-node" banner on stdout.
  tf.env().set("PROD", true);
  const loaders = {
    "tensorflow-gpu": () => loadNative("tensorflow-gpu"),
    tensorflow: () => loadNative("tensorflow"),
    wasm: loadWasm,
    cpu: loadCpu,
  };
  if (choice !== "auto") {
    if (await loaders[choice]()) return { name: choice, description: describe(choice, "as requested") };
    const hint =
      choice === "wasm" || choice === "cpu"
        ? "reinstall dependencies with `npm ci`"
        : `install it with \`npm i ${NATIVE_PACKAGES[choice]}\` (needs a machine where libtensorflow can be downloaded)`;
    throw new UserError(`--backend ${choice}: backend is not available; ${hint}`);
  }
  for (const name of ["tensorflow-gpu", "tensorflow", "wasm", "cpu"] as const) {
    try {
      if (await loaders[name]()) return { name, description: describe(name, "auto") };
    } catch (error) {
      // An installed native binding that cannot start (no CUDA, wrong glibc) is not fatal in auto mode.
      process.stderr.write(
        `warning: backend ${name} failed to start (${(error as Error).message}); trying the next\n`,
      );
    }
  }
  throw new Error(
    "no TensorFlow.js backend could be initialised (tried tensorflow-gpu, tensorflow, wasm, cpu)",
  );
}

function describe(name: LoadedBackend["name"], how: string): string {
  switch (name) {
    case "tensorflow-gpu": {
      const devices = process.env.CUDA_VISIBLE_DEVICES;
      return `backend: tensorflow-gpu (${how}; CUDA_VISIBLE_DEVICES=${devices ?? "<unset: all GPUs>"})`;
    }
    case "tensorflow":
      return `backend: tensorflow (native CPU, ${how})`;
    case "wasm":
      return `backend: wasm (XNNPACK, ${how})`;
    case "cpu":
      return `backend: cpu (pure JavaScript, slow; ${how})`;
  }
}
