/**
 * The object layer's public surface: what the S3 front end (src/server), the admin jobs (src/admin), bench and
 * tests use. Everything else under src/store is internal to it.
 */
export { ObjectStore, WHOLE_BODY_MAX, type BestEffortReport, knownOf, notMd5, storedSizeOf, type PutCondition, type PutResult, type StoredObject } from './object-store.ts';
export { MultipartStore, MIN_PART_SIZE, type PartRecord } from './multipart-store.ts';
export { HeaderDoor, META_ETAG, META_FMT, META_OID, headerDir, headerPath, type HeaderPlace } from './header-door.ts';
export { HeaderCache, cloneHeaderKeys, wipeHeaderKeys } from './header-cache.ts';
export { ByteBudget, consuming, holdLastBytes, readExactly } from './streams.ts';
export { INLINE_HEADER_MAX, InlinePolicy, META_HEADER, inlineHeaderBytes, isInline, loadHeaderBytes, storeHeaderBytes, type HeaderSite } from './inline-header.ts';
