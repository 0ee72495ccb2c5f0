import { Code, ConnectError, createConnectRouter, type ConnectRouter } from "@connectrpc/connect";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
  type ConnectNodeAdapterOptions,
} from "@connectrpc/connect-node";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { Logger } from "pino";
import { keepingBody } from "./request-body.js";
import { rewriteRequestFaults } from "./request-faults.js";

type NodeRequest = IncomingMessage | Http2ServerRequest;
type NodeResponse = ServerResponse | Http2ServerResponse;

/**
 * connect-node's connectNodeAdapter, plus one step: responses pass through
 * rewriteRequestFaults, so a request the framework cannot read is
 * INVALID_ARGUMENT, never INTERNAL, and the framework's errors carry an
 * ErrorInfo (and a BadRequest naming every bad field) like the pipeline's. A
 * handler that fails after the response began (a client that went away) is
 * logged at debug, not printed.
 */
export function connectAdapter(
  options: Omit<ConnectNodeAdapterOptions, "routes" | "fallback"> & {
    routes: (router: ConnectRouter) => void;
    fallback: (req: NodeRequest, res: NodeResponse) => void;
    log: Logger;
  },
) {
  const router = createConnectRouter({
    acceptCompression: [compressionGzip, compressionBrotli],
    ...options,
  });
  options.routes(router);
  const paths = new Map(router.handlers.map((h) => [h.requestPath, h]));
  return (req: NodeRequest, res: NodeResponse): void => {
    const handler = paths.get((req.url ?? "").split("?", 2)[0]);
    if (!handler) return options.fallback(req, res);
    const { request, faults } = keepingBody(
      universalRequestFromNodeRequest(req, res, undefined, undefined),
      handler.method.input,
    );
    handler(request)
      .then((res) => rewriteRequestFaults(res, faults))
      .then(async (uRes) => {
        // Refused before its body was read (e.g. over the size limit): the
        // rest of the upload is never read, so on HTTP/1.1 the connection
        // cannot carry another request; say so instead of letting the client
        // reuse it and fail.
        if (!req.complete && req.httpVersionMajor === 1) res.setHeader("connection", "close");
        await universalResponseToNodeResponse(uRes, res);
      })
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        options.log.debug({ err: reason, rpc: handler.method.name }, "response not completed");
      });
  };
}
