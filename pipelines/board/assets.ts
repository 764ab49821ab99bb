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

const bundles = new Map<string, string>();

/** A browser script bundled from `entry` (a page/*.ts module and what it imports) on first use, and kept. */
export function bundleScript(entry: string): string {
  const done = bundles.get(entry);
  if (done !== undefined) return done;
  const result = buildSync({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: "esm",
    target: "es2020",
    minify: true,
    legalComments: "none",
    logLevel: "silent",
  });
  const [output] = result.outputFiles;
  if (!output) throw new Error(`esbuild produced no output for ${entry}`);
  bundles.set(entry, output.text);
  return output.text;
}

/** The page script (about 100 ms to bundle). */
export function pageScript(): string {
  return bundleScript(join(PAGE_DIR, "main.ts"));
}

/** Serve what `make` gives (made once), with an ETag and the page's content security policy. */
export function assetRoute(path: string, type: string, make: () => string | Buffer): Route {
  let made: Asset | null = null;
  return {
    path,
    handle: (req, res) => {
      made ??= asset(type, make());
      const { body, etag } = made;
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
  };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function pageRoutes(options: PageOptions): Route[] {
  const config = escapeHtml(JSON.stringify({ title: options.title, panelScripts: options.panelScripts }));
  const html = readFileSync(join(PAGE_DIR, "index.html"), "utf8")
    .replaceAll("{{title}}", escapeHtml(options.title))
    .replace("{{config}}", config);
  return [
    assetRoute("/", "text/html; charset=utf-8", () => html),
    assetRoute("/assets/board.js", "text/javascript; charset=utf-8", pageScript),
    assetRoute("/assets/board.css", "text/css; charset=utf-8", () =>
      readFileSync(join(PAGE_DIR, "style.css")),
    ),
    assetRoute("/assets/uplot.css", "text/css; charset=utf-8", () =>
      readFileSync(require.resolve("uplot/dist/uPlot.min.css")),
    ),
  ];
}
