import type { Readable } from 'node:stream';

export interface Line {
  /** the line without its end (\n or \r\n), decoded as UTF-8; a cut line: its first maxLineBytes only */
  text: string;
  /** '\n', '\r\n' or '' for a last line without one (or a cut line whose end was not read yet) */
  eol: string;
  /** the line was longer than maxLineBytes: `text` is its start, the rest was skipped */
  cut?: boolean;
}

/** The most bytes of one line the output filter holds by default: a file with no line end is not read into memory whole. */
export const MAX_LINE_BYTES = 1024 * 1024;

/**
 * The lines of a stream, ends kept apart so a rewrite can put them back byte for byte. Holds at most
 * `maxLineBytes` of a line (plus one chunk): a longer line is yielded cut, the rest skipped to its end.
 */
export async function* readLines(stream: Readable, maxLineBytes = MAX_LINE_BYTES): AsyncGenerator<Line> {
  let rest = Buffer.alloc(0);
  /** inside a line already yielded cut: skip to its end */
  let skipping = false;
  for await (const chunk of stream) {
    let buf = rest.length > 0 ? Buffer.concat([rest, chunk as Buffer]) : (chunk as Buffer);
    let nl = buf.indexOf(0x0a);
    while (nl >= 0) {
      const cr = nl > 0 && buf[nl - 1] === 0x0d;
      const end = cr ? nl - 1 : nl;
      const eol = cr ? '\r\n' : '\n';
      if (skipping) skipping = false;
      else if (end > maxLineBytes) yield { text: buf.subarray(0, maxLineBytes).toString('utf8'), eol, cut: true };
      else yield { text: buf.subarray(0, end).toString('utf8'), eol };
      buf = buf.subarray(nl + 1);
      nl = buf.indexOf(0x0a);
    }
    if (!skipping && buf.length > maxLineBytes) {
      yield { text: buf.subarray(0, maxLineBytes).toString('utf8'), eol: '', cut: true };
      skipping = true;
    }
    rest = skipping ? Buffer.alloc(0) : Buffer.from(buf);
  }
  if (rest.length > 0) yield { text: rest.toString('utf8'), eol: '' };
}
