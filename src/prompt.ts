/**
 * Asks for the code on a terminal, so that a sender run by hand need not put
 * it in argv (where `ps` shows it to other local users) or in the shell's
 * history: `code: ` on stderr, one line read from the terminal.
 */
import { createInterface } from 'node:readline';
import { FerryError } from './protocol/errors.js';

/** The code typed, trimmed. Ctrl-C rejects with ERR_SIGINT; an empty line or end of input with ERR_USAGE. */
export function askCode(input: NodeJS.ReadableStream, output: NodeJS.WritableStream): Promise<string> {
  const rl = createInterface({ input, output, terminal: true });
  return new Promise<string>((resolve, reject) => {
    let answered = false;
    // In raw mode Ctrl-C is a key, not a signal: readline reports it here.
    rl.on('SIGINT', () => {
      output.write('\n');
      reject(new FerryError('ERR_SIGINT', 'interrupted by SIGINT'));
      rl.close();
    });
    rl.on('close', () => {
      if (!answered) reject(new FerryError('ERR_USAGE', 'no code given'));
    });
    rl.question('code: ', (answer) => {
      answered = true;
      rl.close();
      const code = answer.trim();
      if (code === '') reject(new FerryError('ERR_USAGE', 'no code given'));
      else resolve(code);
    });
  });
}
