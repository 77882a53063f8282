/**
 * The rules for destroying a KEK version, with a waiting period (as key management services do):
 *  - scheduling: never the active version, never while headers still name it (unless forced); the version becomes
 *    pending-destruction for `keyDeletionWaitSeconds` (a caller may ask for longer, never shorter) — reads of its
 *    data are refused, its wrapped material is kept, `cancel-destroy` puts it back;
 *  - when due (src/admin/sweep.ts, or a read touching it): the reference rule is checked again; a destruction that
 *    was not forced and finds headers naming the version is held (left pending, audited), else the material goes.
 */
import { S3Error } from '../errors.ts';
import type { KeyService } from '../keys/service.ts';
import type { RewrapManager } from './rewrap.ts';

export interface DestroyResult {
  dataset: string;
  version: number;
  state: 'pending-destruction';
  /** When the destruction is due (ISO time). */
  destroyAt: string;
  scheduledBy: string;
  /** Headers that referenced the version when it was scheduled (lost when it is destroyed, if forced). */
  referencingHeaders: number;
  forced: boolean;
  /** The version was already pending destruction: that schedule stands (nothing changed). */
  alreadyPending: boolean;
}

export interface DestroyContext {
  keys: KeyService;
  rewrap: Pick<RewrapManager, 'scan'>;
}

/** Headers depending on the version, by a fresh scan (format 1 too: an older gateway may still write them). */
async function referencing(ctx: DestroyContext, dataset: string, version: number): Promise<number> {
  return (await ctx.rewrap.scan(dataset)).byVersion[version] ?? 0;
}

export async function scheduleKekDestroy(
  ctx: DestroyContext,
  dataset: string,
  version: number,
  o: { force: boolean; actor: string; waitSeconds?: number; minWaitSeconds: number },
): Promise<DestroyResult> {
  const wait = o.waitSeconds ?? o.minWaitSeconds;
  if (!Number.isInteger(wait) || wait < o.minWaitSeconds) {
    throw new S3Error('InvalidArgument', `waitSeconds must be an integer of at least ${o.minWaitSeconds} (keyDeletionWaitSeconds): a waiting period can be lengthened, never shortened`);
  }
  const view = await ctx.keys.show(dataset);
  if (!view) throw new S3Error('NoSuchKey', `unknown dataset ${dataset}`);
  const v = view.versions.find((x) => x.version === version);
  if (!v) throw new S3Error('InvalidArgument', `dataset ${dataset} has no key version ${version}`);
  if (v.state === 'active') throw new S3Error('InvalidRequest', `key version ${version} is active: rotate first`);
  if (v.state === 'destroyed') throw new S3Error('InvalidRequest', `key version ${version} is already destroyed`);
  const refs = v.state === 'pending-destruction' ? 0 : await referencing(ctx, dataset, version);
  if (refs > 0 && !o.force) {
    throw new S3Error('InvalidRequest', `${refs} header(s) still reference key version ${version}: run the re-wrap first (or pass force)`);
  }
  const s = await ctx.keys.kekDestruction.scheduleDestroy(dataset, version, { destroyAt: new Date(Date.now() + wait * 1000), actor: o.actor, force: o.force, referencingHeaders: refs });
  return {
    dataset,
    version,
    state: 'pending-destruction',
    destroyAt: s.destroyAt,
    scheduledBy: s.scheduledBy,
    referencingHeaders: refs,
    forced: s.forced,
    alreadyPending: s.alreadyPending,
  };
}

export type DueOutcome = 'destroyed' | 'held' | 'not-due' | 'not-pending';

/**
 * Carry out a due destruction: idempotent, safe with several gateways (the keystore write is conditional and
 * checks the schedule it was decided on). Not forced and headers still referencing the version: held, with an
 * audit record saying why (once per count).
 */
export async function finishDueDestroy(ctx: DestroyContext, dataset: string, version: number, actor = 'system:sweep', now = Date.now()): Promise<DueOutcome> {
  const v = (await ctx.keys.show(dataset))?.versions.find((x) => x.version === version);
  if (v?.state !== 'pending-destruction' || !v.destroyAt) return 'not-pending';
  if (Date.parse(v.destroyAt) > now) return 'not-due';
  const refs = await referencing(ctx, dataset, version);
  if (refs > 0 && !v.destroyForced) {
    await ctx.keys.kekDestruction.holdDestroy(dataset, version, refs, actor);
    return 'held';
  }
  const done = await ctx.keys.kekDestruction.destroy(dataset, version, { actor, expectDestroyAt: v.destroyAt, referencingHeaders: refs, now });
  return done ? 'destroyed' : 'not-pending';
}
