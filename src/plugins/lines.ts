import type { Readable } from 'node:stream';

export interface Line {
  /** the line without its end (\n or \r\n), decoded as UTF-8 */
  text: string;
  /** '\n', '\r\n' or '' for a last line without one */
  eol: string;
}

/** The lines of a stream, ends kept apart so a rewrite can put them back byte for byte. */
export async function* readLines(stream: Readable): AsyncGenerator<Line> {
  let rest = Buffer.alloc(0);
  for await (const chunk of stream) {
    let buf = rest.length > 0 ? Buffer.concat([rest, chunk as Buffer]) : (chunk as Buffer);
    let nl = buf.indexOf(0x0a);
    while (nl >= 0) {
      const cr = nl > 0 && buf[nl - 1] === 0x0d;
      yield { text: buf.subarray(0, cr ? nl - 1 : nl).toString('utf8'), eol: cr ? '\r\n' : '\n' };
      buf = buf.subarray(nl + 1);
      nl = buf.indexOf(0x0a);
    }
    rest = Buffer.from(buf);
  }
  if (rest.length > 0) yield { text: rest.toString('utf8'), eol: '' };
}
