/**
 * A data-parallel worker thread: its own TensorFlow.js backend and copy of the model, reading the
 * parameters the loop publishes and returning the gradient of its shard of every batch.
 */
import { parentPort, workerData } from "node:worker_threads";
import * as tf from "@tensorflow/tfjs-core";
import { loadBackend } from "../backend/load.ts";
import { MiniMind } from "../model/minimind.ts";
import type { WorkerObjectiveFactory } from "../stages/objective.ts";
import type { StepReply, StepRequest, WorkerInit, WorkerMessage } from "./protocol.ts";
import { shardGradients } from "./shard-gradients.ts";

const init = workerData as WorkerInit;
const port = parentPort;
if (!port) throw new Error("worker.ts must run in a worker thread");
const send = (message: WorkerMessage) => port.postMessage(message);

try {
  await loadBackend(init.backend);
  const params = new Float32Array(init.params);
  const initial = new Map(init.layout.map((p) => [p.name, params.slice(p.offset, p.offset + p.size)]));
  const model = new MiniMind(init.config, initial);
  const { workerObjective } = (await import(init.objectiveModule)) as {
    workerObjective: WorkerObjectiveFactory;
  };
  const objective = await workerObjective({ args: init.args, config: init.config });
  const grads = new Float32Array(init.grads);
  let version = 0;

  port.on("message", (request: StepRequest) => {
    try {
      if (request.version !== version) {
        tf.tidy(() => {
          for (const p of init.layout) {
            // A copy (slice): the cpu backend would otherwise alias the buffer the loop rewrites.
            model.weights.get(p.name)?.assign(tf.tensor(params.slice(p.offset, p.offset + p.size), p.shape));
          }
        });
        version = request.version;
      }
      const result = shardGradients(model, objective, request.shards, request.accumulationSteps);
      for (const p of init.layout) {
        const grad = result.grads.get(p.name);
        if (grad) grads.set(grad.dataSync() as Float32Array, p.offset);
        else grads.fill(0, p.offset, p.offset + p.size);
      }
      const metrics: Record<string, number> = {};
      for (const [name, value] of result.metrics) metrics[name] = value.dataSync()[0];
      const reply: StepReply = { type: "done", loss: result.loss.dataSync()[0], metrics };
      tf.dispose([...result.grads.values(), result.loss, ...result.metrics.values()]);
      send(reply);
    } catch (error) {
      send({ type: "failed", message: (error as Error).stack ?? String(error) });
    }
  });
  send({ type: "ready" });
} catch (error) {
  send({ type: "failed", message: (error as Error).stack ?? String(error) });
}
