import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

  it('checks the simulator symbols against the symbol grammar and has symbol quotas', () => {
    expect(() => loadConfig({}, { sim: { symbols: ['BTC/USDT', 'ВТС/USDT'] } })).toThrow(
      /U\+0412.*sim\.symbols\[1\]/s,
    );
    const cfg = loadConfig({}, { symbols: { maxActivePerExchange: 3 } });
    expect(cfg.symbols).toEqual({ maxActivePerExchange: 3, maxMutationsPerRequest: 10 });
    expect(loadConfig({}).symbols.maxActivePerExchange).toBe(200);
    expect(() => loadConfig({}, { symbols: { maxPerRequest: 1 } })).toThrow(/maxPerRequest/);
  });

  it('accepts the config file shipped for Kubernetes', () => {
    const file = new URL('../k8s/base/tickmesh.json', import.meta.url);
    expect(() => loadConfig({}, JSON.parse(readFileSync(file, 'utf8')))).not.toThrow();
  });

  it('owns the quality checks: defaults filled in and frozen, a typo in TICKMESH_CONFIG rejected at load', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tickmesh-config-'));
    try {
      const file = (name: string, content: unknown) => {
        const path = join(dir, name);
        writeFileSync(path, JSON.stringify(content));
        return path;
      };
      const defaults = loadConfig({}).analytics.quality;
      expect(defaults.jump).toEqual({ action: 'quarantine', pct: 10 });
      expect(defaults.volume.quarantineFactor).toBe(500);
      expect(Object.isFrozen(defaults.zscore)).toBe(true);

      const tuned = loadConfig({
        TICKMESH_CONFIG: file('ok.json', { analytics: { quality: { zscore: { action: 'off' } } } }),
      });
      expect(tuned.analytics.quality.zscore).toMatchObject({ action: 'off', sigma: 3, window: 100 });
      expect(tuned.analytics.warmupBars).toBe(300);

      const typo = file('typo.json', { analytics: { quality: { jump: { pc: 5 } } } });
      expect(() => loadConfig({ TICKMESH_CONFIG: typo })).toThrow(ConfigError);
      expect(() => loadConfig({ TICKMESH_CONFIG: typo })).toThrow(/"pc".*analytics\.quality\.jump/);
      const badAction = file('action.json', { analytics: { quality: { stale: { action: 'drop' } } } });
      expect(() => loadConfig({ TICKMESH_CONFIG: badAction })).toThrow(/analytics\.quality\.stale\.action/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
