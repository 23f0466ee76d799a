// A tiny element builder and page-level messages.
import { showImage } from "./api";

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | EventListener | null | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value as EventListener);
    } else if (name === "value" && "value" in element) {
      (element as HTMLInputElement).value = String(value);
    } else if (name === "style") {
      element.style.cssText = String(value); // CSSOM: allowed by the Content-Security-Policy (no inline style attributes)
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    element.append(typeof child === "object" ? child : String(child));
  }
  return element;
}

export function svg(tag: string, attrs: Record<string, string | number>, ...children: (Node | string)[]): SVGElement {
  const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
  element.append(...children);
  return element;
}

let bannerTimer: number | undefined;

/** A message at the top of the page; errors stay until dismissed, notices fade. */
export function banner(text: string, kind: "error" | "notice" | "warning" = "notice", actions: HTMLElement[] = []): void {
  const element = document.getElementById("banner")!;
  window.clearTimeout(bannerTimer);
  element.replaceChildren(
    h("span", { class: "banner-text", "data-kind": kind }, text),
    ...actions,
    h("button", { class: "link", "aria-label": "dismiss", onclick: () => (element.hidden = true) }, "×"),
  );
  element.className = `banner ${kind}`;
  element.hidden = false;
  if (kind === "notice") bannerTimer = window.setTimeout(() => (element.hidden = true), 6000);
}

export function clearBanner(): void {
  document.getElementById("banner")!.hidden = true;
}

export function fmtDate(iso: string | null): string {
  return iso ? new Date(iso).toLocaleString() : "—";
}

export function fmtSeconds(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return "—";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** An image thumbnail (loaded with the API key when one is set). */
export function thumb(imageId: string, className = "thumb"): HTMLImageElement {
  const img = h("img", { class: className, alt: "", loading: "lazy" });
  void showImage(img, imageId).catch(() => img.classList.add("broken"));
  return img;
}
