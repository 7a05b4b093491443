// Log lines travel through a pipe, responses through a socket: a line about
// a request may arrive a moment after its response. Polls a condition briefly.
export async function eventually(condition: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
