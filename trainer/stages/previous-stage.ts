/**
 * Where DPO and R1 start when the user names nothing: an earlier stage's output beside this stage's
 * folder. Random weights make no sense after pretraining, so finding nothing is an error that
 * says which stage to run first.
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { latestValidCheckpoint } from "../../lib/checkpoint/index.ts";
import { UserError } from "../../lib/cli/errors.ts";
import { legacyWeightsPath, STAGES, type StageName } from "../../lib/config/stages.ts";
import type { TrainerArgs } from "../args.ts";

/**
 * The first of `stages` (in order of preference) with something to start from: its stage folder
 * `<out_dir>/../<stage>` when that holds a valid checkpoint (the latest one is loaded, hashes
 * checked), else its legacy weights file `<out_dir>/../<prefix>_<hidden>.safetensors`.
 */
export async function previousStageWeights(args: TrainerArgs, stages: readonly StageName[]): Promise<string> {
  const root = dirname(args.out_dir);
  const tried: string[] = [];
  for (const stage of stages) {
    const folder = join(root, stage);
    if (await latestValidCheckpoint(join(folder, "checkpoints"))) return folder;
    const legacy = legacyWeightsPath(root, stage, args.hidden_size);
    if (existsSync(legacy)) return legacy;
    tried.push(`${folder} has no valid checkpoint and ${legacy} does not exist`);
  }
  const first = stages[0] as StageName;
  throw new UserError(
    `no initial weights: ${tried.join("; ")} — run the ${first} stage first ` +
      `(node --import tsx ${STAGES[first].trainer}) or pass --init_from <checkpoint dir or .safetensors>`,
  );
}
