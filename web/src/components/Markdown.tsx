import { memo, useState, type ReactNode } from 'react';
import ReactMarkdown, { defaultUrlTransform, type Components } from 'react-markdown';
import remarkGfm from 'remark-gfm';
import { highlight } from './highlight.js';

/**
 * Model output rendered as Markdown, safely: raw HTML in the text is dropped (no
 * rehype-raw, skipHtml), URLs go through react-markdown's allow-list (http, https, mailto…;
 * `javascript:` and friends become empty), images are shown as links (no remote fetches
 * from a model's answer), and links open in a new tab without referrer or opener.
 */
function textOf(node: ReactNode): string {
  if (node === null || node === undefined || typeof node === 'boolean') return '';
  if (typeof node === 'string' || typeof node === 'number') return String(node);
  if (Array.isArray(node)) return node.map(textOf).join('');
  if (typeof node === 'object' && 'props' in node) return textOf((node.props as { children?: ReactNode }).children);
  return '';
}

function CodeBlock({ children }: { children?: ReactNode }) {
  const [copied, setCopied] = useState(false);
  const text = textOf(children).replace(/\n$/, '');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setCopied(true);
      setTimeout(() => setCopied(false), 1500);
    } catch {
      setCopied(false);
    }
  };
  return (
    <div className="codeblock">
      <button type="button" className="btn btn-small codeblock-copy" onClick={copy} aria-label={copied ? 'Copied' : 'Copy code'}>
        {copied ? 'Copied' : 'Copy'}
      </button>
      {/* Focusable: a long line scrolls inside the block, and keyboards must reach it. */}
      <pre tabIndex={0}>{children}</pre>
    </div>
  );
}

const components: Components = {
  pre: ({ children }) => <CodeBlock>{children}</CodeBlock>,
  code: ({ className, children }) => {
    const lit = typeof children === 'string' ? highlight(className, children) : null;
    return <code className={lit ? `${className ?? ''} hljs` : className}>{lit ?? children}</code>;
  },
  a: ({ href, children }) =>
    href ? (
      <a href={href} target="_blank" rel="noopener noreferrer nofollow">
        {children}
      </a>
    ) : (
      <span className="link-removed">{children}</span>
    ),
  img: ({ src, alt }) =>
    typeof src === 'string' && src ? (
      <a href={src} target="_blank" rel="noopener noreferrer nofollow">
        {alt ? `[image: ${alt}]` : '[image]'}
      </a>
    ) : null,
};

function safeUrl(url: string): string {
  const out = defaultUrlTransform(url);
  return /^\s*(javascript|vbscript|data):/i.test(out) ? '' : out;
}

export const Markdown = memo(function Markdown({ text }: { text: string }) {
  return (
    <div className="markdown">
      <ReactMarkdown remarkPlugins={[remarkGfm]} skipHtml urlTransform={safeUrl} components={components}>
        {text}
      </ReactMarkdown>
    </div>
  );
});
