/**
 * Stopping and restarting node:http's reads on a client socket, for the native data plane (its pump reads the fd
 * itself) and for a held `Expect: 100-continue` (src/server/expect-continue.ts). libuv's reads stop at the handle;
 * node:http's own `_paused` guard keeps its resume hooks (a drained response, a consumed request) from restarting them.
 */
import type net from 'node:net';

type ReadHandle = { reading?: boolean; readStop(): number; readStart(): number };
const handleOf = (s: net.Socket) => (s as unknown as { _handle?: ReadHandle | null })._handle ?? null;
const setPaused = (s: net.Socket, v: boolean) => void ((s as unknown as { _paused: boolean })._paused = v);

/** Stop reading the socket; false when it has no handle (closed), and then nothing changed. */
export function stopReads(socket: net.Socket): boolean {
  const h = handleOf(socket);
  if (!h) return false;
  setPaused(socket, true);
  h.reading = false;
  h.readStop();
  return true;
}

/**
 * Read the socket again. Its parser resumed first: node:http pauses llhttp after a run of it that left the socket
 * `_paused` (reads stopped from inside a parser callback, as expect-continue.ts does), and a paused llhttp answers the
 * next bytes with a parse error (400 Bad Request, no body). The socket flowing again, not only its handle reading:
 * node:http bounds a body it buffers by pausing the socket when the request's buffer is full, and a pause of a socket
 * already paused emits nothing, so without the resume its reads went on: a connection's next body was read into memory
 * whole (session 17: up to several MiB of a 16 MiB part).
 */
export function startReads(socket: net.Socket): void {
  (socket as unknown as { parser?: { resume(): void } | null }).parser?.resume();
  setPaused(socket, false);
  socket.resume();
  const h = handleOf(socket);
  if (h && !h.reading) {
    h.reading = true;
    h.readStart();
  }
}
