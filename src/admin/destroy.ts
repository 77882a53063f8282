/** The rule for destroying a KEK version: never the active one, and never while headers still name it (unless forced). */
import { S3Error } from '../errors.ts';
import type { KeyService } from '../keys/service.ts';
import type { RewrapManager } from './rewrap.ts';

export interface DestroyResult {
  dataset: string;
  destroyed: number;
  referencingHeaders: number;
  forced: boolean;
}

export async function destroyKekVersion(
  ctx: { keys: KeyService; rewrap: RewrapManager },
  dataset: string,
  version: number,
  o: { force: boolean; actor: string },
): Promise<DestroyResult> {
  const view = await ctx.keys.show(dataset);
  if (!view) throw new S3Error('NoSuchKey', `unknown dataset ${dataset}`);
  const v = view.versions.find((x) => x.version === version);
  if (!v) throw new S3Error('InvalidArgument', `dataset ${dataset} has no key version ${version}`);
  if (v.state === 'active') throw new S3Error('InvalidRequest', `key version ${version} is active: rotate first`);
  // Always a fresh scan, even for a dataset whose record says format 2 only: a gateway of an older release
  // still running may have written format-1 headers under this version.
  const refs = (await ctx.rewrap.scan(dataset)).byVersion[version] ?? 0;
  if (refs > 0 && !o.force) {
    throw new S3Error('InvalidRequest', `${refs} header(s) still reference key version ${version}: run the re-wrap first (or pass force)`);
  }
  await ctx.keys.destroy(dataset, version, o.actor);
  return { dataset, destroyed: version, referencingHeaders: refs, forced: refs > 0 };
}
