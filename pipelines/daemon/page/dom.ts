/** A few DOM and formatting helpers for the dashboard's panels. */

type Child = Node | string | number | null | undefined | false;

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) if (value !== undefined) node.setAttribute(name, value);
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "number" ? String(child) : child);
  }
  return node;
}

export function table(
  headers: string[],
  rows: Child[][],
  attrs: Record<string, string> = {},
): HTMLTableElement {
  return el(
    "table",
    { class: "grid", ...attrs },
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((cells) => el("tr", {}, ...cells.map((c) => el("td", {}, c))))),
  );
}

/** "4 s", "3 min", "2 h" since `iso`; "—" for none. */
export function age(iso: string | null, now = Date.now()): string {
  if (iso === null) return "—";
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 90) return `${seconds} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

/** An element whose text is the age of `iso`, kept current by refreshAges(). */
export function ageCell(iso: string | null): HTMLElement {
  const span = el("span", { class: "age", ...(iso === null ? {} : { "data-at": iso }) }, age(iso));
  if (iso !== null) span.title = iso;
  return span;
}

export function refreshAges(root: ParentNode = document): void {
  const now = Date.now();
  for (const span of root.querySelectorAll<HTMLElement>(".age[data-at]"))
    span.textContent = age(span.dataset.at ?? null, now);
}

export function when(iso: string | null): string {
  return iso === null ? "—" : new Date(iso).toLocaleString();
}

export function badge(status: string): HTMLElement {
  return el("span", { class: `status status-${status}`, "data-status": status }, status);
}

export function metric(value: number | undefined): string {
  if (value === undefined) return "—";
  return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)));
}
