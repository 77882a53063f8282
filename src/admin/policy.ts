/**
 * The admin port's background key policy: automatic KEK rotation (datasets with `rotateEveryDays` rotate when
 * their active version is older) and the destruction sweep (KEK versions pending destruction, destroyed when due).
 */
import type { KeyService } from '../keys/service.ts';
import { defaultOf } from '../ops/config.ts';
import type { RewrapManager } from './rewrap.ts';
import { DestructionSweep } from './sweep.ts';

export interface RotationDataset {
  name: string;
  rotateEveryDays?: number;
}

const DAY = 86_400_000;

export class RotationPolicy {
  private timer?: NodeJS.Timeout;
  /** Destruction of KEK versions whose waiting period is over; its `waitSeconds` is the configured minimum. */
  readonly deletion: DestructionSweep;
  constructor(
    private readonly keys: KeyService,
    private readonly rewrap: RewrapManager,
    private readonly datasets: RotationDataset[],
    private readonly log?: { info(o: object, msg?: string): void; warn(o: object, msg?: string): void },
    o: { keyDeletionWaitSeconds?: number } = {},
  ) {
    this.deletion = new DestructionSweep({ keys, rewrap }, o.keyDeletionWaitSeconds ?? defaultOf('keyDeletionWaitSeconds'), log);
  }

  /** Check every dataset once; returns the datasets rotated. */
  async check(now = Date.now()): Promise<string[]> {
    const rotated: string[] = [];
    for (const d of this.datasets) {
      if (!d.rotateEveryDays) continue;
      try {
        const view = await this.keys.show(d.name);
        const active = view?.versions.find((v) => v.state === 'active');
        if (!active) continue; // no key yet (created lazily on the first write) or everything revoked
        if (now - Date.parse(active.createdAt) < d.rotateEveryDays * DAY) continue;
        // re-read right before rotating: another gateway may just have done it
        const fresh = (await this.keys.show(d.name))?.versions.find((v) => v.state === 'active');
        if (!fresh || fresh.version !== active.version) continue;
        const v = await this.keys.rotate(d.name, 'policy');
        rotated.push(d.name);
        this.log?.info({ dataset: d.name, version: v }, 'KEK rotated by policy');
        await this.rewrap.start(d.name, 'policy');
      } catch (e) {
        this.log?.warn({ err: e, dataset: d.name }, 'policy rotation failed');
      }
    }
    return rotated;
  }

  start(intervalMs = 3_600_000): void {
    this.deletion.start();
    if (!this.datasets.some((d) => d.rotateEveryDays)) return;
    void this.check();
    this.timer = setInterval(() => void this.check(), intervalMs);
    this.timer.unref?.();
  }

  stop(): void {
    this.deletion.stop();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
