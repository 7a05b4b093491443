// Two readers of one stream, read at the pace of the slower. The streams
// standard's tee() reads at the pace of the faster and queues for the
// slower without bound: for a blob that the Cache API takes at storage's
// speed while a slow client reads it, that was most of the blob held in the
// isolate's memory (128 MB), for any client that chooses to read slowly.
// Here each chunk is handed to both sides before the next is read, so a
// side holds a chunk or two. A side whose reader went away (a client that
// hung up) is dropped and the other goes on alone; an error of the source
// (a digest that does not match) fails both.
//
// Plain Web Streams: the Node unit tests run it as workerd does.
export function pacedTee(source: ReadableStream<Uint8Array>): [ReadableStream<Uint8Array>, ReadableStream<Uint8Array>] {
  const sides = [identity(), identity()] as const;
  void pump(
    source,
    sides.map((side) => side.writable.getWriter()),
  );
  return [sides[0].readable, sides[1].readable];
}

function identity(): TransformStream<Uint8Array, Uint8Array> {
  // No queue on the readable side: a chunk waits in the writer until its reader asks for it.
  return new TransformStream<Uint8Array, Uint8Array>(undefined, { highWaterMark: 1 }, { highWaterMark: 0 });
}

async function pump(source: ReadableStream<Uint8Array>, writers: WritableStreamDefaultWriter<Uint8Array>[]): Promise<void> {
  const reader = source.getReader();
  const live = new Set(writers);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      await Promise.all(
        [...live].map(async (writer) => {
          try {
            await writer.write(value);
          } catch {
            live.delete(writer);
          }
        }),
      );
      if (live.size === 0) {
        await reader.cancel('both readers went away');
        return;
      }
    }
    await Promise.all([...live].map((writer) => writer.close().catch(() => undefined)));
  } catch (err) {
    await Promise.all([...live].map((writer) => writer.abort(err).catch(() => undefined)));
  }
}
