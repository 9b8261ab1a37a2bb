// Secrets for the CLI: from the environment (cron) or a prompt on the terminal without echo. Never
// logged, never part of an error message.
import * as readline from 'node:readline';

export async function promptSecret(question: string): Promise<string | undefined> {
  if (!process.stdin.isTTY || !process.stderr.isTTY) return undefined;
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  // Mute the echo of what is typed, keeping the question visible.
  const out = rl as unknown as { _writeToOutput?: (s: string) => void; output: NodeJS.WritableStream };
  let muted = false;
  out._writeToOutput = (s: string) => {
    if (!muted || s.startsWith(question)) process.stderr.write(s);
  };
  try {
    return await new Promise<string>((resolve) => {
      rl.question(question, (answer) => resolve(answer));
      muted = true;
    });
  } finally {
    muted = false;
    process.stderr.write('\n');
    rl.close();
  }
}
