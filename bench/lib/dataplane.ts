/**
 * The native data plane for the benchmarks: the gateway's own loader and types (src/engine/dataplane.ts), with the
 * addon built first when stale (scripts/build-native.mjs) — the gateway never compiles at run time, a benchmark may.
 */
import { buildNative } from '../../scripts/build-native.mjs';
import { dataplaneUnavailable, nativeDataplane, type Addon } from '../../src/engine/dataplane.ts';

export { answerGate, fdOf, newGate, pump, type PumpError, type PumpMode, type PumpOptions, type PumpResult } from '../../src/engine/dataplane.ts';

/** Build when stale, then load (throws when it cannot: a benchmark of the native ways needs it). */
export function loadDataplane(): Addon {
  buildNative({ quiet: true });
  const a = nativeDataplane();
  if (!a) throw new Error(`native data plane unavailable: ${dataplaneUnavailable()}`);
  return a;
}
