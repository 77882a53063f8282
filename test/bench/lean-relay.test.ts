/**
 * bench/lib/relay.ts tcp-lean and tcp-lean-aes (issue #22 design (a), bench/lib/lean-pipe.ts) between real TCP
 * sockets on loopback: a client -> relay -> a backend that checks what it got and then sends a long answer.
 * The bytes must pass unchanged both ways (each direction reads into one reused slab, so a write that was still
 * queued when the next read landed would show as corrupted bytes: the stream's period is not a multiple of the
 * slab), and while the client reads nothing the relay must stop reading the backend (bounded memory): the backend
 * then stalls with most of its answer unsent. Nothing here is about speed.
 */
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startRelay } from '../../bench/lib/targets.ts';
import { pollUntil } from '../../tools/wait.ts';

const MiB = 1024 * 1024;
const UP = 24 * MiB;
const DOWN = 128 * MiB;
/** Period of the generated streams: not a multiple of the 1 MiB slab nor of the 64 KiB AES chunk. */
const pattern = randomBytes(3 * MiB + 4099);

/** `size` bytes of the periodic stream, from `from`, in `chunk`-byte pieces. */
function* pieces(size: number, chunk = MiB): Generator<Buffer> {
  for (let sent = 0; sent < size; ) {
    const off = sent % pattern.length;
    const n = Math.min(chunk, size - sent, pattern.length - off);
    yield pattern.subarray(off, off + n);
    sent += n;
  }
}
function hashOf(size: number): string {
  const h = createHash('sha256');
  for (const p of pieces(size)) h.update(p);
  return h.digest('hex');
}

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

describe.each(['tcp-lean', 'tcp-lean-aes'])('relay.ts %s', (mode) => {
  it('passes bytes unchanged both ways and stops reading the backend while the client does not read', async () => {
    // the backend: hashes the first UP bytes, then answers DOWN bytes, writing only when the socket drained
    const state = { upHash: '', pushed: 0, waitingSince: 0, done: false };
    const backend = net.createServer((s) => {
      const h = createHash('sha256');
      let got = 0;
      s.on('data', (d: Buffer) => {
        h.update(d);
        got += d.length;
        if (got === UP) {
          state.upHash = h.digest('hex');
          const it = pieces(DOWN);
          const more = () => {
            state.waitingSince = 0;
            for (let r = it.next(); !r.done; r = it.next()) {
              state.pushed += r.value.length;
              if (!s.write(r.value)) {
                state.waitingSince = Date.now();
                return void s.once('drain', more);
              }
            }
            state.done = true;
          };
          more();
        }
      });
      s.on('error', () => {});
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    cleanup.push(() => backend.close());
    const port = (backend.address() as net.AddressInfo).port;
    const relay = await startRelay(mode, { endpoint: `http://127.0.0.1:${port}`, accessKey: 'unused', secretKey: 'unused' });
    cleanup.push(() => relay.child.kill());

    const client = net.connect(Number(new URL(relay.endpoint).port), '127.0.0.1');
    cleanup.push(() => client.destroy());
    client.pause(); // reads nothing until the backend has stalled
    const down = createHash('sha256');
    let received = 0;
    client.on('data', (d: Buffer) => {
      down.update(d);
      received += d.length;
    });
    for (const p of pieces(UP)) if (!client.write(p)) await new Promise((r) => client.once('drain', r));

    await pollUntil(() => state.upHash !== '', { timeoutMs: 60_000, what: `the backend to get ${UP} bytes through ${mode}` });
    expect(state.upHash).toBe(hashOf(UP));

    // with the client not reading, the backend must come to wait for 'drain' for good: the relay holds one slab
    // and the kernel's socket buffers, nowhere near the whole answer (a relay that kept reading would queue it all)
    await pollUntil(() => state.done || (state.waitingSince > 0 && Date.now() - state.waitingSince > 1500), { timeoutMs: 60_000, intervalMs: 100, what: 'the backend to stall or finish' });
    expect(state.done).toBe(false);
    expect(state.pushed).toBeLessThan(DOWN - 32 * MiB);

    client.resume();
    await pollUntil(() => received === DOWN, { timeoutMs: 90_000, what: `the client to get ${DOWN} bytes through ${mode}` });
    expect(state.done).toBe(true);
    expect(down.digest('hex')).toBe(hashOf(DOWN));
  }, 240_000);
});
