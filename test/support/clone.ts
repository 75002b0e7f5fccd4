/**
 * What a newcomer has after `git clone` and `npm install` where no other user can reach: a clone
 * of this checkout (with its uncommitted changes, so a test runs the code under test) in a fresh
 * mode-700 folder, as `/root` is, with node_modules (hard links when the file system allows) and
 * the built dashboard.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

export interface PrivateClone {
  /** The project folder (the clone), inside a mode-700 folder. */
  project: string;
  remove(): void;
}

function git(args: string[], cwd = REPO): string {
  return execFileSync('git', args, { cwd, encoding: 'utf8' });
}

function copyTree(from: string, to: string): void {
  if (!existsSync(from)) return;
  try {
    execFileSync('cp', ['-al', from, to], { stdio: 'ignore' });
  } catch {
    rmSync(to, { recursive: true, force: true });
    execFileSync('cp', ['-a', from, to], { stdio: 'ignore' });
  }
}

export function clonePrivately(): PrivateClone {
  const root = mkdtempSync(join(tmpdir(), 'tickmesh-clone-')); // mode 700
  const project = join(root, 'p');
  git(['clone', '-q', '--local', REPO, project]);
  // Work not committed yet: tracked files changed or deleted, and new files git would add.
  const changed = git(['ls-files', '-z', '--modified', '--others', '--exclude-standard']);
  for (const file of changed.split('\0').filter(Boolean)) {
    const target = join(project, file);
    if (!existsSync(join(REPO, file))) {
      rmSync(target, { force: true });
      continue;
    }
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(join(REPO, file), target);
  }
  copyTree(join(REPO, 'node_modules'), join(project, 'node_modules'));
  copyTree(join(REPO, 'ui', 'dist'), join(project, 'ui', 'dist'));
  return { project, remove: () => rmSync(root, { recursive: true, force: true }) };
}
