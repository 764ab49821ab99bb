/**
 * --smoke-test starts afresh in its own OUT_DIR (like run_mlx.sh's CLEANUP_SMOKE), keeping the
 * TensorBoard record and logdir folder so a TensorBoard already serving them is reused, not leaked.
 */
import { readdir } from "node:fs/promises";
import { resolve } from "node:path";
import { fs } from "zx";
import type { PipelineSettings } from "./settings.ts";

export async function clearSmokeOutputs(settings: PipelineSettings): Promise<void> {
  const keep = new Set([resolve(settings.tensorBoard.recordFile), resolve(settings.tensorBoard.logFile)]);
  const logdir = resolve(settings.tfDir);
  const clear = async (dir: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const path = resolve(dir, name);
      if (keep.has(path) || path.endsWith(".lock")) continue;
      if (path === logdir || logdir.startsWith(`${path}/`)) await clear(path);
      else await fs.remove(path);
    }
  };
  await clear(resolve(settings.outDir));
}
