/** Run colours: TensorBoard-like distinct hues, assigned in the order runs are first seen and kept. */
const PALETTE = [
  "#ff7043",
  "#0077bb",
  "#cc3311",
  "#33bbee",
  "#ee3377",
  "#009988",
  "#bbbbbb",
  "#8e24aa",
  "#f9a825",
  "#43a047",
  "#5c6bc0",
  "#6d4c41",
];

export class RunColors {
  private readonly assigned = new Map<string, string>();

  of(run: string): string {
    let colour = this.assigned.get(run);
    if (!colour) {
      const index = this.assigned.size;
      const base = PALETTE[index % PALETTE.length] as string;
      // Past the palette, the same hues again at another lightness.
      const round = Math.floor(index / PALETTE.length);
      colour = round === 0 ? base : shade(base, round % 2 === 1 ? -0.35 : 0.35);
      this.assigned.set(run, colour);
    }
    return colour;
  }
}

function shade(hex: string, amount: number): string {
  const n = Number.parseInt(hex.slice(1), 16);
  const channel = (shift: number): string => {
    const c = (n >> shift) & 0xff;
    const moved = amount < 0 ? c * (1 + amount) : c + (255 - c) * amount;
    return Math.round(moved).toString(16).padStart(2, "0");
  };
  return `#${channel(16)}${channel(8)}${channel(0)}`;
}

/** `#rrggbb` with an alpha, for the faint raw curve behind the smoothed one. */
export function withAlpha(hex: string, alpha: number): string {
  const n = Number.parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 0xff}, ${(n >> 8) & 0xff}, ${n & 0xff}, ${alpha})`;
}
