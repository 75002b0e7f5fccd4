/**
 * The dashboard's sign-in: the access token the client sends lives in localStorage under
 * ACCESS_TOKEN_KEY, with its expiry beside it. A page without a token, or whose token has
 * expired, shows the sign-in form instead of the dashboard. (Refresh tokens and a fuller login
 * page come with the dashboard issue.)
 */
import { ACCESS_TOKEN_KEY } from './client';

export const ACCESS_EXPIRES_KEY = 'tickmeshAccessExpires';

/** Whether a stored token can still be used at `now` (a token without a stored expiry counts). */
export function hasSession(storage: Pick<Storage, 'getItem'>, now: number): boolean {
  if (!storage.getItem(ACCESS_TOKEN_KEY)) return false;
  const expires = Date.parse(storage.getItem(ACCESS_EXPIRES_KEY) ?? '');
  return Number.isNaN(expires) || expires > now;
}

export function storeSession(storage: Pick<Storage, 'setItem'>, token: string, expiresAt: string): void {
  storage.setItem(ACCESS_TOKEN_KEY, token);
  storage.setItem(ACCESS_EXPIRES_KEY, expiresAt);
}
