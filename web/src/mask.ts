// Masks as class-index arrays: run-length encoding for the API, PNG decoding, polygon fill.

import type { Rle } from "./store";

export function encodeRle(mask: Uint8Array, width: number, height: number): Rle {
  const runs: [number, number][] = [];
  let value = mask[0] ?? 0;
  let count = 0;
  for (let i = 0; i < mask.length; i++) {
    if (mask[i] === value) count++;
    else {
      runs.push([value, count]);
      value = mask[i];
      count = 1;
    }
  }
  if (count) runs.push([value, count]);
  return { encoding: "rle", size: [height, width], runs };
}

export function decodeRle(rle: Rle): Uint8Array {
  const out = new Uint8Array(rle.size[0] * rle.size[1]);
  let at = 0;
  for (const [value, count] of rle.runs) {
    out.fill(value, at, at + count);
    at += count;
  }
  return out;
}

/** A PNG of class indices (grey) → indices, read through a canvas. */
export async function decodeMaskPng(blob: Blob, width: number, height: number): Promise<Uint8Array> {
  const bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext("2d")!;
  context.drawImage(bitmap, 0, 0);
  const rgba = context.getImageData(0, 0, width, height).data;
  const out = new Uint8Array(width * height);
  for (let i = 0; i < out.length; i++) out[i] = rgba[i * 4];
  return out;
}

export function base64ToBlob(data: string, type: string): Blob {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type });
}

/** Fill a polygon (even-odd rule, pixel centres) with ``value``; returns the touched bounding box. */
export function fillPolygon(
  mask: Uint8Array,
  width: number,
  height: number,
  points: [number, number][],
  value: number,
): [number, number, number, number] | null {
  if (points.length < 3) return null;
  const ys = points.map((p) => p[1]);
  const top = Math.max(0, Math.floor(Math.min(...ys)));
  const bottom = Math.min(height - 1, Math.ceil(Math.max(...ys)));
  let left = width;
  let right = -1;
  for (let y = top; y <= bottom; y++) {
    const cy = y + 0.5;
    const crossings: number[] = [];
    for (let i = 0; i < points.length; i++) {
      const [x1, y1] = points[i];
      const [x2, y2] = points[(i + 1) % points.length];
      if (y1 <= cy !== y2 <= cy) crossings.push(x1 + ((cy - y1) / (y2 - y1)) * (x2 - x1));
    }
    crossings.sort((a, b) => a - b);
    for (let k = 0; k + 1 < crossings.length; k += 2) {
      const from = Math.max(0, Math.ceil(crossings[k] - 0.5));
      const to = Math.min(width - 1, Math.floor(crossings[k + 1] - 0.5));
      if (to < from) continue;
      mask.fill(value, y * width + from, y * width + to + 1);
      left = Math.min(left, from);
      right = Math.max(right, to);
    }
  }
  return right < 0 ? null : [left, top, right, bottom];
}

export function hexToRgb(hex: string): [number, number, number] {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}
