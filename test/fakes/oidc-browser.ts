/**
 * A headless cookie-jar "browser" for login flows: fetch with manual redirects, cookies
 * kept per origin (scheme://host:port), Set-Cookie with Max-Age=0 or a past Expires deletes.
 */
export interface Hop {
  readonly url: string;
  readonly status: number;
  readonly location: string | null;
}

export class Browser {
  readonly jar = new Map<string, Map<string, string>>();

  cookies(origin: string): Map<string, string> {
    let m = this.jar.get(origin);
    if (!m) this.jar.set(origin, (m = new Map()));
    return m;
  }

  cookie(url: string, name: string): string | undefined {
    return this.cookies(new URL(url).origin).get(name);
  }

  setCookie(url: string, name: string, value: string): void {
    this.cookies(new URL(url).origin).set(name, value);
  }

  private store(url: string, res: Response): void {
    const jar = this.cookies(new URL(url).origin);
    for (const sc of res.headers.getSetCookie()) {
      const [pair, ...attrs] = sc.split(';');
      const i = pair!.indexOf('=');
      const name = pair!.slice(0, i).trim();
      const value = pair!.slice(i + 1).trim();
      const expired = attrs.some((a) => {
        const [k, v] = a.trim().split('=');
        if (k!.toLowerCase() === 'max-age') return Number(v) <= 0;
        if (k!.toLowerCase() === 'expires') return Date.parse(v ?? '') < Date.now();
        return false;
      });
      if (expired || value === '') jar.delete(name);
      else jar.set(name, value);
    }
  }

  async request(url: string, init: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<Response> {
    const jar = this.cookies(new URL(url).origin);
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(url, {
      method: init.method ?? 'GET',
      redirect: 'manual',
      headers: { ...(cookie ? { cookie } : {}), ...init.headers },
      ...(init.body !== undefined ? { body: init.body } : {}),
    });
    this.store(url, res);
    return res;
  }

  /** Follows redirects (up to 20); stops early when `until(url)` is true for the next URL. */
  async follow(
    url: string,
    opts: { until?: (next: string) => boolean; method?: string; body?: string; headers?: Record<string, string> } = {},
  ): Promise<{ res: Response; hops: Hop[]; url: string; stoppedAt?: string }> {
    const hops: Hop[] = [];
    let current = url;
    let init: { method?: string; body?: string; headers?: Record<string, string> } = { ...opts };
    for (let i = 0; i < 20; i++) {
      const res = await this.request(current, init);
      const location = res.headers.get('location');
      hops.push({ url: current, status: res.status, location });
      if (res.status < 300 || res.status >= 400 || !location) return { res, hops, url: current };
      const next = new URL(location, current).href;
      await res.arrayBuffer();
      if (opts.until?.(next)) return { res, hops, url: current, stoppedAt: next };
      current = next;
      init = {};
    }
    throw new Error('too many redirects');
  }
}
