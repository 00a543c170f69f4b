// A burst of task adds from many concurrent keep-alive clients (fetch), run as its own process
// so that the server's event-loop stalls do not stall the clients. Prints one JSON line:
// how many requests ended with each HTTP status or each error code.
//   node burst-client.js <api-url> <service> <clients> <writes-per-client> <max-think-ms>
const [base, service, clients, perClient, thinkMs] = process.argv.slice(2);
if (!base || !service) throw new Error('usage: burst-client.js <api-url> <service> <clients> <writes-per-client> <max-think-ms>');

const outcomes: Record<string, number> = {};
const count = (k: string): void => void (outcomes[k] = (outcomes[k] ?? 0) + 1);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function client(): Promise<void> {
  for (let i = 0; i < Number(perClient); i++) {
    // Think time: the next request arrives on an idle keep-alive socket, possibly mid-stall.
    await sleep(Math.random() * Number(thinkMs));
    try {
      const res = await fetch(new URL('/v1/tasks', base), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ service }),
        signal: AbortSignal.timeout(90_000),
      });
      const body = (await res.json()) as { error?: { code?: string } };
      count(res.ok ? String(res.status) : `${res.status} ${body.error?.code ?? ''}`);
    } catch (e) {
      const cause = (e as { cause?: { code?: string; name?: string } }).cause;
      count(cause?.code ?? cause?.name ?? (e as Error).name);
    }
  }
}

await Promise.all(Array.from({ length: Number(clients) }, client));
console.log(JSON.stringify(outcomes));
