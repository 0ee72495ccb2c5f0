import { z } from "zod";
import type { JwtSettings } from "./auth/jwt.js";

/**
 * Environment → one typed, validated configuration object. Every problem is
 * reported at once, naming the variable, so a misconfigured deployment fails
 * at start instead of at the first request.
 */
const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);

const flag = (fallback: boolean) =>
  z
    .enum(["1", "0", "true", "false", "yes", "no", "on", "off"])
    .optional()
    .transform((v) => (v === undefined ? fallback : ["1", "true", "yes", "on"].includes(v)));

/**
 * The Unix socket named by a DATABASE_URL's `socket` parameter (undefined:
 * TCP to the URL's host; null: not an absolute path). A database on the same
 * machine answers over its socket for less CPU per statement than over
 * loopback TCP, which on a shared host is the service's largest cost per read.
 */
function socketOf(url: string): string | undefined | null {
  let socket: string | null;
  try {
    socket = new URL(url.replace(/^[a-z]+:/, "http:")).searchParams.get("socket");
  } catch {
    return undefined; // the driver reports a URL it cannot read when it connects
  }
  if (socket === null || socket === "") return undefined;
  return socket.startsWith("/") ? socket : null;
}

// Blank values arrive as undefined (withoutBlanks).
const optionalString = z
  .string()
  .optional()
  .transform((v) => v?.trim());

/** JWT algorithms that can be pinned: asymmetric only, so no shared secret (and no "none"). */
const ASYMMETRIC_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
] as const;

const claimName = (fallback: string) =>
  z
    .string()
    .regex(/^[A-Za-z0-9_:./-]+$/, "a claim name")
    .default(fallback);

/** One NATS server as nats.js reads it: optional scheme and credentials, host, optional port. */
const NATS_SERVER =
  /^(?:(?:nats|tls):\/\/(?:[^\s@/]+@)?)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?\/?$/;

const DEFAULT_DEADLINE_MS = 30_000;
const MAX_DEADLINE_MS = 60_000;

