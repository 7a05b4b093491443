// Go's t.Cleanup for Node's test runner: register how to undo something as
// soon as it exists, and it is undone when the test ends, passed or failed,
// last registered first (an origin stops before its storage is removed).
// Node's own t.after() runs hooks in registration order, which is the wrong
// order for resources that depend on each other.
import type { TestContext } from 'node:test';

export type Defer = (undo: () => unknown) => void;

export function deferrer(t: TestContext): Defer {
  const stack: (() => unknown)[] = [];
  t.after(async () => {
    const failures: unknown[] = [];
    while (stack.length > 0) {
      try {
        await stack.pop()!();
      } catch (err) {
        failures.push(err);
      }
    }
    if (failures.length > 0) throw failures[0];
  });
  return (undo) => void stack.push(undo);
}
