/** The logger every module takes in its deps (pino satisfies it). Message constant, fields in the object. */
export interface Logger {
  debug(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
  child(bindings: object): Logger;
}
