/**
 * Design (a) of issue #22's data plane, in its barest form: move bytes from one socket to another without Node
 * streams on the body path.
 *
 * What the default `a.pipe(b)` pays per 64 KiB (bench/relay-probe.ts profile, README "Data-plane designs"): a
 * fresh 64 KiB Buffer per read (malloc, page faults, zeroed pages, memcg charge), which only the garbage
 * collector frees (V8 counts it as external memory, so 256 MiB of reads drive major GCs: concurrent marking and
 * sweeping on helper threads as well as the main one), plus Readable/Writable bookkeeping per chunk. Here:
 *   - each direction reads into one reusable slab (`onread: { buffer, callback }`, 1 MiB by default), so a read
 *     takes whatever the kernel holds (up to the slab) and allocates nothing;
 *   - the callback writes the bytes it got to the other socket at once (one write per read, no queue);
 *   - backpressure: a write that the kernel did not take whole keeps a pointer into the slab, so reading stops
 *     (the callback returns false) until that write completes; memory stays at one slab per direction.
 * An optional `inspect` sees every view before it is written (the AES pass of the `-aes` modes).
 */
import net from 'node:net';

export const DEFAULT_SLAB = 1024 * 1024;

/** One direction: reads of `src` into `slab`, each written whole to `dst`. */
class Direction {
  src!: net.Socket;
  dst!: net.Socket;
  private waiting = false;
  readonly onread: { buffer: Buffer; callback: (n: number, buf: Buffer) => boolean };

  constructor(slabBytes: number, private readonly inspect?: (view: Buffer) => void) {
    this.onread = { buffer: Buffer.allocUnsafe(slabBytes), callback: (n, buf) => this.forward(n, buf) };
  }

  private forward(n: number, buf: Buffer): boolean {
    const view = buf.subarray(0, n);
    this.inspect?.(view);
    this.dst.write(view, this.written);
    // A write the kernel took whole has left nothing queued (onwrite ran synchronously): the slab is free again.
    // Anything queued still points into the slab, so no read may overwrite it before it is flushed.
    if (this.dst.writableLength === 0) return true;
    this.waiting = true;
    return false;
  }

  private readonly written = (err?: Error | null): void => {
    if (err || !this.waiting) return;
    this.waiting = false;
    this.src.resume(); // reading starts again (the callback's `false` had stopped it)
  };
}

/**
 * Relay `client` (an accepted socket of a server made with `pauseOnConnect: true`, so nothing was read yet) to a
 * new connection to `port`/`host`, both ways, on slabs. `inspectUp` sees client->backend bytes, `inspectDown`
 * backend->client bytes.
 */
export function leanRelay(
  client: net.Socket,
  port: number,
  host: string,
  o: { slabBytes?: number; inspectUp?: (view: Buffer) => void; inspectDown?: (view: Buffer) => void } = {},
): void {
  const slab = o.slabBytes ?? DEFAULT_SLAB;
  const up = new Direction(slab, o.inspectUp);
  const down = new Direction(slab, o.inspectDown);
  const upstream = net.connect({ port, host, onread: down.onread, noDelay: true });
  // The accepted socket was built without `onread`: hand its handle to one that has it (net.Socket accepts an
  // existing handle); the original object is left without a handle and never used again.
  const handle = (client as unknown as { _handle: unknown })._handle;
  (client as unknown as { _handle: unknown })._handle = null;
  const lean = new net.Socket({ handle, onread: up.onread } as net.SocketConstructorOpts);
  lean.setNoDelay(true);
  up.src = lean;
  up.dst = upstream;
  down.src = upstream;
  down.dst = lean;
  const close = () => (lean.destroy(), upstream.destroy());
  for (const s of [lean, upstream]) s.on('error', close).on('close', close);
  // one side's FIN ends the other's writing side once its queued bytes are out, as pipe() does
  lean.on('end', () => upstream.end());
  upstream.on('end', () => lean.end());
  // flowing mode, so 'end' is emitted at EOF (onread delivers the bytes; the Readable itself never holds any)
  lean.resume();
  upstream.resume();
}
