// Order statistics the benchmarks report: the value at a percentile (the
// nearest rank, no interpolation), and the median as its 50th.
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}
