// Listening and closing an HTTP server, shared by the control API and the metrics endpoint.
import type * as http from 'node:http';

/** Listens and resolves with the bound port (the real one when `port` is 0). */
export async function listenHttp(server: http.Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  return typeof addr === 'object' && addr ? addr.port : port;
}

/** Closes the server without waiting for idle keep-alive connections to time out. */
export async function closeHttp(server: http.Server | undefined): Promise<void> {
  if (!server) return;
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
}
