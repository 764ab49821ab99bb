/**
 * Checkpoint store throughput: `npx tsx bench/checkpoint.ts` (or `npm run bench:checkpoint`).
 * Prints one JSON object per measurement:
 *   checkpoint.save    saveCheckpoint of N MB of float32 tensors vs `cp src dst && sync` of the same bytes
 *   checkpoint.load    loadLatestCheckpoint (every SHA-256 checked) + safetensors decode, warm page cache
 *   checkpoint.latest  latestValidCheckpoint among 10,000 step directories
 * Goals: save ratio ≥ 0.8, latest ≤ 100 ms. Works in a temp dir under /tmp, removed at the end.
 */
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, statfs, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  latestValidCheckpoint,
  loadLatestCheckpoint,
  saveCheckpoint,
  stepDirName,
} from "../lib/checkpoint/index.ts";
import { decodeSafetensors, encodeSafetensors } from "../lib/safetensors/index.ts";

const SIZES_MB = (process.env.BENCH_SIZES_MB ?? "10,100,500").split(",").map(Number);
const LATEST_AMONG = 10_000;
const MB = 1024 * 1024;

const print = (record: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(record)}\n`);
const round = (n: number) => Math.round(n * 10) / 10;
const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;

function stateFor(step: number) {
  return {
    stage: "bench",
    epoch: 0,
    step_in_epoch: step,
    global_step: step,
    tokens_seen: 0,
    finished: false,
    args: {},
    model_config: {},
    metrics: {},
  };
}

/** Float32 tensors of 4 MB each (random-ish, so nothing compresses) totalling `mb`. */
function tensorsOf(mb: number) {
  const tensors: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
  const perTensor = (4 * MB) / 4;
  for (let i = 0; i < mb / 4; i++) {
    const data = new Float32Array(perTensor);
    for (let j = 0; j < perTensor; j++) data[j] = Math.sin(i * 7919 + j);
    tensors[`model.layers.${i}.weight`] = { dtype: "F32", shape: [perTensor], data };
  }
  return tensors;
}

function cpSync(src: string, dst: string): number {
  execFileSync("sync");
  const start = process.hrtime.bigint();
  execFileSync("sh", ["-c", 'cp "$1" "$2" && sync', "sh", src, dst]);
  return seconds(start);
}

const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const best = (times: number[]) => Math.min(...times);
const median = (times: number[]) => [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)] as number;

/**
 * Save and cp+sync alternate REPEATS times (this disk's speed drifts a lot from one second to the
 * next); the ratio compares the best of each, the medians are printed beside it.
 */
async function benchSize(root: string, mb: number): Promise<void> {
  const chunks = encodeSafetensors(tensorsOf(mb));
  const bytes = chunks.reduce((sum, c) => sum + c.byteLength, 0);
  const mbActual = bytes / MB;
  const src = join(root, `src-${mb}.bin`);
  await writeFile(src, chunks);

  const cpTimes: number[] = [];
  const saveTimes: number[] = [];
  const ckptDir = join(root, `ckpt-${mb}`);
  for (let i = 0; i < REPEATS; i++) {
    const dst = join(root, `dst-${mb}.bin`);
    cpTimes.push(cpSync(src, dst));
    await rm(dst);
    await rm(ckptDir, { recursive: true, force: true });
    execFileSync("sync");
    const start = process.hrtime.bigint();
    await saveCheckpoint(ckptDir, {
      step: 1,
      files: { "model.safetensors": chunks },
      state: stateFor(1),
      keepLast: 1,
    });
    saveTimes.push(seconds(start));
  }
  await rm(src);
  print({
    bench: "checkpoint.save",
    mb,
    mb_per_s: round(mbActual / best(saveTimes)),
    cp_sync_mb_per_s: round(mbActual / best(cpTimes)),
    ratio: Math.round((best(cpTimes) / best(saveTimes)) * 100) / 100,
    median_mb_per_s: round(mbActual / median(saveTimes)),
    median_cp_sync_mb_per_s: round(mbActual / median(cpTimes)),
    best_of: REPEATS,
  });

  const loadTimes: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    const start = process.hrtime.bigint();
    const loaded = await loadLatestCheckpoint(ckptDir, { keepContents: true });
    const model = loaded?.contents?.get("model.safetensors");
    if (!model) throw new Error("bench: the checkpoint just saved did not load");
    decodeSafetensors(model);
    loadTimes.push(seconds(start));
  }
  print({
    bench: "checkpoint.load",
    mb,
    mb_per_s: round(mbActual / best(loadTimes)),
    median_mb_per_s: round(mbActual / median(loadTimes)),
    sha256_checked: true,
    page_cache: "warm",
  });
  await rm(ckptDir, { recursive: true });
}

async function benchLatest(root: string): Promise<void> {
  const ckptDir = join(root, "many");
  await saveCheckpoint(ckptDir, {
    step: 1,
    files: { "model.safetensors": "x" },
    state: stateFor(1),
    keepLast: 1,
  });
  // 10,000 newer checkpoints with valid state.json and no files: the realistic case, newest on top.
  const state = JSON.stringify({
    ...stateFor(0),
    format_version: 1,
    created_at: new Date().toISOString(),
    files: {},
  });
  for (let batch = 0; batch < LATEST_AMONG; batch += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, LATEST_AMONG - batch) }, async (_, i) => {
        const step = batch + i + 2;
        const dir = join(ckptDir, stepDirName(step));
        await mkdir(dir);
        await writeFile(join(dir, "state.json"), state.replace('"global_step":0', `"global_step":${step}`));
      }),
    );
  }
  const runs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const start = process.hrtime.bigint();
    const found = await latestValidCheckpoint(ckptDir);
    runs.push(seconds(start) * 1000);
    if (found?.step !== LATEST_AMONG + 1) throw new Error(`bench: latest is ${found?.step}`);
  }
  print({
    bench: "checkpoint.latest",
    dirs: LATEST_AMONG,
    ms: round(Math.min(...runs)),
    ms_first: round(runs[0] ?? 0),
  });
}

const root = await mkdtemp(join(tmpdir(), "baton-bench-ckpt-"));
try {
  const { bavail, bsize } = await statfs(root);
  const needMb = 3 * Math.max(...SIZES_MB) + 100;
  if ((bavail * bsize) / MB < needMb) throw new Error(`bench: need ${needMb} MB free in ${tmpdir()}`);
  for (const mb of SIZES_MB) await benchSize(root, mb);
  await benchLatest(root);
} finally {
  await rm(root, { recursive: true, force: true });
}
