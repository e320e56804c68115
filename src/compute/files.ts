import fs from 'node:fs';

/** The file's stats when it is a regular file (never following a link a step may have planted); else null. */
export function regularFile(file: string): fs.Stats | null {
  try {
    const st = fs.lstatSync(file);
    return st.isFile() ? st : null;
  } catch {
    return null;
  }
}
