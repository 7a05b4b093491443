// Runs async work over items with at most `limit` in flight, keeping results
// in the items' order. Work starts in `priority` order (highest first), so the
// longest jobs (the largest layers) do not start last and stretch the build.
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T, index: number) => Promise<R>,
  priority: (item: T) => number = () => 0,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  const order = items.map((item, index) => ({ index, weight: priority(item) })).sort((a, b) => b.weight - a.weight || a.index - b.index);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < order.length) {
      const { index } = order[next++]!;
      results[index] = await work(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, order.length)) }, worker));
  return results;
}
