import { timingSafeEqual } from 'node:crypto';
import { S3Error } from '../errors.ts';

export interface User {
  accessKey: string;
  secretKey: string;
  /** Bucket names this user may touch; '*' = every bucket. */
  buckets: string[];
  admin: boolean;
}

/** Access keys and what each may reach. The root key is admin and reaches every bucket. */
export class Users {
  private readonly byKey = new Map<string, User>();
  constructor(users: User[]) {
    for (const u of users) this.byKey.set(u.accessKey, u);
  }
  secretFor = (accessKey: string): string | undefined => this.byKey.get(accessKey)?.secretKey;
  get(accessKey: string): User | undefined {
    return this.byKey.get(accessKey);
  }
  canAccess(user: User, bucket: string): boolean {
    return user.buckets.includes('*') || user.buckets.includes(bucket);
  }
  authorize(user: User, bucket: string): void {
    if (!this.canAccess(user, bucket)) throw new S3Error('AccessDenied');
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
