import { adminPage, type HttpRequest, type HttpResponse } from "./admin-page.js";
import type { HealthStatus } from "./health.js";
import type { Metrics } from "./metrics.js";

export interface ProbeSources {
  health: HealthStatus;
  metrics: Metrics;
  /** Resolves when the database answers. */
  pingDatabase(): Promise<unknown>;
  /** NATS state when publishing is configured (informational). */
  natsState(): "connected" | "disconnected" | "not configured";
  /** Serves the admin page under /admin (default: the page from clients/admin); false turns it off. */
  admin?: ((req: HttpRequest, res: HttpResponse) => boolean) | false;
}

/**
 * Plain HTTP endpoints beside the RPCs on PORT: `/healthz` (the process is
 * alive), `/readyz` (serving and the database answers), `/metrics`, and the
 * admin page under `/admin/` (public; its RPCs need the key entered on it).
 * NATS being down does not make a replica unready: writes keep succeeding and
 * events wait in the outbox, so taking replicas out of the load balancer
 * would only turn a delay of events into an outage of writes.
 */
export function opsEndpoints(src: ProbeSources) {
  const admin = src.admin ?? adminPage();
  const text = (res: HttpResponse, status: number, body: string) =>
    res.writeHead(status, { "content-type": "text/plain; charset=utf-8" }).end(body);
  return (req: HttpRequest, res: HttpResponse): void => {
    const path = (req.url ?? "").split("?")[0];
    if (path === "/healthz") return void text(res, 200, "ok\n");
    if (path === "/readyz") {
      if (!src.health.isServing) return void text(res, 503, "shutting down\n");
      const nats = `nats: ${src.natsState()}\n`;
      src.pingDatabase().then(
        () => text(res, 200, `ready\ndatabase: ok\n${nats}`),
        () => text(res, 503, `not ready\ndatabase: unreachable\n${nats}`),
      );
      return;
    }
    if (path === "/metrics") {
      src.metrics.registry.metrics().then(
        (body) =>
          res.writeHead(200, { "content-type": src.metrics.registry.contentType }).end(body),
        (err: unknown) => text(res, 500, `metrics failed: ${String(err)}\n`),
      );
      return;
    }
    if (admin && admin(req, res)) return;
    text(res, 404, "not found\n");
  };
}
