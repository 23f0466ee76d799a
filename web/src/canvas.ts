// The labelling canvas: brush, eraser, lasso and polygon fill on a class-index mask over the image,
// with zoom, pan, undo/redo and mask opacity. The mask is a Uint8Array (one class index per pixel);
// only the changed rectangle of the colour overlay is redrawn, so 512x512 slices stay responsive.

import { showImage, type LabelClass } from "./api";
import { h } from "./dom";
import { fillPolygon, hexToRgb } from "./mask";

export type Tool = "brush" | "eraser" | "lasso" | "polygon" | "pan";
type Box = [number, number, number, number];

const HISTORY = 40;

export class MaskEditor {
  readonly element: HTMLDivElement;
  readonly mask: Uint8Array;
  tool: Tool = "brush";
  size = 8;
  label = 1;
  private readonly stage: HTMLDivElement;
  private readonly image: HTMLImageElement;
  private readonly overlay: HTMLCanvasElement;
  private readonly preview: HTMLCanvasElement;
  private readonly overlayContext: CanvasRenderingContext2D;
  private readonly pixels: ImageData;
  private readonly palette: [number, number, number][];
  private undoStack: Uint8Array[] = [];
  private redoStack: Uint8Array[] = [];
  private scale = 1;
  private tx = 0;
  private ty = 0;
  private drawing = false;
  private panning: { x: number; y: number; tx: number; ty: number } | null = null;
  private last: [number, number] | null = null;
  private path: [number, number][] = [];
  private spaceHeld = false;

  constructor(
    readonly width: number,
    readonly height: number,
    classes: LabelClass[],
    private readonly onChange: () => void,
  ) {
    this.mask = new Uint8Array(width * height);
    this.palette = [[0, 0, 0], ...classes.map((c) => hexToRgb(c.colour))];
    this.image = h("img", { class: "layer", alt: "image to label", draggable: "false" });
    this.overlay = h("canvas", { class: "layer overlay", width, height, "data-testid": "mask-canvas" });
    this.preview = h("canvas", { class: "layer preview", width, height });
    this.overlayContext = this.overlay.getContext("2d")!;
    this.pixels = this.overlayContext.createImageData(width, height);
    this.stage = h("div", { class: "stage" }, this.image, this.overlay, this.preview);
    this.stage.style.width = `${width}px`;
    this.stage.style.height = `${height}px`;
    this.element = h("div", { class: "viewport", tabindex: 0 }, this.stage);
    this.element.addEventListener("pointerdown", (e) => this.down(e));
    this.element.addEventListener("pointermove", (e) => this.move(e));
    this.element.addEventListener("pointerup", (e) => this.up(e));
    this.element.addEventListener("pointercancel", (e) => this.up(e));
    this.element.addEventListener("dblclick", () => this.closePolygon());
    this.element.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    this.element.addEventListener("contextmenu", (e) => e.preventDefault());
    window.addEventListener("keydown", (e) => e.code === "Space" && (this.spaceHeld = true));
    window.addEventListener("keyup", (e) => e.code === "Space" && (this.spaceHeld = false));
  }

