import { execFileSync } from "node:child_process";
import os from "node:os";
import type mysql from "mysql2/promise";

const git = (...args: string[]) => {
  try {
    return execFileSync("git", args, {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return "";
  }
};

/** What the figures were measured on. */
export async function machineInfo(sql: mysql.Connection, natsVersion: string) {
  const [[v]] = (await sql.query("SELECT VERSION() AS v")) as unknown as [[{ v: string }]];
  const [vars] = (await sql.query(
    "SHOW VARIABLES WHERE Variable_name IN ('innodb_buffer_pool_size', 'innodb_flush_log_at_trx_commit', 'log_bin', 'innodb_flush_method')",
  )) as unknown as [{ Variable_name: string; Value: string }[]];
  const variable = (name: string) => vars.find((r) => r.Variable_name === name)?.Value ?? "";
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    mariadb: /mariadb/i.test(v.v) ? `MariaDB ${v.v.split("-")[0]}` : `MySQL ${v.v}`,
    mariadbVersion: v.v,
    innodbBufferPoolMb: Math.round(Number(variable("innodb_buffer_pool_size")) / 2 ** 20),
    innodbFlushLogAtTrxCommit: variable("innodb_flush_log_at_trx_commit"),
    innodbFlushMethod: variable("innodb_flush_method"),
    logBin: variable("log_bin"),
    nats: natsVersion,
    // BENCH_GIT_COMMIT: set when running from an export of a commit (no .git there).
    gitCommit: process.env.BENCH_GIT_COMMIT || git("rev-parse", "--short=12", "HEAD"),
    gitDirty: process.env.BENCH_GIT_COMMIT
      ? 0
      : git("status", "--porcelain").split("\n").filter(Boolean).length,
  };
}

export const loadAverage = () =>
  os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
