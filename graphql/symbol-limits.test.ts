import { parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { symbolMutationCount } from './symbol-limits.ts';

describe('symbolMutationCount', () => {
  it('counts every alias of addSymbol, setSymbolActive and removeSymbol', () => {
    const aliases = Array.from(
      { length: 500 },
      (_, i) => `a${i}: addSymbol(exchange: "x", symbol: "S${i}") { active }`,
    );
    expect(symbolMutationCount(parse(`mutation { ${aliases.join(' ')} }`))).toBe(500);
    expect(
      symbolMutationCount(
        parse(`mutation {
          addSymbol(exchange: "x", symbol: "A") { active }
          setSymbolActive(exchange: "x", symbol: "A", active: false) { active }
          removeSymbol(exchange: "x", symbol: "A")
          restartActor(id: "symbol.x.A")
        }`),
      ),
    ).toBe(3);
  });

  it('follows fragments and inline fragments, multiplied by their spreads', () => {
    const doc = parse(`
      mutation { ...Two ...Two ... on Mutation { c: removeSymbol(exchange: "x", symbol: "C") } }
      fragment Two on Mutation { a: addSymbol(exchange: "x", symbol: "A") { active } ...One }
      fragment One on Mutation { b: removeSymbol(exchange: "x", symbol: "B") }
    `);
    expect(symbolMutationCount(doc)).toBe(5);
  });

  it('takes the largest mutation operation of the document, and ignores queries', () => {
    const doc = parse(`
      mutation Small { addSymbol(exchange: "x", symbol: "A") { active } }
      mutation Big { a: removeSymbol(exchange: "x", symbol: "A") b: removeSymbol(exchange: "x", symbol: "B") }
      query Q { symbols { symbol } }
    `);
    expect(symbolMutationCount(doc)).toBe(2);
    expect(symbolMutationCount(parse('{ symbols { symbol } }'))).toBe(0);
  });

  it('survives a fragment cycle (validation refuses it; the count must not loop)', () => {
    const doc = parse(`
      mutation { ...A }
      fragment A on Mutation { removeSymbol(exchange: "x", symbol: "A") ...B }
      fragment B on Mutation { ...A }
    `);
    expect(symbolMutationCount(doc)).toBe(1);
  });
});
