import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { Duplex } from "node:stream";

type Handler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/**
 * One cleartext port that speaks HTTP/1.1 (browsers, curl) and HTTP/2 (gRPC,
 * Connect over h2c). Node's http2 module cannot fall back to HTTP/1.1 without
 * TLS, so the first bytes decide: the HTTP/2 preface starts with "PRI".
 */
export function createDualProtocolServer(handler: Handler): {
  server: net.Server;
  http1: http.Server;
  http2: http2.Http2Server;
  /** Destroys every open connection (after a drain, so nothing is cut mid-call). */
  destroyConnections(): void;
} {
  const sockets = new Set<net.Socket>();
  const h1 = http.createServer(handler as http.RequestListener);
  const h2 = http2.createServer(
    handler as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
  );
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.once("data", (first: Buffer) => {
      socket.pause();
      if (first.subarray(0, 3).toString("latin1") === "PRI") {
        h2.emit("connection", replaying(socket, first));
      } else {
        socket.unshift(first);
        h1.emit("connection", socket);
        socket.resume();
      }
    });
    socket.on("error", () => socket.destroy());
  });
  return {
    server,
    http1: h1,
    http2: h2,
    destroyConnections: () => sockets.forEach((s) => s.destroy()),
  };
}

/**
 * A stream over `socket` that first yields the bytes already read. http2
 * reads from the socket's native handle, so pushing the bytes back with
 * unshift() would lose them; a JS stream makes it read through us instead.
 */
function replaying(socket: net.Socket, first: Buffer): Duplex {
  const stream = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk, encoding, callback) {
      socket.write(chunk, encoding, callback);
    },
    final(callback) {
      socket.end(callback);
    },
    destroy(err, callback) {
      socket.destroy(err ?? undefined);
      callback(err);
    },
  });
  stream.push(first);
  socket.on("data", (chunk) => {
    if (!stream.push(chunk)) socket.pause();
  });
  socket.on("end", () => stream.push(null));
  socket.on("error", (err) => stream.destroy(err));
  socket.on("close", () => stream.destroy());
  return stream;
}
