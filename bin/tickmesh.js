#!/usr/bin/env node
// Runs the TypeScript CLI through tsx's loader, so the same sources serve dev, tests and containers.
import { register } from 'tsx/esm/api';

register();
await import('../launcher/cli.ts');
