/**
 * The submission document, version 1 (docs/daemon.md#submitting): a JSON Schema (draft 2020-12),
 * served by the daemon at /api/v1/schema and checked with ajv. Unknown fields are refused, the
 * environment included: only the pipeline's own variables (variables.ts).
 */
import { SUBMISSION_VARIABLES } from "./variables.ts";

export const SUBMISSION_VERSION = 1;
export const RUN_KINDS = ["pipeline", "sweep"] as const;
export type RunKind = (typeof RUN_KINDS)[number];

export interface Submission {
  version: typeof SUBMISSION_VERSION;
  /** pipeline: `npm run pipeline`; sweep: `npm run dpo-sweep`. */
  kind: RunKind;
  name?: string;
  /** The command's flags, as on its command line (trainer flags after `--`). */
  args?: string[];
  /** Its environment: the pipeline's variables only. */
  env?: Record<string, string>;
  /** GPU slots it needs (CPU slots on a daemon without GPUs); default 1. */
  slots?: number;
}

export const SUBMISSION_SCHEMA = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: "https://baton.local/schemas/submission-v1.json",
  title: "Baton run submission",
  type: "object",
  additionalProperties: false,
  required: ["version", "kind"],
  properties: {
    version: { const: SUBMISSION_VERSION, description: "the document's version" },
    kind: { enum: [...RUN_KINDS], description: "pipeline: npm run pipeline; sweep: npm run dpo-sweep" },
    name: { type: "string", maxLength: 200, description: "a label for people" },
    args: {
      type: "array",
      maxItems: 1000,
      items: { type: "string", maxLength: 10_000 },
      description: "the command's flags, as on its command line (trainer flags after --)",
    },
    env: {
      type: "object",
      additionalProperties: false,
      properties: Object.fromEntries(
        SUBMISSION_VARIABLES.map((name) => [name, { type: "string", maxLength: 10_000 }]),
      ),
      description: "the pipeline's variables (docs/pipeline.md#environment)",
    },
    slots: {
      type: "integer",
      minimum: 1,
      maximum: 1024,
      description: "GPU slots it needs, CPU slots on a daemon without GPUs [1]",
    },
  },
} as const;
