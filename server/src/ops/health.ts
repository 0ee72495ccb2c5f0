import { EventEmitter, once } from "node:events";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
} from "../../../clients/src/gen/grpc/health/v1/health_pb.js";
import { DomainError } from "../domain/errors.js";
import type { Handlers } from "../rpc/pipeline.js";

/** The services whose health is reported ("" is the server as a whole). */
export const HEALTH_SERVICES = [
  "",
  "groups.v1.GroupsService",
  "groups.v1.OrganizationsService",
  "groups.v1.EventsService",
];

/**
 * Serving status of the whole server: SERVING while it takes calls,
 * NOT_SERVING from the moment it starts to shut down.
 */
export class HealthStatus extends EventEmitter {
  private serving = true;

  constructor() {
    super();
    this.setMaxListeners(0);
  }

  get isServing(): boolean {
    return this.serving;
  }

  setNotServing(): void {
    if (!this.serving) return;
    this.serving = false;
    this.emit("change");
  }

  statusOf(service: string): Status | undefined {
    if (!HEALTH_SERVICES.includes(service)) return undefined;
    return this.serving ? Status.SERVING : Status.NOT_SERVING;
  }
}

/** grpc.health.v1.Health on both front doors (Check, Watch, List). */
export function healthHandlers(health: HealthStatus): Handlers<typeof Health> {
  return {
    async check(req) {
      const status = health.statusOf(req.service);
      if (status === undefined) {
        throw new DomainError(
          "not_found",
          "SERVICE_NOT_FOUND",
          `unknown service ${JSON.stringify(req.service)}`,
        );
      }
      return { status };
    },
    async *watch(req, ctx) {
      let last: Status | undefined;
      for (;;) {
        const status = health.statusOf(req.service) ?? Status.SERVICE_UNKNOWN;
        // Reported even when the call is being drained: NOT_SERVING is the news.
        if (status !== last) {
          yield { status };
          last = status;
        }
        if (status === Status.NOT_SERVING || ctx.signal.aborted) return;
        await once(health, "change", { signal: ctx.signal }).catch(() => undefined);
      }
    },
    async list() {
      return {
        statuses: Object.fromEntries(
          HEALTH_SERVICES.map((s) => [s, { status: health.statusOf(s)! }]),
        ),
      };
    },
  };
}
