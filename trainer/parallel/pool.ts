/**
 * Data parallelism over worker threads, for the backends that run on one CPU core (wasm, cpu):
 * each update, every batch is split into shards; the loop computes the first shard itself while
 * each worker computes one of the others on its own copy of the model; the gradients are summed in
 * a fixed order, so a run is exactly reproducible for a given number of workers.
 *
 * A worker that throws, crashes or exits — while busy or idle — fails the pool at once: the
 * pending update and every later one reject with what happened, so the trainer reports it and
 * exits instead of waiting for a reply that never comes. close() terminates every thread.
 */
import { Worker } from "node:worker_threads";
import * as tf from "@tensorflow/tfjs-core";
import type { TrainerArgs } from "../../lib/stages/args.ts";
import type { ModelConfig } from "../model/config.ts";
import type { MiniMind } from "../model/minimind.ts";
import type { ParameterLayout, StepReply, StepRequest, WorkerInit, WorkerMessage } from "./protocol.ts";
import type { Shard } from "./shards.ts";

interface WorkerHandle {
  thread: Worker;
  grads: Float32Array;
  /** The reply this worker owes (ready, or an update's result), if any. */
  waiting: {
    expected: WorkerMessage["type"];
    resolve(m: WorkerMessage): void;
    reject(e: Error): void;
  } | null;
}

export class GradientWorkers {
  private readonly layout: ParameterLayout[];
  private readonly params: Float32Array;
  private readonly workers: WorkerHandle[] = [];
  private version = 0;
  private closing = false;
  /** Shards handed to workers so far (for tests and logs). */
  shardsSent = 0;
  /** Set once any worker failed; every later request rejects with it. */
  failure: Error | null = null;

  private constructor(layout: ParameterLayout[], params: Float32Array) {
    this.layout = layout;
    this.params = params;
  }

  get count(): number {
    return this.workers.length;
  }

  /** Some worker owes a reply (an update is being computed). */
  get busy(): boolean {
    return this.workers.some((handle) => handle.waiting !== null);
  }

  /**
   * Start `count` workers holding a copy of `model`; resolves once every one has built it. If one
   * fails to start, the others are terminated before the error is thrown.
   */
  static async start(options: {
    count: number;
    objectiveModule: string;
    backend: WorkerInit["backend"];
    config: ModelConfig;
    args: TrainerArgs;
    model: MiniMind;
  }): Promise<GradientWorkers> {
    const layout: ParameterLayout[] = [];
    let offset = 0;
    for (const [name, variable] of options.model.weights) {
      layout.push({ name, shape: variable.shape, offset, size: variable.size });
      offset += variable.size;
    }
    const params = new Float32Array(new SharedArrayBuffer(offset * 4));
    const pool = new GradientWorkers(layout, params);
    pool.publish(options.model);
    try {
      await Promise.all(
        Array.from({ length: options.count }, () => {
          const grads = new SharedArrayBuffer(offset * 4);
          const init: WorkerInit = {
            objectiveModule: options.objectiveModule,
            backend: options.backend,
            config: options.config,
            args: options.args,
            layout,
            params: params.buffer as SharedArrayBuffer,
            grads,
          };
          const thread = new Worker(new URL("./worker-entry.mjs", import.meta.url), { workerData: init });
          const handle: WorkerHandle = { thread, grads: new Float32Array(grads), waiting: null };
          pool.watch(handle);
          pool.workers.push(handle);
          return pool.request(handle, "ready", null);
        }),
      );
    } catch (error) {
      await pool.close();
      throw error;
    }
    return pool;
  }

  /** Route a worker's messages, errors and exit to whatever it owes, and fail the pool on trouble. */
  private watch(handle: WorkerHandle): void {
    const { thread } = handle;
    thread.on("message", (message: WorkerMessage) => {
      const waiting = handle.waiting;
      if (message.type !== "failed" && waiting !== null && message.type === waiting.expected) {
        handle.waiting = null;
        waiting.resolve(message);
      } else if (message.type === "failed") {
        // Still owed: fail() rejects this worker's pending reply with the others.
        this.fail(new Error(`data-parallel worker failed: ${firstLine(message.message)}`));
      } else {
        this.fail(
          new Error(`data-parallel worker sent ${message.type}, expected ${waiting?.expected ?? "nothing"}`),
        );
      }
    });
    thread.on("error", (error: Error) =>
      this.fail(new Error(`data-parallel worker crashed: ${error.message}`)),
    );
    thread.on("exit", (code: number) => {
      if (!this.closing)
        this.fail(new Error(`data-parallel worker thread exited unexpectedly (code ${code})`));
    });
  }

  /** Reject every reply still owed, and every later request, with `error` (the first failure wins). */
  private fail(error: Error): void {
    this.failure ??= error;
    for (const handle of this.workers) {
      const waiting = handle.waiting;
      handle.waiting = null;
      waiting?.reject(this.failure);
    }
  }

  private request(
    handle: WorkerHandle,
    expected: WorkerMessage["type"],
    message: StepRequest | null,
  ): Promise<WorkerMessage> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      handle.waiting = { expected, resolve, reject };
      if (message) handle.thread.postMessage(message);
    });
  }

  /** Copy the model's current parameters where the workers read them (after every update). */
  publish(model: MiniMind): void {
    for (const p of this.layout) {
      const variable = model.weights.get(p.name) as tf.Variable;
      this.params.set(variable.dataSync() as Float32Array, p.offset);
    }
    this.version += 1;
  }

  /** Send each worker its shards; resolves with their loss/metrics once all are done. */
  dispatch(shardsPerWorker: Shard[][], accumulationSteps: number): Promise<StepReply[]> {
    if (this.failure) return Promise.reject(this.failure);
    return Promise.all(
      this.workers.map(async (handle, i) => {
        this.shardsSent += shardsPerWorker[i]?.length ?? 0;
        const request: StepRequest = {
          type: "step",
          version: this.version,
          shards: shardsPerWorker[i] ?? [],
          accumulationSteps,
        };
        return (await this.request(handle, "done", request)) as StepReply;
      }),
    );
  }

  /** Worker i's gradient for `name` (valid until the next dispatch), as a tensor. */
  gradient(i: number, name: string): tf.Tensor {
    const p = this.layout.find((entry) => entry.name === name) as ParameterLayout;
    // A copy: the cpu backend would otherwise keep a view of the shared buffer the worker rewrites.
    return tf.tensor((this.workers[i] as WorkerHandle).grads.slice(p.offset, p.offset + p.size), p.shape);
  }

  /** Terminate every thread (idempotent); a pending request rejects. */
  async close(): Promise<void> {
    this.closing = true;
    this.fail(this.failure ?? new Error("data-parallel workers were closed"));
    await Promise.all(this.workers.map(({ thread }) => thread.terminate()));
  }
}

/** A worker's error arrives with its stack; the report needs one line. */
function firstLine(text: string): string {
  return text.split("\n")[0] ?? text;
}
