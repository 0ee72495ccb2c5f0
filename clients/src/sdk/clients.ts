import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { EventsService } from "../gen/groups/v1/events_pb.js";
import { GroupsService } from "../gen/groups/v1/groups_pb.js";
import { OrganizationsService } from "../gen/groups/v1/organizations_pb.js";
import { bearer, retryUnavailable } from "./interceptors.js";

/** Typed clients for the three services over one transport. */
export interface GroupsClients {
  groups: Client<typeof GroupsService>;
  organizations: Client<typeof OrganizationsService>;
  events: Client<typeof EventsService>;
}

export interface ClientOptions {
  /** API key or JWT access token (or a function returning one). */
  token?: string | (() => string | Promise<string>);
  /** Deadline for each call unless the call sets its own `timeoutMs`. Default 10 s. */
  timeoutMs?: number;
  /** Retries of UNAVAILABLE for calls that are safe to repeat; 1 disables. Default 3. */
  retryAttempts?: number;
  interceptors?: Interceptor[];
}

export function interceptorsFor(opts: ClientOptions): Interceptor[] {
  return [
    ...(opts.token ? [bearer(opts.token)] : []),
    retryUnavailable({ attempts: opts.retryAttempts ?? 3 }),
    ...(opts.interceptors ?? []),
  ];
}

export function clientsOver(transport: Transport): GroupsClients {
  return {
    groups: createClient(GroupsService, transport),
    organizations: createClient(OrganizationsService, transport),
    events: createClient(EventsService, transport),
  };
}