  setImage(imageId: string, preset: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.image.onload = () => resolve();
      this.image.onerror = () => reject(new Error("the image could not be loaded"));
      showImage(this.image, imageId, preset).catch(reject);
    });
  }

  /** Replace the whole mask (pre-annotation, a stored version, a kept draft); undoable. */
  load(values: Uint8Array, undoable = true): void {
    if (undoable) this.remember();
    this.mask.set(values.subarray(0, this.mask.length));
    this.redraw([0, 0, this.width - 1, this.height - 1]);
  }

  setOpacity(value: number): void {
    this.overlay.style.opacity = String(value);
  }

  labelledPixels(): number {
    let n = 0;
    for (let i = 0; i < this.mask.length; i++) if (this.mask[i]) n++;
    return n;
  }

  undo(): void {
    const previous = this.undoStack.pop();
    if (!previous) return;
    this.redoStack.push(this.mask.slice());
    this.load(previous, false);
    this.onChange();
  }

  redo(): void {
    const next = this.redoStack.pop();
    if (!next) return;
    this.undoStack.push(this.mask.slice());
    this.load(next, false);
    this.onChange();
  }

  clear(): void {
    this.load(new Uint8Array(this.mask.length));
    this.onChange();
  }

  fit(): void {
    const box = this.element.getBoundingClientRect();
    const scale = Math.min(box.width / this.width, box.height / this.height) || 1;
    this.scale = scale;
    this.tx = (box.width - this.width * scale) / 2;
    this.ty = (box.height - this.height * scale) / 2;
    this.applyView();
  }

  zoom(factor: number, cx?: number, cy?: number): void {
    const box = this.element.getBoundingClientRect();
    const x = cx ?? box.width / 2;
    const y = cy ?? box.height / 2;
    const next = Math.min(40, Math.max(0.1, this.scale * factor));
    this.tx = x - ((x - this.tx) * next) / this.scale;
    this.ty = y - ((y - this.ty) * next) / this.scale;
    this.scale = next;
    this.applyView();
  }

  private applyView(): void {
    this.stage.style.transform = `translate(${this.tx}px, ${this.ty}px) scale(${this.scale})`;
    this.stage.classList.toggle("pixelated", this.scale >= 3);
  }

  private remember(): void {
    this.undoStack.push(this.mask.slice());
    if (this.undoStack.length > HISTORY) this.undoStack.shift();
    this.redoStack = [];
  }

  private point(e: PointerEvent | MouseEvent): [number, number] {
    const rect = this.overlay.getBoundingClientRect();
    return [((e.clientX - rect.left) * this.width) / rect.width, ((e.clientY - rect.top) * this.height) / rect.height];
  }

  private down(e: PointerEvent): void {
    this.element.focus();
    if (this.tool === "pan" || this.spaceHeld || e.button === 1 || e.button === 2) {
      this.panning = { x: e.clientX, y: e.clientY, tx: this.tx, ty: this.ty };
      this.capture(e.pointerId);
      return;
    }
    if (e.button !== 0) return;
    const p = this.point(e);
    if (this.tool === "polygon") {
      this.path.push(p);
      this.drawPath(false);
      return;
    }
    this.capture(e.pointerId);
    this.drawing = true;
    this.remember();
    if (this.tool === "lasso") {
      this.path = [p];
    } else {
      this.last = p;
      this.stamp(p, p);
    }
  }

  /** Keep receiving the stroke's moves outside the viewport (not possible for every pointer: then without). */
  private capture(pointerId: number): void {
    try {
      this.element.setPointerCapture(pointerId);
    } catch {
      /* an inactive pointer id (synthetic events): the stroke still works inside the viewport */
    }
  }

  private move(e: PointerEvent): void {
    if (this.panning) {
      this.tx = this.panning.tx + e.clientX - this.panning.x;
      this.ty = this.panning.ty + e.clientY - this.panning.y;
      this.applyView();
      return;
    }
    if (!this.drawing) return;
    const events = typeof e.getCoalescedEvents === "function" ? e.getCoalescedEvents() : [];
    for (const event of events.length ? events : [e]) {
      const p = this.point(event);
      if (this.tool === "lasso") this.path.push(p);
      else if (this.last) {
        this.stamp(this.last, p);
        this.last = p;
      }
    }
    if (this.tool === "lasso") this.drawPath(false);
  }

  private up(e: PointerEvent): void {
    if (this.panning) {
      this.panning = null;
      return;
    }
    if (!this.drawing) return;
    this.drawing = false;
    this.last = null;
    if (this.element.hasPointerCapture(e.pointerId)) this.element.releasePointerCapture(e.pointerId);
    if (this.tool === "lasso") {
      this.fillPath();
    }
    this.onChange();
  }

  /** Polygon tool: double click or Enter closes the polygon and fills it. */
  closePolygon(): void {
    if (this.tool !== "polygon" || this.path.length < 3) return;
    this.remember();
    this.fillPath();
    this.onChange();
  }

  cancelPath(): void {
    this.path = [];
    this.drawPath(true);
  }

  private fillPath(): void {
    const box = fillPolygon(this.mask, this.width, this.height, this.path, this.label);
    this.path = [];
    this.drawPath(true);
    if (box) this.redraw(box);
  }

  private drawPath(clearOnly: boolean): void {
    const context = this.preview.getContext("2d")!;
    context.clearRect(0, 0, this.width, this.height);
    if (clearOnly || this.path.length === 0) return;
    const [r, g, b] = this.palette[this.label] ?? [255, 255, 0];
    context.strokeStyle = `rgb(${r},${g},${b})`;
    context.lineWidth = Math.max(1, 1.5 / this.scale);
    context.beginPath();
    context.moveTo(...this.path[0]);
    for (const p of this.path.slice(1)) context.lineTo(...p);
    if (this.tool === "lasso") context.closePath();
    context.stroke();
  }

  /** Paint discs of the brush size along the segment a → b. */
  private stamp(a: [number, number], b: [number, number]): void {
    const radius = Math.max(0.5, this.size / 2);
    const value = this.tool === "eraser" ? 0 : this.label;
    const distance = Math.hypot(b[0] - a[0], b[1] - a[1]);
    const steps = Math.max(1, Math.ceil(distance / Math.max(1, radius / 2)));
    const r2 = radius * radius;
    let box: Box | null = null;
    for (let s = 0; s <= steps; s++) {
      const cx = a[0] + ((b[0] - a[0]) * s) / steps;
      const cy = a[1] + ((b[1] - a[1]) * s) / steps;
      const top = Math.max(0, Math.floor(cy - radius));
      const bottom = Math.min(this.height - 1, Math.ceil(cy + radius));
      for (let y = top; y <= bottom; y++) {
        const dy = y + 0.5 - cy;
        const half = Math.sqrt(Math.max(0, r2 - dy * dy));
        const from = Math.max(0, Math.ceil(cx - half - 0.5));
        const to = Math.min(this.width - 1, Math.floor(cx + half - 0.5));
        if (to < from) continue;
        this.mask.fill(value, y * this.width + from, y * this.width + to + 1);
        box = box ? [Math.min(box[0], from), Math.min(box[1], y), Math.max(box[2], to), Math.max(box[3], y)] : [from, y, to, y];
      }
    }
    if (box) this.redraw(box);
  }

  /** Recolour the overlay inside ``box`` (inclusive pixel bounds) from the mask. */
  private redraw([x0, y0, x1, y1]: Box): void {
    const data = this.pixels.data;
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const i = y * this.width + x;
        const value = this.mask[i];
        const o = i * 4;
        if (value === 0) {
          data[o + 3] = 0;
        } else {
          const [r, g, b] = this.palette[value] ?? [255, 255, 255];
          data[o] = r;
          data[o + 1] = g;
          data[o + 2] = b;
          data[o + 3] = 255;
        }
      }
    }
    this.overlayContext.putImageData(this.pixels, 0, 0, x0, y0, x1 - x0 + 1, y1 - y0 + 1);
  }

  private wheel(e: WheelEvent): void {
    e.preventDefault();
    const box = this.element.getBoundingClientRect();
    this.zoom(e.deltaY < 0 ? 1.15 : 1 / 1.15, e.clientX - box.left, e.clientY - box.top);
  }
}
