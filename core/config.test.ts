import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.ts';
import { ConfigError } from './errors.ts';

describe('loadConfig', () => {
  it('has named defaults and is frozen', () => {
    const cfg = loadConfig({});
    expect(cfg.gateway.port).toBe(4000);
    expect(cfg.sim.symbols).toEqual(['BTC/USDT', 'ETH/USDT', 'SOL/USDT', 'AAPL', 'MSFT']);
    expect(Object.isFrozen(cfg.sim)).toBe(true);
  });

  it('reads the environment with types', () => {
    const cfg = loadConfig({
      PORT: '4100',
      SIM_ENABLED: 'false',
      SIM_RATE: '250',
      NATS_URL: 'nats://x:4222',
    });
    expect(cfg.gateway.port).toBe(4100);
    expect(cfg.sim.enabled).toBe(false);
    expect(cfg.sim.rate).toBe(250);
    expect(cfg.nats.url).toBe('nats://x:4222');
  });

  it('rejects bad values and unknown keys with a clear error', () => {
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(ConfigError);
    expect(() => loadConfig({ SIM_ENABLED: 'maybe' })).toThrow(/sim/);
    expect(() => loadConfig({}, { sim: { turbo: true } })).toThrow(/turbo/);
  });

  it('accepts the config file shipped for Kubernetes', () => {
    const file = new URL('../k8s/base/tickmesh.json', import.meta.url);
    expect(() => loadConfig({}, JSON.parse(readFileSync(file, 'utf8')))).not.toThrow();
  });
});
