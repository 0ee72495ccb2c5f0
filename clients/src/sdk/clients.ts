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
  /**
   * Deadline for each unary call unless the call sets its own `timeoutMs`.
   * Default 10 s. Streams (StreamEvents tails until cancelled) get none unless
   * the call sets one.
   */
  timeoutMs?: number;
  /** Retries of UNAVAILABLE for calls that are safe to repeat; 1 disables. Default 3. */
  retryAttempts?: number;
  interceptors?: Interceptor[];
}

/**
 * The transport options every factory shares: token, retries, the caller's
 * interceptors, then the transport's own `innermost` ones (closest to the
 * wire, so everything above sees what they make of an error). The default
 * deadline is applied by clientsOver, to unary calls only.
 */
export function transportOptions(opts: ClientOptions, innermost: Interceptor[] = []) {
  return {
    interceptors: [
      ...(opts.token ? [bearer(opts.token)] : []),
      retryUnavailable({ attempts: opts.retryAttempts ?? 3 }),
      ...(opts.interceptors ?? []),
      ...innermost,
    ],
  };
}

export function clientsOver(transport: Transport, opts: ClientOptions): GroupsClients {
  const clamped = withDeadlines(transport, opts.timeoutMs ?? 10_000);
  return {
    groups: createClient(GroupsService, clamped),
    organizations: createClient(OrganizationsService, clamped),
    events: createClient(EventsService, clamped),
  };
}

/**
 * The longest deadline a JavaScript timer holds: 2^31 − 1 ms, ~24.8 days.
 * connect-es arms a timer with the call's timeoutMs, and a longer one fires at
 * once, so a month-long event tail would end before it began; longer deadlines
 * are kept as this one (the server does the same).
 */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

const clampTimeout = (ms: number | undefined) =>
  ms === undefined ? undefined : Math.min(ms, MAX_TIMEOUT_MS);

/**
 * The default deadline on unary calls only: a transport's own default would
 * also end every StreamEvents tail after it. Every deadline clamped.
 */
function withDeadlines(transport: Transport, unaryDefaultMs: number): Transport {
  return {
    unary: (method, signal, timeoutMs, header, input, contextValues) =>
      transport.unary(
        method,
        signal,
        clampTimeout(timeoutMs ?? unaryDefaultMs),
        header,
        input,
        contextValues,
      ),
    stream: (method, signal, timeoutMs, header, input, contextValues) =>
      transport.stream(method, signal, clampTimeout(timeoutMs), header, input, contextValues),
  };
}
