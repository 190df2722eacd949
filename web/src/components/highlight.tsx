import { toJsxRuntime } from 'hast-util-to-jsx-runtime';
import bash from 'highlight.js/lib/languages/bash';
import c from 'highlight.js/lib/languages/c';
import cpp from 'highlight.js/lib/languages/cpp';
import csharp from 'highlight.js/lib/languages/csharp';
import css from 'highlight.js/lib/languages/css';
import diff from 'highlight.js/lib/languages/diff';
import go from 'highlight.js/lib/languages/go';
import java from 'highlight.js/lib/languages/java';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import python from 'highlight.js/lib/languages/python';
import rust from 'highlight.js/lib/languages/rust';
import shell from 'highlight.js/lib/languages/shell';
import sql from 'highlight.js/lib/languages/sql';
import typescript from 'highlight.js/lib/languages/typescript';
import xml from 'highlight.js/lib/languages/xml';
import yaml from 'highlight.js/lib/languages/yaml';
import { createLowlight } from 'lowlight';
import type { ReactNode } from 'react';
import { Fragment, jsx, jsxs } from 'react/jsx-runtime';

/**
 * Syntax highlighting for fenced code in answers: lowlight (highlight.js grammars, bundled —
 * only the languages below) turns the code into a syntax tree that becomes React elements,
 * so no HTML string is ever inserted. Unknown or unnamed languages stay plain text.
 */
const lowlight = createLowlight({ bash, c, cpp, csharp, css, diff, go, java, javascript, json, python, rust, shell, sql, typescript, xml, yaml });
/** Larger blocks stay plain: highlighting is for reading, not worth a slow render. */
const MAX_CHARS = 50_000;

export function highlight(className: string | undefined, code: string): ReactNode | null {
  const lang = /(?:^|\s)language-([\w+#-]+)/.exec(className ?? '')?.[1]?.toLowerCase();
  if (!lang || code.length > MAX_CHARS || !lowlight.registered(lang)) return null;
  try {
    return toJsxRuntime(lowlight.highlight(lang, code), { Fragment, jsx, jsxs });
  } catch {
    return null;
  }
}
