import { messageForUser } from './names.js';

/**
 * An error caused by the user's input (a file, a spec, a flag), as opposed to a bug.
 * The CLI prints its one-line message without a stack trace and exits with code 2.
 */
export class InputError extends Error {
  override readonly name = 'InputError';
  constructor(message: string) {
    // Messages quote names read from files: a huge or control-laden name is cut and escaped here, once.
    super(messageForUser(message));
  }
}

export function isInputError(e: unknown): e is InputError {
  return e instanceof InputError;
}
