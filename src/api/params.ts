import type { Request } from 'express';
import type { z } from 'zod';
import { ValidationError } from '../domain/errors';

/** Ocean's rule: the query string if it has any parameter, otherwise the JSON body. */
export function requestParams(req: Request): unknown {
  const query = req.query as Record<string, unknown>;
  if (Object.keys(query).length > 0) return query;
  const body: unknown = req.body;
  return body ?? {};
}

/** Parses at the edge; a failure becomes Ocean's validation shape `{"errors":{field:[text]}}`. */
export function parseWith<T extends z.ZodType>(schema: T, input: unknown): z.infer<T> {
  // A missing field says so, whatever its type (zod's default names the expected type, or nothing for unions).
  const parsed = schema.safeParse(input, { error: (issue) => (issue.input === undefined && issue.code !== 'custom' ? 'required' : undefined) });
  if (parsed.success) return parsed.data;
  const fields: Record<string, string[]> = {};
  for (const issue of parsed.error.issues) {
    const field = issue.path.length > 0 ? issue.path.map(String).join('.') : 'body';
    (fields[field] ??= []).push(issue.message);
  }
  throw new ValidationError(fields);
}

export const parseParams = <T extends z.ZodType>(schema: T, req: Request): z.infer<T> => parseWith(schema, requestParams(req));
