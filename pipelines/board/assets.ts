/*
 * The page and everything it loads, served from this process: the script is bundled from
 * page/*.ts (with uPlot) by esbuild once per process, so a checkout needs no build step and the
 * page fetches nothing from outside the machine.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { buildSync } from "esbuild";
import { type Route, send } from "./http.ts";

const PAGE_DIR = join(import.meta.dirname, "page");
const require = createRequire(import.meta.url);

export interface PageOptions {
  title: string;
  /** Scripts of further panels (served by the host's own routes), loaded after the board's. */
  panelScripts: string[];
}

interface Asset {
  type: string;
  body: Buffer;
  etag: string;
}

function asset(type: string, body: string | Buffer): Asset {
  const bytes = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  return { type, body: bytes, etag: `"${createHash("sha1").update(bytes).digest("hex").slice(0, 16)}"` };
}

let bundled: string | null = null;

/** The page script, bundled on first use (about 100 ms) and kept. */
export function pageScript(): string {
  if (bundled !== null) return bundled;
  const result = buildSync({
    entryPoints: [join(PAGE_DIR, "main.ts")],
    bundle: true,
    write: false,
    format: "esm",
    target: "es2020",
    minify: true,
    legalComments: "none",
    logLevel: "silent",
  });
  const [output] = result.outputFiles;
  if (!output) throw new Error(`esbuild produced no output for ${join(PAGE_DIR, "main.ts")}`);
  bundled = output.text;
  return bundled;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function pageRoutes(options: PageOptions): Route[] {
  const config = escapeHtml(JSON.stringify({ title: options.title, panelScripts: options.panelScripts }));
  const html = readFileSync(join(PAGE_DIR, "index.html"), "utf8")
    .replaceAll("{{title}}", escapeHtml(options.title))
    .replace("{{config}}", config);
  const assets = new Map<string, () => Asset>();
  const once = (make: () => Asset): (() => Asset) => {
    let made: Asset | null = null;
    return () => {
      made ??= make();
      return made;
    };
  };
  assets.set(
    "/",
    once(() => asset("text/html; charset=utf-8", html)),
  );
  assets.set(
    "/assets/board.js",
    once(() => asset("text/javascript; charset=utf-8", pageScript())),
  );
  assets.set(
    "/assets/board.css",
    once(() => asset("text/css; charset=utf-8", readFileSync(join(PAGE_DIR, "style.css")))),
  );
  assets.set(
    "/assets/uplot.css",
    once(() => asset("text/css; charset=utf-8", readFileSync(require.resolve("uplot/dist/uPlot.min.css")))),
  );
  return [...assets.entries()].map(([path, get]) => ({
    path,
    handle: (req, res) => {
      const { type, body, etag } = get();
      if (req.headers["if-none-match"] === etag) {
        res.writeHead(304, { etag });
        res.end();
        return;
      }
      send(res, 200, type, body, {
        etag,
        "cache-control": "no-cache",
        // Everything comes from this server; nothing may be loaded from elsewhere.
        "content-security-policy":
          "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; connect-src 'self'",
      });
    },
  }));
}
