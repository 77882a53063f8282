/*
 * The one V8 call lakecrypt's memory trim needs and Node does not expose (src/ops/memory-trim.ts, issue #22: RSS).
 *
 * A critical memory-pressure notification runs V8's memory-reducing full collections: besides what global.gc()
 * frees, they uncommit the young generation's idle semi-space and give V8's pooled pages to the system. A global.gc()
 * at the idle moment cannot: V8 reduces the young generation only after 5 s of low allocation, and until then its
 * semi-spaces (4 MiB each under --max-semi-space-size=4) stay resident. Measured on the gateway after 4 KiB
 * PUT/GET/HEAD bursts: 90-93 MiB RSS with global.gc(), 79-81 with this call (bench/README.md "Memory"). The level is
 * set back to none at once: left at critical, V8 would keep favouring memory over speed under the next traffic.
 * Isolate::LowMemoryNotification() frees as much but runs up to seven collections (22 against 10 ms here).
 *
 * C++ because the call is on v8::Isolate, not in Node-API; compiled into the same addon as native/dataplane.c
 * (scripts/build-native.mjs), against the running node's headers. Only two symbols are used, both exported by the
 * node binary (Isolate::GetCurrent, Isolate::MemoryPressureNotification): no libstdc++, no exceptions, no RTTI.
 * It must run on the JavaScript thread (the isolate's own); the addon's lowMemory() is only called from there.
 */
#include <v8-isolate.h>

extern "C" int lc_low_memory(void) {
  v8::Isolate *isolate = v8::Isolate::GetCurrent();
  if (!isolate) return 0;
  isolate->MemoryPressureNotification(v8::MemoryPressureLevel::kCritical);
  isolate->MemoryPressureNotification(v8::MemoryPressureLevel::kNone);
  return 1;
}