const EnvSchema = z.object({
  PORT: port(8080),
  GRPC_PORT: port(50051),
  HOST: z.string().min(1).default("127.0.0.1"),
  DATABASE_URL: optionalString
    .refine(
      (v) => v === undefined || /^(mysql|mariadb):\/\//.test(v),
      "must be a mysql:// (or mariadb://) URL, e.g. mysql://user:pass@127.0.0.1:3306/groups",
    )
    .refine(
      (v) => v === undefined || !/^(mysql|mariadb):/.test(v) || socketOf(v) !== null,
      "its socket parameter must be an absolute path, e.g. ?socket=/run/mysqld/mysqld.sock",
    ),
  SQLITE_PATH: z.string().min(1).default("./data/groups.sqlite"),
  MIGRATE_ON_START: flag(true),
  // The relay leader holds one connection for its lease (and migrations one for
  // their lock), so a pool of one would leave calls none.
  DATABASE_POOL_SIZE: z.coerce
    .number()
    .int()
    .min(2, "must be at least 2: the relay's lease holds one connection")
    .max(1000)
    .default(16),
  // At least 1: mysql2 reads a queue limit of 0 as "no limit".
  DATABASE_POOL_QUEUE_LIMIT: z.coerce.number().int().min(1).max(100000).default(256),
  NATS_URL: optionalString.refine(
    (v) => v === undefined || v.split(",").every((s) => NATS_SERVER.test(s.trim())),
    "must be nats://host:port, tls://host:port or host:port (several comma-separated)",
  ),
  NATS_STREAM: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, "letters, digits, _ and - only")
    .default("GROUPS_EVENTS"),
  NATS_SUBJECT_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, "dot-separated tokens without wildcards")
    .default("groups.v1"),
  NATS_DUPLICATE_WINDOW_SECONDS: z.coerce.number().int().min(30).max(86_400).default(120),
  EVENTS_RETENTION_DAYS: z.coerce.number().min(1).max(3650).default(30),
  EVENTS_PAYLOAD_FORMAT: z.enum(["binary", "json"]).default("binary"),
  RELAY_POLL_INTERVAL_MS: z.coerce.number().int().min(10).max(60_000).default(250),
  RELAY_BATCH_SIZE: z.coerce.number().int().min(1).max(10_000).default(2_000),
  GROUPS_FAULT_INJECTION: z.enum(["crash-before-publish", "crash-after-ack"]).optional(),
  AUTH_BOOTSTRAP_KEY: optionalString.refine(
    (v) => v === undefined || v.length >= 16,
    "must be at least 16 characters: it opens the whole deployment (e.g. openssl rand -hex 32)",
  ),
  AUTH_DISABLED: flag(false),
  JWT_JWKS_URL: optionalString.refine(
    (v) => v === undefined || /^https?:\/\/\S+$/.test(v),
    "must be an http(s) URL of the identity provider's JSON Web Key Set",
  ),
  JWT_ISSUER: optionalString,
  JWT_AUDIENCE: optionalString,
  JWT_ALGORITHMS: z
    .string()
    .default("RS256,ES256")
    .transform((v) =>
      v
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.enum(ASYMMETRIC_ALGORITHMS)).min(1)),
  JWT_CLOCK_SKEW_SECONDS: z.coerce.number().int().min(0).max(300).default(30),
  JWT_ORG_CLAIM: claimName("org_id"),
  JWT_PERMISSIONS_CLAIM: claimName("permissions"),
  JWT_READ_PERMISSION: z.string().min(1).default("groups:read"),
  JWT_WRITE_PERMISSION: z.string().min(1).default("groups:write"),
  API_KEY_CACHE_MS: z.coerce.number().int().min(0).max(300_000).default(5_000),
  RATE_LIMIT_PER_SECOND: z.coerce.number().min(0).max(1_000_000).default(1_000),
  RATE_LIMIT_BURST: z.coerce.number().int().min(1).max(10_000_000).default(2_000),
  DEADLINE_DEFAULT_MS: z.coerce.number().int().min(1).max(3_600_000).default(DEFAULT_DEADLINE_MS),
  DEADLINE_MAX_MS: z.coerce.number().int().min(1).max(3_600_000).default(MAX_DEADLINE_MS),
  CORS_ALLOWED_ORIGINS: z
    .string()
    .optional()
    .transform((v) =>
      (v ?? "")
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
    ),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});

const JWT_TOGETHER = ["JWT_JWKS_URL", "JWT_ISSUER", "JWT_AUDIENCE"] as const;

/**
 * Rules that span variables, on the values as they will be used (defaults
 * applied); checked even when single variables are bad, so every problem
 * shows at once.
 */
function crossFieldProblems(env: Record<string, string | undefined>): string[] {
  const problems: string[] = [];
  const missing = JWT_TOGETHER.filter((name) => env[name] === undefined);
  if (missing.length > 0 && missing.length < JWT_TOGETHER.length) {
    for (const name of missing) {
      problems.push(`${name}: must be set too (${JWT_TOGETHER.join(", ")} go together)`);
    }
  }
  const defaultMs = Number(env.DEADLINE_DEFAULT_MS ?? DEFAULT_DEADLINE_MS);
  const maxMs = Number(env.DEADLINE_MAX_MS ?? MAX_DEADLINE_MS);
  if (defaultMs > 0 && maxMs > 0 && defaultMs > maxMs) {
    problems.push(`DEADLINE_DEFAULT_MS: must not exceed DEADLINE_MAX_MS (${maxMs})`);
  }
  return problems;
}

/**
 * A variable set to nothing (`PORT=` from a compose file's `PORT=${PORT}`)
 * means unset, so it takes its default: read as a number, "" would be 0 —
 * for a port, a random one.
 */
function withoutBlanks(
  env: Record<string, string | undefined>,
): Record<string, string | undefined> {
  return Object.fromEntries(
    Object.entries(env).map(([name, value]) => [name, value?.trim() === "" ? undefined : value]),
  );
}

