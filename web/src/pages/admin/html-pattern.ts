/**
 * Browsers compile the `pattern` attribute with the `v` flag, where a literal `-` at the edge of
 * a character class must be escaped: `[a-z0-9-]` (fine for the server's RegExp) is a syntax error
 * there, the browser logs it and skips the check. Escape it for the form.
 */
export function htmlPattern(src: string): string {
  return src.replace(/(?<!\\)-\]/g, '\\-]').replace(/\[(\^?)-/g, '[$1\\-');
}
