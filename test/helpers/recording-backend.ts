/**
 * A real backend with every method call recorded (operation, bucket, key): how many backend requests a gateway
 * request costs. Calls run on the backend itself, so a method that uses another internally (fs getBuffer ->
 * getObject) counts once, as the one request it is.
 */
import type { Backend } from '../../src/backend/types.ts';

export interface Call {
  op: string;
  bucket: string;
  key: string;
}

export function recording(inner: Backend): { backend: Backend; calls: Call[] } {
  const calls: Call[] = [];
  const backend = new Proxy(inner, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop, target);
      if (typeof v !== 'function' || prop === 'constructor') return v;
      return (...args: unknown[]) => {
        calls.push({ op: String(prop), bucket: typeof args[0] === 'string' ? args[0] : '', key: typeof args[1] === 'string' ? args[1] : '' });
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { backend, calls };
}
