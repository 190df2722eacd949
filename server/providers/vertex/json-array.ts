import { StringDecoder } from 'node:string_decoder';

/**
 * The elements of a top-level JSON array as they complete, from a byte stream: Google's
 * default framing of `streamGenerateContent` (`[{…}\r\n,{…}\r\n]`, written element by element).
 * The adapter asks for SSE (`alt=sse`); this reads the answer of a server or proxy that sends
 * the default framing anyway. Strings (and escaped quotes in them) are tracked, so a bracket
 * inside text never ends an element. Anything that is not an array of JSON values is a
 * SyntaxError, like a malformed line of any other stream.
 */
export async function* readJsonArray(src: AsyncIterable<Buffer | string>): AsyncGenerator<unknown> {
  const dec = new StringDecoder('utf8');
  let buf = '';
  let pos = 0; // next character to scan
  let started = false; // saw the opening '['
  let ended = false; // saw the closing ']'
  let depth = 0; // nesting inside the current element
  let start = -1; // start of the current element in buf
  let inString = false;
  let escaped = false;
  const bad = (why: string): SyntaxError => new SyntaxError(`The stream is not a JSON array (${why}).`);
  for await (const chunk of src) {
    buf += typeof chunk === 'string' ? chunk : dec.write(chunk);
    for (; pos < buf.length; pos++) {
      const c = buf.charCodeAt(pos);
      if (start >= 0) {
        if (inString) {
          if (escaped) escaped = false;
          else if (c === 92) escaped = true; // backslash
          else if (c === 34) inString = false;
          continue;
        }
        if (c === 34) inString = true;
        else if (c === 123 || c === 91) depth++;
        else if (c === 125 || c === 93) {
          depth--;
          if (depth === 0) {
            yield JSON.parse(buf.slice(start, pos + 1));
            start = -1;
          }
        }
        continue;
      }
      // Between elements: whitespace, the array's brackets, commas.
      if (c === 32 || c === 9 || c === 10 || c === 13) continue;
      if (ended) throw bad('text after the closing bracket');
      if (!started) {
        if (c !== 91) throw bad('it does not start with [');
        started = true;
      } else if (c === 44) continue; // ','
      else if (c === 93) ended = true;
      else if (c === 123 || c === 91) {
        start = pos;
        depth = 1;
      } else throw bad('an element that is not an object or array');
    }
    // Keep only the unfinished element (or nothing) for the next chunk.
    const keep = start >= 0 ? start : pos;
    if (keep > 0) {
      buf = buf.slice(keep);
      pos -= keep;
      if (start >= 0) start = 0;
    }
  }
  if (!ended) throw bad('it ended before its closing bracket');
}
