/**
 * Give freed memory back to the system after bursts of traffic (issue #22: RSS while streaming at most 96 MiB).
 *
 * The Node path's Buffers (socket reads, cipher output, 64 KiB chunks) are malloc'd outside V8's heap. Once freed,
 * glibc keeps most of those pages in its arenas: after four parallel 64 MiB multipart parts the gateway rested at
 * 129 MiB RSS with 34 MiB of V8 heap; a malloc_trim(0) took it back to 98 (bench/README.md "Memory"). The native
 * addon's trim() is that call. It runs on the JavaScript thread and walks the arenas under their locks (about a
 * millisecond), so it is asked for only when it can pay off:
 *
 * - when the gateway has gone quiet (no request finished and none in flight for `quietMs`, seen by checks every
 *   `everyMs`) after serving requests since the last trim. At most once a minute (`collectEveryMs`) V8 collects first
 *   (`collect`: the addon's lowMemory(), V8's memory-reducing collections, or global.gc() under --expose-gc when the
 *   addon lacks its C++ part), so the Buffers only garbage still held are freed before the trim; lowMemory() also
 *   releases the young generation's idle semi-space and V8's pooled pages, which global.gc() leaves resident for
 *   seconds: 10 MiB less RSS at rest (bench/README.md "Memory"). Why not at every quiet period: a full collection
 *   with no request in flight kills the objects optimized code embeds (V8 then deoptimizes it: "dependency-change
 *   weak objects", 264 in four quiet periods), and the next few hundred requests cost 1.5-3x the CPU while TurboFan
 *   compiles again (bench/README.md "Warm-up"); with the cap a bursty client pays that once a minute at most. The
 *   collection takes 10-25 ms on the JavaScript thread, which is why it waits for a quiet second rather than any
 *   instant with nothing in flight (a client sending one request at a time is "idle" between every two). Checking
 *   four times a second trims 1.0-1.25 s after the last request (with one check a second it was 1-2 s: the
 *   benchmark's 5 GiB upload, which follows other targets' transfers by about two seconds, sometimes started before
 *   it);
 * - and, under traffic that never pauses, the trim alone once per `busyEveryMs` if requests were served meanwhile.
 *
 * Without the addon (not built, not Linux) there is nothing to call and the gateway simply keeps what glibc keeps.
 */
export interface TrimSource {
  /** Requests being served now. */
  inflight(): number;
  /** Requests finished since start (any monotonic count of activity). */
  served(): number;
}

export interface MemoryTrimOptions {
  /** The allocator's trim. */
  trim: () => void;
  /** V8's collection, run before a quiet trim (the addon's lowMemory(), or global.gc); none when absent. */
  collect?: () => void;
  /** How often the idle check runs (ms). Default 250. */
  everyMs?: number;
  /** How long nothing may finish or be in flight before the gateway counts as quiet (ms). Default 1000. */
  quietMs?: number;
  /**
   * V8 collects before a quiet trim at most this often (ms; default 60000); the quiet trims between give back the
   * allocator's free pages only. A quiet period's collection, owed since requests were served, comes once this much
   * has passed since the last one, at the first quiet check after.
   */
  collectEveryMs?: number;
  /** Under uninterrupted traffic, trim at most this often (ms). Default 30000. */
  busyEveryMs?: number;
  /** Told after each trim (metrics). */
  onTrim?: () => void;
  now?: () => number;
}

export class MemoryTrim {
  private lastServed: number;
  /** `served` at the previous tick: a change since (or anything in flight) is activity. */
  private lastTick: number;
  /** When a tick last saw activity. */
  private lastActive: number;
  private lastTrimAt: number;
  /** When V8 last collected for a trim (-Infinity: never, so the first quiet period collects). */
  private lastCollectAt = -Infinity;
  /** Requests were served since the last collection. */
  private collectOwed = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly now: () => number;

  constructor(private readonly src: TrimSource, private readonly o: MemoryTrimOptions) {
    this.now = o.now ?? (() => performance.now());
    this.lastServed = src.served();
    this.lastTick = this.lastServed;
    this.lastTrimAt = this.now();
    this.lastActive = this.lastTrimAt;
  }

  /** One check: trims when the rules above say so; returns whether it trimmed. */
  tick(): boolean {
    const served = this.src.served();
    const now = this.now();
    if (served !== this.lastTick || this.src.inflight() > 0) this.lastActive = now;
    this.lastTick = served;
    const quiet = now - this.lastActive >= (this.o.quietMs ?? 1000);
    const fresh = served !== this.lastServed; // requests served since the last trim: something new to give back
    if (fresh) this.collectOwed = true;
    const collect = quiet && this.collectOwed && now - this.lastCollectAt >= (this.o.collectEveryMs ?? 60_000);
    if (!collect) {
      if (!fresh) return false;
      if (!quiet && now - this.lastTrimAt < (this.o.busyEveryMs ?? 30_000)) return false;
    }
    this.lastServed = served;
    this.lastTrimAt = now;
    if (collect) {
      this.collectOwed = false;
      this.lastCollectAt = now;
      this.o.collect?.();
    }
    this.o.trim();
    this.o.onTrim?.();
    return true;
  }

  start(): this {
    if (!this.timer) {
      this.timer = setInterval(() => this.tick(), this.o.everyMs ?? 250);
      this.timer.unref(); // never what keeps the process alive
    }
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
