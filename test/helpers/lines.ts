// Newline-delimited text from a child's stdout or a socket: one callback per whole line.
import type { Readable } from 'node:stream';

/** Calls `onLine` with each complete line (without its "\n"); a partial line waits for the rest. */
export function onLines(stream: Readable, onLine: (line: string) => void): void {
  let buf = '';
  stream.on('data', (chunk: Buffer | string) => {
    buf += chunk.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      onLine(line);
    }
  });
}
