/** The logger every module takes in its deps (pino satisfies it). Message constant, fields in the object. */
export interface Logger {
  debug(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
  child(bindings: object): Logger;
}

/**
 * Fields no log line may carry, whatever a module passes (pino's redact paths): request signatures,
 * keys, the codec token and authorization headers at the top level and one level down; decrypted file
 * locations (`url`, `files`) one level down, where objects holding them would sit (a top-level `files`
 * is a count). A second guard: modules log constant messages with ids, never these in the first place.
 */
const secretFields = ['signature', 'privateKey', 'token', 'codecToken', 'authorization'];
export const redactedLogPaths: readonly string[] = [...secretFields.flatMap((f) => [f, `*.${f}`]), '*.url', '*.files'];
