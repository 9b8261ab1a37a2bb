// Logging is injected: the CLI prints to stderr, the extension writes to its LogOutputChannel, tests
// collect lines. Nothing secret is ever passed to a logger (passphrases never reach the engine's logs).
export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export const nullLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** A logger that keeps lines in memory (tests, and the extension's last-run details). */
export class MemoryLogger implements Logger {
  readonly lines: string[] = [];
  debug(m: string) { this.lines.push(`debug: ${m}`); }
  info(m: string) { this.lines.push(`info: ${m}`); }
  warn(m: string) { this.lines.push(`warn: ${m}`); }
  error(m: string) { this.lines.push(`error: ${m}`); }
}
