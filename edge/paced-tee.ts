// Two readers of one stream, read at the pace of the slower. The streams
// standard's tee() reads at the pace of the faster and queues for the
// slower without bound: for a blob that the Cache API takes at storage's
// speed while a slow client reads it, that was most of the blob held in the
// isolate's memory (128 MB), for any client that chooses to read slowly.
// Here each chunk is handed to both sides before the next is read, so a
// side holds a chunk or two. A side whose reader went away (a client that
// hung up), or that its owner drops (a cache write that failed without
// reading on), is left behind and the other goes on alone; an error of the
// source (a digest that does not match) fails both.
//
// Plain Web Streams: the Node unit tests run it as workerd does.
export interface PacedTee {
  sides: [ReadableStream<Uint8Array>, ReadableStream<Uint8Array>];
  /** Stops feeding a side (its reader sees `reason`), so the other never waits for it again. */
  drop(side: 0 | 1, reason: unknown): void;
}

interface Side {
  writer: WritableStreamDefaultWriter<Uint8Array>;
  /** Settles when the side is dropped: a write nobody will ever read is not waited for. */
  dropped: Promise<void>;
  drop: () => void;
}

export function pacedTee(source: ReadableStream<Uint8Array>): PacedTee {
  const streams = [identity(), identity()] as const;
  const sides = streams.map((stream): Side => {
    let drop!: () => void;
    const dropped = new Promise<void>((resolve) => (drop = resolve));
    return { writer: stream.writable.getWriter(), dropped, drop };
  });
  const live = new Set(sides);
  void pump(source, live);
  return {
    sides: [streams[0].readable, streams[1].readable],
    drop(index, reason) {
      const side = sides[index]!;
      if (!live.delete(side)) return;
      side.drop();
      // The reader, if it ever reads on, sees the reason (once the chunk it was offered is taken).
      side.writer.abort(reason).catch(() => undefined);
    },
  };
}

function identity(): TransformStream<Uint8Array, Uint8Array> {
  // No queue on the readable side: a chunk waits in the writer until its reader asks for it.
  return new TransformStream<Uint8Array, Uint8Array>(undefined, { highWaterMark: 1 }, { highWaterMark: 0 });
}

async function pump(source: ReadableStream<Uint8Array>, live: Set<Side>): Promise<void> {
  const reader = source.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      await Promise.all(
        [...live].map(async (side) => {
          try {
            await Promise.race([side.writer.write(value), side.dropped]);
          } catch {
            live.delete(side);
          }
        }),
      );
      if (live.size === 0) {
        await reader.cancel('both readers went away');
        return;
      }
    }
    await Promise.all([...live].map((side) => side.writer.close().catch(() => undefined)));
  } catch (err) {
    await Promise.all([...live].map((side) => side.writer.abort(err).catch(() => undefined)));
  }
}
