import { pino, type Logger } from "pino";

/** JSON logs; secrets in headers never reach them. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: "groups" },
    redact: {
      paths: ["authorization", "*.authorization", "headers.authorization"],
      censor: "[redacted]",
    },
  });
}
