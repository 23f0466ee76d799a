// What the browser keeps: the lease being worked on, and every unsent mask (who you are comes from the server).
// A mask stays in localStorage from the first stroke until the server confirms it saved it.

import type { Task } from "./api";

export interface Rle {
  encoding: "rle";
  size: [number, number];
  runs: [number, number][];
}

export interface UnsentMask {
  project: string;
  imageId: string;
  task: Task | null;
  rle: Rle;
  updatedAt: string;
  problem?: string;
}

const UNSENT = "medal.unsent.";
const LEASE = "medal.lease.";

export function currentLease(project: string): Task | null {
  const raw = localStorage.getItem(LEASE + project);
  return raw ? (JSON.parse(raw) as Task) : null;
}

export function setCurrentLease(project: string, task: Task | null): void {
  if (task) localStorage.setItem(LEASE + project, JSON.stringify(task));
  else localStorage.removeItem(LEASE + project);
}

function unsentKey(imageId: string): string {
  return UNSENT + imageId;
}

export function keepUnsent(mask: UnsentMask): boolean {
  try {
    localStorage.setItem(unsentKey(mask.imageId), JSON.stringify(mask));
    return true;
  } catch {
    return false; // storage full: the caller warns the user
  }
}

export function unsent(imageId: string): UnsentMask | null {
  const raw = localStorage.getItem(unsentKey(imageId));
  return raw ? (JSON.parse(raw) as UnsentMask) : null;
}

export function forgetUnsent(imageId: string): void {
  localStorage.removeItem(unsentKey(imageId));
}

export function allUnsent(project: string): UnsentMask[] {
  const found: UnsentMask[] = [];
  for (let i = 0; i < localStorage.length; i++) {
    const key = localStorage.key(i);
    if (!key?.startsWith(UNSENT)) continue;
    const mask = JSON.parse(localStorage.getItem(key)!) as UnsentMask;
    if (mask.project === project) found.push(mask);
  }
  return found.sort((a, b) => a.updatedAt.localeCompare(b.updatedAt));
}
