/**
 * Password hashing: argon2id through @node-rs/argon2 (prebuilt binaries from npm). Parameters
 * are OWASP's first recommendation (19 MiB memory, 2 passes, 1 lane) and travel inside the PHC
 * string, so raising them later still verifies old hashes. Passwords are never logged.
 */
import { hash, verify } from '@node-rs/argon2';
import { BadArgumentError } from './errors.ts';

/** `Algorithm.Argon2id`: a const enum, which verbatimModuleSyntax cannot import. */
const ARGON2ID = 2;
const PARAMS = { algorithm: ARGON2ID, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export const MIN_PASSWORD_LENGTH = 8;

export function checkPasswordStrength(password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH || password.length > 1024)
    throw new BadArgumentError('password', `use ${MIN_PASSWORD_LENGTH} to 1024 characters`);
}

export function hashPassword(password: string): Promise<string> {
  return hash(password, PARAMS);
}

export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    return await verify(passwordHash, password);
  } catch {
    return false; // a malformed stored hash verifies nothing
  }
}

/** A hash to verify against when the user does not exist, so both paths take as long. */
let dummy: Promise<string> | null = null;
export function dummyHash(): Promise<string> {
  dummy ??= hashPassword('tickmesh-no-such-user');
  return dummy;
}
