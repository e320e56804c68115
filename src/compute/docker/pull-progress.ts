/** The engine's layer states that mean a layer is in place (Docker: extracted; both: there before). */
const LAYER_DONE = /^(Pull complete|Already exists)$/;
/** A progress line about one layer: `<layer id>: <state>` (the client writes each distinct one). */
const LAYER_LINE = /^([0-9a-f]{6,}): (.+)$/;

/**
 * Folds an image pull's progress lines into one line for the job's summary: how many of the layers seen
 * so far are in place, else the engine's last word (an engine that names no layers).
 */
export class PullProgress {
  private readonly layers = new Map<string, boolean>();
  private last = '';

  constructor(private readonly ref: string) {}

  /** records one progress line; returns the summary now */
  add(line: string): string {
    const layer = LAYER_LINE.exec(line);
    if (layer) this.layers.set(layer[1]!, this.layers.get(layer[1]!) === true || LAYER_DONE.test(layer[2]!));
    else this.last = line;
    return this.summary();
  }

  summary(): string {
    if (this.layers.size === 0) return `pulling image ${this.ref}${this.last ? `: ${this.last}` : ''}`;
    const done = [...this.layers.values()].filter(Boolean).length;
    return `pulling image ${this.ref}: ${done} of ${this.layers.size} layers`;
  }
}
