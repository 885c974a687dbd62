/**
 * A pipe proxy on the runtime's socket handles (`process.binding('tcp_wrap')`), without `net.Socket` and its
 * streams: the floor below node-pipe, to show what a Node proxy pays for `net`/`stream` itself (docs/benchmarks.md,
 * "Below net.Socket"). Same behaviour as bench/naive-proxy.ts for the benchmark's workloads: each accepted
 * connection dials the origin, bytes flow both ways (reading stops while a write is pending, so memory stays
 * bounded), a FIN is relayed as a shutdown, an error or the second FIN closes both.
 *
 * Usage: node --import tsx bench/raw-proxy.ts 7177=7001 7178=7002   (listen port = origin port, on 127.0.0.1)
 *
 * A benchmark tool, not a product path: `process.binding` is deprecated (documentation-only, DEP0111) and these
 * handles are Node's internals. It runs unchanged on Node 20.20 and 24.21.
 */
const HOST = '127.0.0.1';
const UV_EOF = -4095;

interface Stream {
  onread: ((buf: ArrayBuffer | undefined) => void) | null;
  readStart(): number;
  readStop(): number;
  writeBuffer(req: object, buf: Uint8Array): number;
  shutdown(req: object): number;
  close(cb?: () => void): void;
  setNoDelay(on: boolean): number;
}
interface TcpHandle extends Stream {
  bind(host: string, port: number): number;
  listen(backlog: number): number;
  connect(req: object, host: string, port: number): number;
  onconnection: ((status: number, client: TcpHandle | undefined) => void) | null;
}
type Ctor<T> = new (kind?: number) => T;
const tcpWrap = (process as unknown as { binding(name: string): Record<string, unknown> }).binding('tcp_wrap') as {
  TCP: Ctor<TcpHandle>;
  TCPConnectWrap: Ctor<{ oncomplete: (status: number) => void; address?: string; port?: number }>;
  constants: { SOCKET: number; SERVER: number };
};
const streamWrap = (process as unknown as { binding(name: string): Record<string, unknown> }).binding('stream_wrap') as {
  WriteWrap: Ctor<{ handle?: Stream; oncomplete?: (status: number) => void; async?: boolean }>;
  ShutdownWrap: Ctor<{ handle?: Stream; oncomplete?: (status: number) => void }>;
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kArrayBufferOffset: number;
  kLastWriteWasAsync: number;
};
const { TCP, TCPConnectWrap, constants } = tcpWrap;
const { WriteWrap, ShutdownWrap, streamBaseState, kReadBytesOrError, kArrayBufferOffset, kLastWriteWasAsync } = streamWrap;

/** One connection: the client's handle, the origin's, and which directions have ended. */
class Pair {
  closed = false;
  ends = 0;
  constructor(
    readonly client: TcpHandle,
    readonly origin: TcpHandle,
  ) {}

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.close();
    this.origin.close();
  }

  /** Bytes read on `from` go to `to`; `from` stops reading while a write is pending. */
  pipe(from: TcpHandle, to: TcpHandle): void {
    from.onread = (ab) => {
      const n = streamBaseState[kReadBytesOrError]!;
      if (n > 0) {
        const req = new WriteWrap();
        req.handle = to;
        req.async = false;
        const err = to.writeBuffer(req, new Uint8Array(ab!, streamBaseState[kArrayBufferOffset]!, n));
        if (err !== 0) return this.close();
        if (streamBaseState[kLastWriteWasAsync] !== 0) {
          // libuv writes from this memory later: keep it alive until then (net.Socket's `req.buffer`).
          (req as { buffer?: unknown }).buffer = ab;
          from.readStop();
          req.oncomplete = (status) => {
            if (status < 0) this.close();
            else if (!this.closed) from.readStart();
          };
        }
        return;
      }
      if (n === UV_EOF) {
        from.readStop();
        if (++this.ends === 2) return this.close();
        const req = new ShutdownWrap();
        req.handle = to;
        req.oncomplete = (status) => {
          if (status < 0) this.close();
        };
        if (to.shutdown(req) !== 0) this.close();
        return;
      }
      if (n < 0) this.close();
    };
    from.readStart();
  }
}

function listen(port: number, originPort: number): void {
  const server = new TCP(constants.SERVER);
  const err = server.bind(HOST, port) || server.listen(511);
  if (err !== 0) throw new Error(`cannot listen on ${HOST}:${port}: ${err}`);
  server.onconnection = (status, client) => {
    if (status !== 0 || client === undefined) return;
    client.setNoDelay(true);
    const origin = new TCP(constants.SOCKET);
    const pair = new Pair(client, origin);
    const req = new TCPConnectWrap();
    req.oncomplete = (st) => {
      if (st !== 0 || pair.closed) return pair.close();
      origin.setNoDelay(true);
      pair.pipe(client, origin);
      pair.pipe(origin, client);
    };
    req.address = HOST;
    req.port = originPort;
    if (origin.connect(req, HOST, originPort) !== 0) pair.close();
  };
}

const pairs = process.argv.slice(2).map((arg) => {
  const [l, o] = arg.split('=').map(Number);
  if (l === undefined || o === undefined || !Number.isInteger(l) || !Number.isInteger(o)) throw new Error(`bad pair "${arg}": expected LISTEN_PORT=ORIGIN_PORT`);
  return { l, o };
});
if (pairs.length === 0) throw new Error('usage: raw-proxy.ts LISTEN_PORT=ORIGIN_PORT ...');
for (const { l, o } of pairs) listen(l, o);
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => process.exit(0));
