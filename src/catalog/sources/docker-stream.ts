// Splits the Docker /events body into JSON values. Docker writes one object per line, but
// proxies and older engines may glue objects together or split them across chunks, so this
// tracks object depth (outside strings) instead of trusting newlines. Pure; no I/O.

/** Objects larger than this are dropped: one event is a few hundred bytes. */
export const MAX_EVENT_BYTES = 1 << 20;

export class JsonObjectSplitter {
  private buf = '';
  private depth = 0;
  private inString = false;
  private escaped = false;
  private scanned = 0; // how far `buf` has been scanned
  private discarding = false; // inside an oversize object: track its depth, keep nothing, emit nothing
  /** Count of values that were not valid JSON or too large (skipped, never thrown). */
  dropped = 0;

  /** Feeds a chunk; returns the complete top-level values it finished. */
  push(chunk: string): unknown[] {
    const out: unknown[] = [];
    this.buf += chunk;
    let start = 0;
    for (let i = this.scanned; i < this.buf.length; i++) {
      const ch = this.buf[i];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (ch === '\\') this.escaped = true;
        else if (ch === '"') this.inString = false;
        continue;
      }
      if (ch === '"') {
        if (this.depth === 0) start = i; // a stray string at the top level: resync on the next '{'
        this.inString = this.depth > 0;
      } else if (ch === '{') {
        if (this.depth === 0) start = i;
        this.depth++;
      } else if (ch === '}' && this.depth > 0) {
        this.depth--;
        if (this.depth === 0) {
          if (this.discarding) {
            this.discarding = false; // the end of the dropped object: nothing of it is emitted
          } else {
            const text = this.buf.slice(start, i + 1);
            try {
              out.push(JSON.parse(text));
            } catch {
              this.dropped++;
            }
          }
          start = i + 1;
        }
      } else if (this.depth === 0) {
        start = i + 1; // whitespace or garbage between objects
      }
    }
    this.buf = this.buf.slice(start);
    this.scanned = this.buf.length;
    if (this.buf.length > MAX_EVENT_BYTES || (this.discarding && this.buf.length > 0)) {
      // An object this large is not an event: drop what we hold, but keep tracking its depth
      // (and strings) so its tail is skipped too rather than mistaken for events.
      if (!this.discarding && this.depth > 0) this.dropped++;
      this.discarding = this.depth > 0;
      this.buf = '';
      this.scanned = 0;
    }
    return out;
  }
}
