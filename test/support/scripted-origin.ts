// A stand-in origin for the Worker's unit tests. It is a fake: the real
// origin needs Nix, and the end-to-end tests run it. It records every request
// (with its body) and answers with the current handler, which a test swaps
// to script what the origin says.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void | Promise<void>;

export class ScriptedOrigin {
  readonly seen: SeenRequest[] = [];
  handler: Handler;
  private server!: Server;
  url = '';

  constructor(handler: Handler) {
    this.handler = handler;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        this.seen.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body });
        Promise.resolve(this.handler(req, res, body)).catch((err: unknown) => res.destroy(err instanceof Error ? err : new Error(String(err))));
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  count(pathPart: string): number {
    return this.seen.filter((r) => r.path.includes(pathPart)).length;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
