/**
 * A thumbs-up / thumbs-down icon drawn as SVG: emoji depend on the system's fonts, and many
 * Linux desktops (and headless browsers) have no colour-emoji font, where 👍 shows as a box.
 */
export function Thumb({ down = false, size = 18 }: { down?: boolean; size?: number }) {
  return (
    <svg width={size} height={size} viewBox="0 0 24 24" aria-hidden="true" focusable="false" style={down ? { transform: 'rotate(180deg)' } : undefined}>
      <path
        fill="currentColor"
        d="M2 21h3V9H2v12zm20-11c0-1.1-.9-2-2-2h-6.3l1-4.6V3c0-.4-.2-.8-.4-1.1L13.2 1 6.6 7.6C6.2 8 6 8.5 6 9v10c0 1.1.9 2 2 2h9c.8 0 1.5-.5 1.8-1.2l3-7.1c.1-.2.2-.5.2-.7v-2z"
      />
    </svg>
  );
}
