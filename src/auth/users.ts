import { timingSafeEqual } from 'node:crypto';
import { S3Error } from '../errors.ts';
import { Tenants } from './tenants.ts';

export interface User {
  accessKey: string;
  secretKey: string;
  /** Bucket names this user may touch; '*' = every bucket. */
  buckets: string[];
  admin: boolean;
  /** The tenant the user belongs to: it reaches that tenant's buckets only; an admin is scoped to it. */
  tenant?: string;
}

/**
 * Access keys and what each may reach. The root key is admin and reaches every bucket. A user of a tenant
 * reaches the buckets its tenant owns (configured, or created by one of the tenant's users) that its own
 * `buckets` allow ('*' = all of them), plus a bucket no tenant owns only when its `buckets` name it explicitly
 * (that is how it creates a new bucket, which then belongs to the tenant). Users without a tenant keep the plain
 * rule (`buckets`, '*' = every bucket). The tenants' admins are users too (admin API only, no bucket).
 */
export class Users {
  private readonly byKey = new Map<string, User>();
  readonly tenants: Tenants;
  constructor(users: User[], tenants: Tenants = new Tenants()) {
    this.tenants = tenants;
    for (const u of [...users, ...tenants.adminUsers()]) this.byKey.set(u.accessKey, u);
  }
  secretFor = (accessKey: string): string | undefined => this.byKey.get(accessKey)?.secretKey;
  get(accessKey: string): User | undefined {
    return this.byKey.get(accessKey);
  }
  /**
   * `creating`: the request is a CreateBucket. A tenant user whose `buckets` say '*' may create any bucket no
   * tenant owns yet (the handler then records it as its tenant's); to reach it otherwise, the bucket must be its
   * tenant's.
   */
  canAccess(user: User, bucket: string, creating = false): boolean {
    const listed = user.buckets.includes(bucket);
    const any = user.buckets.includes('*');
    if (user.tenant === undefined) return any || listed;
    const owner = this.tenants.ownerOf(bucket);
    if (owner === user.tenant) return any || listed;
    return owner === undefined && (listed || (creating && any));
  }
  authorize(user: User, bucket: string, creating = false): void {
    if (!this.canAccess(user, bucket, creating)) throw new S3Error('AccessDenied');
  }
  /** Constant-time check of a presented secret (admin basic-auth style logins). */
  checkSecret(accessKey: string, secret: string): User | undefined {
    const u = this.byKey.get(accessKey);
    const a = Buffer.from(secret, 'utf8');
    const b = Buffer.from(u?.secretKey ?? '\u0000'.repeat(a.length || 1), 'utf8');
    const same = a.length === b.length && timingSafeEqual(a, b);
    return u && same ? u : undefined;
  }
}