export interface Config {
  host: string;
  port: number;
  grpcPort: number;
  database:
    | {
        kind: "mysql";
        url: string;
        /** Connect over this Unix socket instead of TCP (DATABASE_URL's `socket` parameter). */
        socketPath?: string;
        poolSize: number;
        poolQueueLimit: number;
      }
    | { kind: "sqlite"; path: string };
  migrateOnStart: boolean;
  nats: {
    url?: string;
    stream: string;
    subjectPrefix: string;
    duplicateWindowMs: number;
  };
  events: {
    retentionMs: number;
    payloadFormat: "binary" | "json";
    relayPollIntervalMs: number;
    /** Events the relay sequences and publishes per round. */
    relayBatchSize: number;
    /** Test-only crash points in the relay. */
    fault?: "crash-before-publish" | "crash-after-ack";
  };
  auth: {
    disabled: boolean;
    bootstrapKey?: string;
    apiKeyCacheMs: number;
    jwt?: JwtSettings;
  };
  limits: {
    ratePerSecond: number;
    rateBurst: number;
    deadlineDefaultMs: number;
    deadlineMaxMs: number;
  };
  corsAllowedOrigins: string[];
  logLevel: string;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/** Reads the configuration from `env` (defaults to process.env); throws ConfigError listing every problem. */
export function loadConfig(rawEnv: Record<string, string | undefined> = process.env): Config {
  const env = withoutBlanks(rawEnv);
  const parsed = EnvSchema.safeParse(env);
  const problems = [
    ...(parsed.success
      ? []
      : parsed.error.issues.map((i) => `${i.path.join(".") || "environment"}: ${i.message}`)),
    ...crossFieldProblems(env),
  ];
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  const e = parsed.data;
  return {
    host: e.HOST,
    port: e.PORT,
    grpcPort: e.GRPC_PORT,
    database: e.DATABASE_URL
      ? {
          kind: "mysql",
          url: e.DATABASE_URL.replace(/^mariadb:/, "mysql:"),
          socketPath: socketOf(e.DATABASE_URL) ?? undefined,
          poolSize: e.DATABASE_POOL_SIZE,
          poolQueueLimit: e.DATABASE_POOL_QUEUE_LIMIT,
        }
      : { kind: "sqlite", path: e.SQLITE_PATH },
    migrateOnStart: e.MIGRATE_ON_START,
    nats: {
      url: e.NATS_URL,
      stream: e.NATS_STREAM,
      subjectPrefix: e.NATS_SUBJECT_PREFIX,
      duplicateWindowMs: e.NATS_DUPLICATE_WINDOW_SECONDS * 1000,
    },
    events: {
      retentionMs: e.EVENTS_RETENTION_DAYS * 24 * 3600 * 1000,
      payloadFormat: e.EVENTS_PAYLOAD_FORMAT,
      relayPollIntervalMs: e.RELAY_POLL_INTERVAL_MS,
      relayBatchSize: e.RELAY_BATCH_SIZE,
      fault: e.GROUPS_FAULT_INJECTION,
    },
    auth: {
      disabled: e.AUTH_DISABLED,
      bootstrapKey: e.AUTH_BOOTSTRAP_KEY,
      apiKeyCacheMs: e.API_KEY_CACHE_MS,
      jwt:
        e.JWT_JWKS_URL && e.JWT_ISSUER && e.JWT_AUDIENCE
          ? {
              jwksUrl: e.JWT_JWKS_URL,
              issuer: e.JWT_ISSUER,
              audience: e.JWT_AUDIENCE,
              algorithms: e.JWT_ALGORITHMS,
              clockSkewSeconds: e.JWT_CLOCK_SKEW_SECONDS,
              organizationClaim: e.JWT_ORG_CLAIM,
              permissionsClaim: e.JWT_PERMISSIONS_CLAIM,
              readPermission: e.JWT_READ_PERMISSION,
              writePermission: e.JWT_WRITE_PERMISSION,
            }
          : undefined,
    },
    limits: {
      ratePerSecond: e.RATE_LIMIT_PER_SECOND,
      rateBurst: e.RATE_LIMIT_BURST,
      deadlineDefaultMs: e.DEADLINE_DEFAULT_MS,
      deadlineMaxMs: e.DEADLINE_MAX_MS,
    },
    corsAllowedOrigins: e.CORS_ALLOWED_ORIGINS,
    logLevel: e.LOG_LEVEL,
  };
}
