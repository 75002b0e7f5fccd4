/**
 * One gateway for bench/fanout.ts, as a process of its own (forked; config as JSON in
 * FANOUT_CONFIG). Answers `stats` over IPC: CPU, RSS, event-loop delay (perf_hooks), and the
 * deliveries/executions counted by the gateway's metrics.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Config } from '../core/config.ts';
import { metrics } from '../core/metrics.ts';
import { startGatewayRole } from '../launcher/roles.ts';
import { log } from './infra.ts';

const cfg = JSON.parse(process.env.FANOUT_CONFIG ?? '{}') as Config;
const gateway = await startGatewayRole(cfg, log);
const delay = monitorEventLoopDelay({ resolution: 10 });
delay.enable();

const total = async (c: { get(): Promise<{ values: { value: number }[] }> }) =>
  (await c.get()).values.reduce((n, v) => n + v.value, 0);

process.on('message', async (m: { type: string }) => {
  if (m.type === 'stats') {
    const cpu = process.cpuUsage();
    process.send?.({
      type: 'stats',
      cpuUs: cpu.user + cpu.system,
      rss: process.memoryUsage().rss,
      lagP99Ms: delay.percentile(99) / 1e6,
      lagMaxMs: delay.max / 1e6,
      deliveries: await total(metrics.wsDeliveries),
      executions: await total(metrics.wsExecutions),
      natsEvents: await total(metrics.natsConnectionEvents),
    });
    delay.reset();
  } else if (m.type === 'stop') {
    await gateway.stop().catch(() => {});
    process.exit(0);
  }
});
process.send?.({ type: 'ready', url: gateway.url });
