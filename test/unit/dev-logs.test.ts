import pino from 'pino';
import { readable } from '../../tools/dev';

/** What a worker or API process writes: pino's JSON lines, as in production. */
function pinoLines(write: (log: pino.Logger) => void): string[] {
  const lines: string[] = [];
  write(pino({ name: 'worker' }, { write: (chunk: string) => void lines.push(chunk.trimEnd()) }));
  return lines;
}

describe('npm run dev: log lines for a person at a terminal', () => {
  it('when the worker logs a JSON line, then the terminal shows time, level, message and fields on one line, without pid and host', () => {
    const [line] = pinoLines((log) => log.info({ jobId: 'abc', step: 'algorithm' }, 'step started'));
    expect(line).toMatch(/^\{"level":30,/);
    const shown = readable(line!);
    expect(shown).toHaveLength(1);
    expect(shown[0]).toMatch(/^\[\d{2}:\d{2}:\d{2}\.\d{3}\] INFO: step started \{"jobId":"abc","step":"algorithm"\}$/);
    expect(shown[0]).not.toContain('hostname');
  });

  it('when an error is logged, then its stack is shown line by line', () => {
    const [line] = pinoLines((log) => log.error({ err: new Error('boom') }, 'step failed'));
    const shown = readable(line!);
    expect(shown[0]).toMatch(/ERROR: step failed/);
    expect(shown.some((l) => l.trim() === 'Error: boom')).toBe(true);
    expect(shown.length).toBeGreaterThan(3);
  });

  it('when a line is not a pino log (the dev chain, a crash message), then it is shown as it came', () => {
    expect(readable('Chain 8996 at http://127.0.0.1:8545; Ocean contracts written')).toEqual(['Chain 8996 at http://127.0.0.1:8545; Ocean contracts written']);
    expect(readable('{"not":"a log"}')).toEqual(['{"not":"a log"}']);
  });
});
