import { useEffect, useState } from 'react';
import { api } from '../api.js';

interface BannerItem {
  level: 'info' | 'warning' | 'critical';
  message: string;
}

/** Licence banners (expiring, grace, lapsed, test mode) for the people they are meant for. */
export function Banner() {
  const [items, setItems] = useState<BannerItem[]>([]);
  useEffect(() => {
    api<{ banners: BannerItem[] }>('/api/ui/banners')
      .then((r) => setItems(r.banners))
      .catch(() => setItems([]));
  }, []);
  if (!items.length) return null;
  return (
    <div className="banners">
      {items.map((b, i) => (
        <div key={i} className={`banner banner-${b.level}`} role={b.level === 'critical' ? 'alert' : 'status'}>
          {b.message}
        </div>
      ))}
    </div>
  );
}
