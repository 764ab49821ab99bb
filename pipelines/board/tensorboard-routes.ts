/*
 * TensorBoard's own JSON endpoints for scalars, answering as TensorBoard 2.x's data-provider path
 * does, so scripts written against TensorBoard work against the board unchanged. One difference,
 * on purpose: TensorBoard returns a sample of at most 1000 points per series (its reservoir and
 * downsampling); the board returns every point.
 */
import type { LogdirScalars } from "../../lib/tensorboard/logdir-scalars.ts";
import { pyJson, scalarsCsv, scalarsJson } from "../../lib/tensorboard/tb-format.ts";
import { HttpError, type Route, readBody, send, sendJson } from "./http.ts";

/** Python's %r of a str or None, for messages worded as TensorBoard words them. */
function pyRepr(text: string | null): string {
  if (text === null) return "None";
  return `'${text.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

/** TensorBoard renders descriptions as sanitised Markdown; plain text in a paragraph is its rendering of prose. */
function descriptionHtml(description: string): string {
  if (description === "") return "";
  const escaped = description.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<p>${escaped}</p>`;
}

export function tensorBoardRoutes(scalars: LogdirScalars): Route[] {
  const series = (run: string, tag: string) => scalars.run(run)?.scalars.series(tag);
  return [
    {
      path: "/data/logdir",
      handle: (_req, res) => sendJson(res, pyJson({ logdir: scalars.logdir })),
    },
    {
      path: "/data/runs",
      handle: (_req, res) => sendJson(res, pyJson(scalars.runNames())),
    },
    {
      path: "/data/plugin/scalars/tags",
      handle: (_req, res) => {
        const index: Record<string, Record<string, { displayName: string; description: string }>> = {};
        for (const name of scalars.runNames()) {
          const tags = scalars.run(name)?.scalars.scalarTags() ?? [];
          if (tags.length === 0) continue;
          const entry: Record<string, { displayName: string; description: string }> = {};
          for (const { tag, displayName, description } of tags) {
            entry[tag] = { displayName, description: descriptionHtml(description) };
          }
          index[name] = entry;
        }
        sendJson(res, pyJson(index));
      },
    },
    {
      path: "/data/plugin/scalars/scalars",
      handle: (_req, res, url) => {
        const run = url.searchParams.get("run");
        const tag = url.searchParams.get("tag");
        if (run === null || tag === null) {
          throw new HttpError(
            400,
            `Invalid argument: Both run and tag must be specified: tag=${pyRepr(tag)}, run=${pyRepr(run)}`,
          );
        }
        const found = series(run, tag);
        if (!found)
          throw new HttpError(404, `Not found: No scalar data for run=${pyRepr(run)}, tag=${pyRepr(tag)}`);
        if (url.searchParams.get("format") === "csv") send(res, 200, "text/csv", scalarsCsv(found));
        else sendJson(res, scalarsJson(found));
      },
    },
    {
      method: "POST",
      path: "/data/plugin/scalars/scalars_multirun",
      handle: async (req, res) => {
        const form = new URLSearchParams(await readBody(req));
        const tags = form.getAll("tag");
        if (tags.length !== 1)
          throw new HttpError(400, "Invalid argument: tag must be specified exactly once");
        const tag = tags[0] as string;
        const parts: string[] = [];
        for (const run of new Set(form.getAll("runs"))) {
          const found = series(run, tag);
          if (found) parts.push(`${JSON.stringify(run)}: ${scalarsJson(found)}`);
        }
        sendJson(res, `{${parts.join(", ")}}`);
      },
    },
  ];
}
