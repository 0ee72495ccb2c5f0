import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import type { CallPipeline } from "./pipeline.js";

/** A service descriptor with its protocol-neutral handlers. */
export interface ServiceBinding {
  service: DescService;
  handlers: Record<string, (req: never, ctx: never) => unknown>;
}

/**
 * Registers every service on a Connect router (Connect, gRPC and gRPC-Web on
 * PORT), each call going through the shared pipeline.
 */
export function connectRoutes(bindings: ServiceBinding[], pipeline: CallPipeline) {
  return (router: ConnectRouter) => {
    for (const { service, handlers } of bindings) {
      const impl: Record<string, (req: unknown, ctx: HandlerContext) => unknown> = {};
      for (const method of service.methods) {
        const handler = handlers[method.localName] as never;
        const call = (ctx: HandlerContext) => ({
          protocol: "connect" as const,
          requestHeaders: ctx.requestHeader,
          signal: ctx.signal,
          timeoutMs: ctx.timeoutMs(),
        });
        impl[method.localName] =
          method.methodKind === "server_streaming"
            ? (req, ctx) => pipeline.runStream(method, req, call(ctx), handler)
            : (req, ctx) => pipeline.run(method, req, call(ctx), handler);
      }
      router.service(service, impl as never);
    }
  };
}
