import type { z } from 'zod';
import type { consumerParameterSchema } from '../domain/ddo';
import { ValidationError } from '../domain/errors';

export type ConsumerParameter = z.infer<typeof consumerParameterSchema>;

/** `select` options are Ocean's `[{ "<value>": "<label>" }, …]`: the keys are the values one may pick. */
const optionValues = (p: ConsumerParameter): string[] => (p.options ?? []).flatMap((o) => Object.keys(o));

/** Why `value` does not fit `p`, or null. Numbers and booleans may arrive as text (query strings carry only text). */
function problem(p: ConsumerParameter, value: unknown): string | null {
  switch (p.type) {
    case 'text':
      return typeof value === 'string' ? null : 'must be text';
    case 'number':
      return (typeof value === 'number' && Number.isFinite(value)) || (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value)))
        ? null
        : 'must be a number';
    case 'boolean':
      return typeof value === 'boolean' || value === 'true' || value === 'false' ? null : 'must be true or false';
    case 'select': {
      const values = optionValues(p);
      return values.includes(String(value)) && (typeof value === 'string' || typeof value === 'number') ? null : `must be one of ${values.join(', ')}`;
    }
  }
}

/**
 * Checks a consumer's `userdata` against the `consumerParameters` of the asset: each required one
 * present, each given one of its type (and among the options for `select`). Parameters the asset does
 * not declare pass through, as in Ocean. Errors name the field as `<prefix>.<parameter>`.
 */
export function requireValidUserdata(parameters: ConsumerParameter[] | undefined, userdata: Record<string, unknown> | undefined, prefix: string): void {
  const fields: Record<string, string[]> = {};
  for (const p of parameters ?? []) {
    const value = userdata?.[p.name];
    if (value === undefined || value === null || value === '') {
      if (p.required) fields[`${prefix}.${p.name}`] = ['required'];
      continue;
    }
    const why = problem(p, value);
    if (why) fields[`${prefix}.${p.name}`] = [why];
  }
  if (Object.keys(fields).length > 0) throw new ValidationError(fields);
}
