/** Starting a server: one listen attempt as a promise. */
import type { ListenOptions, Server } from "node:net";

/**
 * Listen on `target` (a port and host, or a Unix socket path): resolves once the server listens,
 * rejects with the listen error (EADDRINUSE…) as it is. Either way no listener is left behind.
 */
export function listenOnce(server: Server, target: ListenOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => {
      server.off("listening", onListening);
      reject(error);
    };
    const onListening = (): void => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(target);
  });
}
