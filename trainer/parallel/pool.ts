/**
 * Data parallelism over worker threads, for the backends that run on one CPU core (wasm, cpu):
 * each update, every batch is split into shards; the loop computes the first shard itself while
 * each worker computes one of the others on its own copy of the model; the gradients are summed in
 * a fixed order, so a run is exactly reproducible for a given number of workers.
 */
import { Worker } from "node:worker_threads";
import * as tf from "@tensorflow/tfjs-core";
import type { TrainerArgs } from "../args.ts";
import type { ModelConfig } from "../model/config.ts";
import type { MiniMind } from "../model/minimind.ts";
import type { ParameterLayout, StepReply, StepRequest, WorkerInit, WorkerMessage } from "./protocol.ts";
import type { Shard } from "./shards.ts";

interface WorkerHandle {
  thread: Worker;
  grads: Float32Array;
}

export class GradientWorkers {
  private readonly layout: ParameterLayout[];
  private readonly params: Float32Array;
  private readonly workers: WorkerHandle[];
  private version = 0;
  /** Shards handed to workers so far (for tests and logs). */
  shardsSent = 0;
  private failure: Error | null = null;

  private constructor(layout: ParameterLayout[], params: Float32Array, workers: WorkerHandle[]) {
    this.layout = layout;
    this.params = params;
    this.workers = workers;
  }

  get count(): number {
    return this.workers.length;
  }

  /** Start `count` workers holding a copy of `model`; resolves once every one has built it. */
  static async start(options: {
    count: number;
    stageModule: string;
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
    const handles: WorkerHandle[] = [];
    const pool = new GradientWorkers(layout, params, handles);
    pool.publish(options.model);
    await Promise.all(
      Array.from({ length: options.count }, async () => {
        const grads = new SharedArrayBuffer(offset * 4);
        const init: WorkerInit = {
          stageModule: options.stageModule,
          backend: options.backend,
          config: options.config,
          args: options.args,
          layout,
          params: params.buffer as SharedArrayBuffer,
          grads,
        };
        const thread = new Worker(new URL("./worker-entry.mjs", import.meta.url), { workerData: init });
        handles.push({ thread, grads: new Float32Array(grads) });
        await pool.next(thread, "ready");
      }),
    );
    return pool;
  }

  private next(thread: Worker, expected: WorkerMessage["type"]): Promise<WorkerMessage> {
    return new Promise((resolve, reject) => {
      const onMessage = (message: WorkerMessage) => {
        cleanup();
        if (message.type === "failed") reject(new Error(`data-parallel worker failed: ${message.message}`));
        else if (message.type !== expected)
          reject(new Error(`data-parallel worker sent ${message.type}, expected ${expected}`));
        else resolve(message);
      };
      const onError = (error: Error) => {
        cleanup();
        reject(new Error(`data-parallel worker crashed: ${error.message}`));
      };
      const onExit = (code: number) => {
        cleanup();
        reject(new Error(`data-parallel worker exited with code ${code}`));
      };
      const cleanup = () => {
        thread.off("message", onMessage);
        thread.off("error", onError);
        thread.off("exit", onExit);
      };
      thread.on("message", onMessage);
      thread.on("error", onError);
      thread.on("exit", onExit);
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
      this.workers.map(async ({ thread }, i) => {
        this.shardsSent += shardsPerWorker[i]?.length ?? 0;
        const request: StepRequest = {
          type: "step",
          version: this.version,
          shards: shardsPerWorker[i] ?? [],
          accumulationSteps,
        };
        const reply = this.next(thread, "done");
        thread.postMessage(request);
        return (await reply) as StepReply;
      }),
    );
  }

  /** Worker i's gradient for `name` (valid until the next dispatch), as a tensor. */
  gradient(i: number, name: string): tf.Tensor {
    const p = this.layout.find((entry) => entry.name === name) as ParameterLayout;
    // A copy: the cpu backend would otherwise keep a view of the shared buffer the worker rewrites.
    return tf.tensor(this.workers[i].grads.slice(p.offset, p.offset + p.size), p.shape);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map(({ thread }) => thread.terminate()));
  }
}
