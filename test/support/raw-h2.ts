import http2 from "node:http2";

/** What a raw HTTP/2 call got back within its time (`settled`: the stream ended; a tail does not). */
export interface RawH2Answer {
  httpStatus?: number;
  grpcStatus?: string;
  message?: string;
  /** `grpc-status-details-bin` (base64 google.rpc.Status), from headers or trailers. */
  detailsBin?: string;
  settled: boolean;
}

/**
 * Raw gRPC calls over HTTP/2, headers exactly as given: for what the generated
 * clients cannot send (hostile headers, deadlines their own timers would cut).
 * One session per authority, reused; `close` ends them.
 */
export class RawH2 {
  private readonly sessions = new Map<string, http2.ClientHttp2Session>();

  private session(authority: string): http2.ClientHttp2Session {
    let s = this.sessions.get(authority);
    if (!s || s.closed || s.destroyed) {
      s = http2.connect(authority);
      s.on("error", () => undefined);
      this.sessions.set(authority, s);
    }
    return s;
  }

  /** One call to `path` (e.g. /groups.v1.GroupsService/GetGroup): what came back within `ms`. */
  call(
    authority: string,
    path: string,
    headers: Record<string, string>,
    body: Buffer,
    ms = 500,
  ): Promise<RawH2Answer> {
    return new Promise((resolve) => {
      const req = this.session(authority).request({
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc",
        te: "trailers",
        ...headers,
      });
      let httpStatus: number | undefined;
      let grpcStatus: string | undefined;
      let message: string | undefined;
      let detailsBin: string | undefined;
      const done = (settled: boolean) => {
        clearTimeout(timer);
        if (!req.closed) req.close(http2.constants.NGHTTP2_CANCEL);
        resolve({ httpStatus, grpcStatus, message, detailsBin, settled });
      };
      const timer = setTimeout(() => done(false), ms);
      req.on("response", (h) => {
        httpStatus = Number(h[":status"]);
        if (h["grpc-status"] !== undefined) {
          grpcStatus = String(h["grpc-status"]);
          message = h["grpc-message"] as string | undefined;
          detailsBin = h["grpc-status-details-bin"] as string | undefined;
        }
      });
      req.on("trailers", (h) => {
        grpcStatus = String(h["grpc-status"]);
        message = h["grpc-message"] as string | undefined;
        detailsBin = h["grpc-status-details-bin"] as string | undefined;
      });
      req.on("data", () => undefined);
      req.on("close", () => done(true));
      req.on("error", () => done(true));
      req.end(body);
    });
  }

  close(): void {
    for (const s of this.sessions.values()) s.destroy();
  }
}
