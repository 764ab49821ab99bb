import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { type FileContent, writeFileAtomic } from "../fs/atomic.ts";

/**
 * Atomically replace a stage's legacy weights file (`out/full_sft_512.safetensors`, docs/stages.md)
 * with `content` — normally the same chunks just saved as the checkpoint's model.safetensors.
 * Readers see the old weights or the new, never a mix. A separate file, not a hard link, so
 * a tool that rewrites the legacy file in place can never damage a checkpoint.
 */
export async function writeLegacyWeights(path: string, content: FileContent): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, content);
}
