/** How Baton runs its TypeScript programs as children: this Node, the tsx loader, the script. */

/** The tsx loader by absolute URL, so a child starts whatever its working directory. */
export const TSX_LOADER = import.meta.resolve("tsx");

export function nodeScript(script: string, args: readonly string[] = []): { file: string; args: string[] } {
  return { file: process.execPath, args: ["--import", TSX_LOADER, script, ...args] };
}
