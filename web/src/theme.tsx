import { useEffect, useState } from 'react';

/**
 * Colour theme: follows the system preference unless the user picked light or dark (kept in
 * localStorage, per browser). Applied as <html data-theme> before the first render (main.tsx)
 * so the page does not flash; styles.css defines both palettes.
 */
export type ThemeSetting = 'system' | 'light' | 'dark';
const KEY = 'enclave.theme';
const media = () => window.matchMedia('(prefers-color-scheme: dark)');

export function themeSetting(): ThemeSetting {
  const v = localStorage.getItem(KEY);
  return v === 'light' || v === 'dark' ? v : 'system';
}
export function applyTheme(setting = themeSetting()): void {
  const dark = setting === 'dark' || (setting === 'system' && media().matches);
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
}
export function initTheme(): void {
  applyTheme();
  media().addEventListener('change', () => applyTheme());
}

const NEXT: Record<ThemeSetting, ThemeSetting> = { system: 'light', light: 'dark', dark: 'system' };
const LABEL: Record<ThemeSetting, string> = { system: 'System', light: 'Light', dark: 'Dark' };
const ICON: Record<ThemeSetting, string> = { system: '◐', light: '☀', dark: '☾' };

/** A button that cycles system → light → dark. */
export function ThemeToggle() {
  const [setting, setSetting] = useState<ThemeSetting>(themeSetting);
  useEffect(() => {
    if (setting === 'system') localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, setting);
    applyTheme(setting);
  }, [setting]);
  return (
    <button type="button" className="btn btn-ghost theme-toggle" aria-label={`Colour theme: ${LABEL[setting]}. Change to ${LABEL[NEXT[setting]]}`} title={`Theme: ${LABEL[setting]}`} onClick={() => setSetting(NEXT[setting])}>
      <span aria-hidden="true">{ICON[setting]}</span>
    </button>
  );
}
