/** Stage 3, direct preference optimisation against a frozen reference (MiniMind's train_dpo.py). */
import { runMain } from "../lib/cli/main.ts";
import { dpoEvaluation } from "./eval/preference.ts";
import { openSession } from "./loop/session.ts";
import { train } from "./loop/train.ts";
import { dpoBeta, dpoObjective, dpoReference } from "./stages/dpo.ts";

runMain("train_dpo", async () => {
  const session = await openSession("dpo", "dpo", process.argv.slice(2));
  if (session.finished) return session.report();
  const beta = dpoBeta(session.args);
  // The initial weights, frozen: what the policy's preferences are measured against.
  const reference = await dpoReference(session);
  return train(session, {
    objective: dpoObjective(reference.model, beta),
    evaluate: (model) => dpoEvaluation(session, model, reference.model, beta),
    state: reference.state,
  });
});
