/** `npm run data [-- --out <dir>]`: write the embedded sample data set (trainer/data/sample/) to data/. */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { UserError } from "../lib/cli/errors.ts";
import { runMain } from "../lib/cli/main.ts";
import { DEFAULT_DATA_DIR, generateSampleData } from "../trainer/data/sample/generate.ts";

runMain("data", async () => {
  let out: string | undefined;
  try {
    ({ out } = parseArgs({
      options: { out: { type: "string" } },
      strict: true,
      allowPositionals: false,
    }).values);
  } catch (error) {
    throw new UserError(`${(error as Error).message} (usage: npm run data [-- --out <dir>])`);
  }
  const started = performance.now();
  const written = await generateSampleData(resolve(out ?? DEFAULT_DATA_DIR));
  for (const w of written) {
    console.log(`wrote ${w.path}: ${w.lines} lines, ${w.bytes} bytes (last ${w.heldOut} held out)`);
  }
  console.log(`done in ${Math.round(performance.now() - started)} ms`);
  return 0;
});
