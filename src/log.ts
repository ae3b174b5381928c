// winston logging: JSON lines to one file per process, readable lines on the console.
import { chmodSync, closeSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import winston from 'winston';

const SECRET_KEYS = /(key|token|secret|password|kubeconfig|privateKeyPem)$/i;

/** Drops any field whose name says it holds a secret, so keys and tokens are never logged. */
const redact = winston.format((info) => {
  for (const k of Object.keys(info)) {
    if (SECRET_KEYS.test(k)) info[k] = '[redacted]';
  }
  return info;
});

export type Logger = winston.Logger;

const LOG_DIR_MODE = 0o700;
const LOG_FILE_MODE = 0o600;

/**
 * The log directory 0700 and the log file 0600, also when they already exist with looser modes:
 * the log names nodes, addresses and errors that other local users have no business reading.
 */
export function prepareLogFile(logFile: string): void {
  const dir = path.dirname(logFile);
  mkdirSync(dir, { recursive: true, mode: LOG_DIR_MODE });
  chmodSync(dir, LOG_DIR_MODE);
  closeSync(openSync(logFile, 'a', LOG_FILE_MODE));
  chmodSync(logFile, LOG_FILE_MODE);
}

export function createLogger(processName: string, logFile?: string, level = process.env.K8S_LOG_LEVEL || 'info'): Logger {
  const transports: winston.transport[] = [
    new winston.transports.Console({
      stderrLevels: ['error', 'warn', 'info', 'debug'],
      format: winston.format.combine(
        redact(),
        winston.format.timestamp({ format: 'HH:mm:ss' }),
        winston.format.printf(({ timestamp, level: lvl, message, ...rest }) => {
          const extra = Object.entries(rest)
            .filter(([k]) => k !== 'service')
            .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
            .join(' ');
          return `${String(timestamp)} ${lvl} ${String(message)}${extra ? ' ' + extra : ''}`;
        }),
      ),
    }),
  ];
  if (logFile) {
    prepareLogFile(logFile);
    transports.push(
      new winston.transports.File({
        filename: logFile,
        maxsize: 50 * 1024 * 1024,
        maxFiles: 3,
        tailable: true,
        // Rotated files are created by winston: 0600 too.
        options: { flags: 'a', mode: LOG_FILE_MODE },
        format: winston.format.combine(redact(), winston.format.timestamp(), winston.format.json()),
      }),
    );
  }
  return winston.createLogger({ level, defaultMeta: { service: processName }, transports });
}

/** A logger that drops everything (unit tests, quiet CLI paths). */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console()] });
}
