/** Maps an actor spec to its behavior; the one place that knows every actor kind. */
import type { Config } from '../core/config.ts';
import type { Pool } from '../core/db.ts';
import { UnsupportedActorError } from '../core/errors.ts';
import type { Topology } from '../core/nats.ts';
import type { ActorSpec } from '../core/protocol/index.ts';
import { AlertDispatcherActor } from './alerts/dispatcher-actor.ts';
import { type CcxtAdapter, CcxtExchangeActor } from './exchange/ccxt-actor.ts';
import { ReplayExchangeActor } from './exchange/replay-actor.ts';
import { SimExchangeActor } from './exchange/sim-actor.ts';
import { type YahooClientFactory, YahooExchangeActor } from './exchange/yahoo-actor.ts';
import type { ActorBehavior, BehaviorFactory } from './runtime/actor.ts';
import { SymbolActor } from './symbol/symbol-actor.ts';
import { BarWriterActor } from './writer/writer-actor.ts';

/**
 * How exchange actors reach the outside world. Production leaves these out (each actor builds
 * its real client); tests pass clients whose requests go to local fakes.
 */
export interface ExchangeAdapters {
  yahoo?: YahooClientFactory;
  ccxt?: CcxtAdapter;
}

export interface ActorDeps {
  topo: Topology;
  cfg: Config;
  pool: Pool;
  adapters?: ExchangeAdapters;
}

export function behaviorFactory(deps: ActorDeps): BehaviorFactory {
  return (spec: ActorSpec): ActorBehavior => {
    switch (spec.kind) {
      case 'symbol':
        return new SymbolActor(spec.exchange, spec.symbol, { ...deps, exchangeKind: spec.exchangeKind });
      case 'writer':
        return new BarWriterActor(deps);
      case 'alerts':
        return new AlertDispatcherActor(deps);
      case 'exchange':
        if (spec.exchangeKind === 'sim') return new SimExchangeActor(spec.exchange, spec.symbols, deps);
        if (spec.exchangeKind === 'yahoo')
          return new YahooExchangeActor(spec.exchange, spec.symbols, spec.options, {
            topo: deps.topo,
            yahoo: deps.adapters?.yahoo,
          });
        if (spec.exchangeKind === 'ccxt')
          return new CcxtExchangeActor(spec.exchange, spec.symbols, spec.options, {
            topo: deps.topo,
            ccxt: deps.adapters?.ccxt,
          });
        if (spec.exchangeKind === 'replay')
          return new ReplayExchangeActor(spec.exchange, spec.symbols, spec.options, deps);
        throw new UnsupportedActorError(spec.id, `exchange kind ${spec.exchangeKind}`);
    }
  };
}
