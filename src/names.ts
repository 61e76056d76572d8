/**
 * Names from files (tensor, permutation, initializer names) as they appear in messages. A file can carry a
 * name of a megabyte, or one with newlines and terminal escapes; a message must stay one readable line.
 */

/** A cut name keeps this many characters, then says its length. */
export const NAME_SHOWN = 80;

/** Quoted spans up to this long stay whole (long paths, real tensor names); longer ones are cut to NAME_SHOWN. */
export const QUOTED_WHOLE = 256;

/** Longest message shown whole (a backstop for names a message did not quote). */
export const MESSAGE_SHOWN = 2000;

/** `text`, its control characters escaped (\n, \u001b...), cut to `max` characters with its length said. */
export function shortText(text: string, max: number = NAME_SHOWN): string {
  const visible = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => JSON.stringify(c).slice(1, -1));
  return visible.length <= max ? visible : `${visible.slice(0, max)}…(${text.length} chars)`;
}

/**
 * A message for the user: every '…'-quoted span (how messages quote names) longer than QUOTED_WHOLE cut to
 * NAME_SHOWN characters, control characters escaped, and the whole no longer than MESSAGE_SHOWN.
 */
export function messageForUser(message: string): string {
  const quoted = new RegExp(`'([^'\\n]{${QUOTED_WHOLE + 1},})'`, 'g');
  const quotedCut = message.replace(quoted, (_, name: string) => `'${shortText(name)}'`);
  return shortText(quotedCut, MESSAGE_SHOWN);
}
