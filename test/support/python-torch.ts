/**
 * Real PyTorch for the interoperability tests: the first of $BATON_PYTHON, `python3` on the PATH
 * and Debian's /usr/bin/python3 (where `apt-get install python3-torch` puts torch, which a
 * pyenv or venv `python3` earlier on the PATH would hide) that can `import torch`. CI installs
 * python3-torch (.ci/run); without it the tests skip and say why.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";

const SCRIPT = join(import.meta.dirname, "..", "python", "baton_torch.py");

function findPython(): { python: string } | { missing: string } {
  const candidates = [process.env.BATON_PYTHON, "python3", "/usr/bin/python3"].filter(
    (c): c is string => typeof c === "string" && c !== "",
  );
  for (const candidate of candidates) {
    const probe = spawnSync(candidate, ["-c", "import torch"], { encoding: "utf8", timeout: 60_000 });
    if (probe.status === 0) return { python: candidate };
  }
  return {
    missing: `no python3 with PyTorch (tried ${candidates.join(", ")}): install it with apt-get install python3-torch`,
  };
}

const found = findPython();

/** The reason to skip a PyTorch test, or false when PyTorch is there. */
export const TORCH_MISSING: string | false = "missing" in found ? found.missing : false;

/** Run a baton_torch.py subcommand; its stdout on success, an error with its stderr otherwise. */
export function torchTool(...args: string[]): string {
  if (!("python" in found)) throw new Error(found.missing);
  const run = spawnSync(found.python, [SCRIPT, ...args], {
    encoding: "utf8",
    timeout: 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (run.status !== 0) {
    throw new Error(`baton_torch.py ${args[0]} exited ${run.status ?? run.signal}: ${run.stderr.trim()}`);
  }
  return run.stdout;
}

/** The JSON line a subcommand printed. */
export function torchJson<T>(...args: string[]): T {
  return JSON.parse(torchTool(...args)) as T;
}
