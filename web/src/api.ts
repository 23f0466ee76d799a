// The public REST APIs of the services, all on this page's origin (medal up mounts them under /<service>).

import { credentials, hasCredentials, type Rights } from "./auth";

export { apiKey, setApiKey } from "./auth";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The request never got an answer: the network or the server is down. */
export class ConnectionLost extends Error {}

export interface LabelClass {
  name: string;
  colour: string;
}

export interface ProjectSettings {
  classes: LabelClass[];
  window: string;
  strategy: string;
  candidates: number;
  batch: number;
  initial_labels: number;
  committee: number;
  target_dice: number;
  label_budget: number | null;
  keep_annotators_busy: boolean;
  lease_seconds: number;
  [key: string]: unknown;
}

export interface Project {
  id: string;
  name: string;
  images: number;
  created_at: string;
  settings: ProjectSettings;
}

/** Why a round's committee could not be trained (the trainer's round.failed.v1). */
export interface RoundFailure {
  round_id: string;
  round_number: number;
  attempt: number;
  code: "bad-training-data" | "attempts-exhausted" | "round-rejected";
  reason: string;
  failed_at: string;
}

export interface Round {
  id: string;
  number: number;
  state: "open" | "completed" | "training-failed";
  source: string;
  tasks: number;
  submitted: number;
  attempt: number;
  completed_at: string | null;
  failure: RoundFailure | null;
}

/** Who is signed in (the owner of leases and the author of masks) and what it may do where. */
export type Me = Rights;

export interface RoundTask {
  task_id: string;
  image_id: string;
  position: number;
  state: string;
  lease_owner: string | null;
  lease_expires_at: string | null;
  submitted_at: string | null;
}

export interface Task {
  task_id: string;
  round_id: string;
  round_number: number;
  image_id: string;
  width: number;
  height: number;
  lease_token: string;
  lease_expires_at: string;
}

export interface Lease {
  task: Task | null;
  status: "leased" | "waiting-for-model" | "training-failed" | "done" | "not-started";
  failure: RoundFailure | null;
}

export interface ModelVersion {
  id: string;
  version: number;
  round_id: string;
  labels: number;
  validation_dice: number;
  current: boolean;
  created_at: string;
}

export interface Status {
  project: string;
  labels: number;
  images: number;
  held_out: number;
  rounds: Round[];
  models: ModelVersion[];
  done: boolean;
  failure: RoundFailure | null;
  autolabel: Record<string, unknown>[];
}

export interface Image {
  id: string;
  modality: string;
  width: number;
  height: number;
  held_out: boolean;
  created_at: string;
}

export interface MaskSaved {
  image_id: string;
  version: number;
  round_completed: boolean;
}

export interface TrainerJob {
  id: string;
  round_number: number;
  member_index: number;
  committee_size: number;
  state: "queued" | "running" | "done" | "failed";
  epoch: number | null;
  max_epochs: number;
  loss: number | null;
  validation_dice: number | null;
  eta_seconds: number | null;
  queue_position: number | null;
  error: string | null;
}

export interface Prediction {
  model_version_id: string;
  version: number;
  confidence: number;
  width: number;
  height: number;
  mask_png_base64: string;
}

export interface StoredMask {
  version: number;
  png: Blob;
  machineMade: boolean;
  confidence: number | null;
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  return { ...extra, ...credentials() };
}

async function send(path: string, init: RequestInit = {}): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(path, { ...init, headers: headers((init.headers as Record<string, string>) ?? {}) });
  } catch {
    throw new ConnectionLost("the server cannot be reached (connection lost?)");
  }
  if (!response.ok) {
    let code = `http-${response.status}`;
    let message = response.statusText || `HTTP ${response.status}`;
    try {
      const body = await response.json();
      code = body?.error?.code ?? code;
      message = body?.error?.message ?? message;
    } catch {
      /* not JSON: keep the status text */
    }
    throw new ApiError(response.status, code, message);
  }
  return response;
}

async function json<T>(path: string, init: RequestInit = {}): Promise<T> {
  return (await send(path, init)).json() as Promise<T>;
}

function post(body: unknown, method = "POST"): RequestInit {
  return { method, body: JSON.stringify(body), headers: { "Content-Type": "application/json" } };
}

const A = "/annotation/v1";

export const api = {
  me: () => json<Me>(`${A}/me`),
  projects: () => json<Project[]>(`${A}/projects`),
  project: (p: string) => json<Project>(`${A}/projects/${p}`),
  createProject: (name: string, settings: Partial<ProjectSettings>) =>
    json<Project>(`${A}/projects`, post({ name, settings })),
  putSettings: (p: string, settings: ProjectSettings) =>
    json<Project>(`${A}/projects/${p}/settings`, post(settings, "PUT")),
  status: (p: string) => json<Status>(`${A}/projects/${p}/status`),
  images: (p: string, limit = 200, offset = 0) =>
    json<{ total: number; images: Image[] }>(`${A}/projects/${p}/images?limit=${limit}&offset=${offset}`),
  rounds: (p: string) => json<Round[]>(`${A}/projects/${p}/rounds`),
  startRound: (p: string) => json<Round>(`${A}/projects/${p}/rounds`, { method: "POST" }),
  closeRound: (id: string) => send(`${A}/rounds/${id}/close`, { method: "POST" }),
  retryRound: (p: string, id: string) => json<Round>(`${A}/projects/${p}/rounds/${id}/retry`, { method: "POST" }),
  roundTasks: (id: string) => json<RoundTask[]>(`${A}/rounds/${id}/tasks`),
  lease: (p: string) => json<Lease>(`${A}/projects/${p}/tasks/lease`, { method: "POST" }),
  submit: (task: Task, rle: unknown) =>
    json<MaskSaved>(`${A}/tasks/${task.task_id}/mask`, {
      method: "POST",
      body: JSON.stringify(rle),
      headers: { "Content-Type": "application/json", "X-Lease-Token": task.lease_token },
    }),
  skip: (task: Task) =>
    send(`${A}/tasks/${task.task_id}/skip`, { method: "POST", headers: { "X-Lease-Token": task.lease_token } }),
  mask: async (imageId: string): Promise<StoredMask | null> => {
    try {
      const response = await send(`${A}/images/${imageId}/mask`);
      const confidence = response.headers.get("X-Mask-Confidence");
      return {
        version: Number((response.headers.get("ETag") ?? "0").replaceAll('"', "")),
        png: await response.blob(),
        machineMade: response.headers.get("X-Mask-Machine-Made") === "true",
        confidence: confidence === null ? null : Number(confidence),
      };
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    }
  },
  putMask: (imageId: string, version: number, rle: unknown) =>
    json<MaskSaved>(`${A}/images/${imageId}/mask`, {
      method: "PUT",
      body: JSON.stringify(rle),
      headers: { "Content-Type": "application/json", "If-Match": `"${version}"` },
    }),
  imageUrl: (imageId: string, preset = "image") =>
    `${A}/images/${imageId}/windowed.png?preset=${encodeURIComponent(preset)}`,
  models: (p: string) => json<ModelVersion[]>(`${A}/projects/${p}/models`),
  autolabel: (p: string) => json<Record<string, unknown>>(`${A}/projects/${p}/autolabel`, post({})),
  exportUrl: (p: string, format: string) => `${A}/projects/${p}/export?format=${format}`,
  predict: (p: string, imageId: string) =>
    json<Prediction>(`/inference/v1/projects/${p}/predict`, post({ image_id: imageId })),
  promote: (p: string, version: number) =>
    json<Record<string, unknown>>(`/trainer/v1/projects/${p}/models/${version}/promote`, { method: "POST" }),
  trainerJobs: (p: string) => json<{ jobs: TrainerJob[] }>(`/trainer/v1/projects/${p}/jobs`),
};

export interface UploadOutcome {
  index: number;
  outcome: "accepted" | "quarantined" | "duplicate" | "refused";
  code: string | null;
  reason: string | null;
}

export interface UploadResult {
  results: UploadOutcome[];
  summary: { accepted: number; duplicate: number; refused: number };
}

/** Point an <img> at an image; with an API key the pixels come through fetch (img tags send no headers). */
export async function showImage(img: HTMLImageElement, imageId: string, preset = "image"): Promise<void> {
  const url = api.imageUrl(imageId, preset);
  if (!hasCredentials()) {
    img.src = url;
    return;
  }
  const blob = await (await send(url)).blob();
  const old = img.src;
  img.src = URL.createObjectURL(blob);
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
}

/** Download an export zip; with an API key it comes through fetch (a plain link sends no headers). */
export async function downloadExport(project: string, format: string): Promise<void> {
  const url = api.exportUrl(project, format);
  const link = document.createElement("a");
  link.download = `${project}-${format}.zip`;
  if (!hasCredentials()) {
    link.href = url;
    link.click();
    return;
  }
  const blob = await (await send(url)).blob();
  link.href = URL.createObjectURL(blob);
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
}

/** Multipart upload to ingest with progress (fetch cannot report upload progress; XHR can). */
export function uploadStudies(
  project: string,
  files: File[],
  progress: (sent: number, total: number) => void,
): Promise<UploadResult> {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const file of files) form.append("files", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/ingest/v1/projects/${project}/instances`);
    for (const [name, value] of Object.entries(credentials())) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => progress(event.loaded, event.total);
    xhr.onerror = () => reject(new ConnectionLost("the upload was interrupted (connection lost?)"));
    xhr.onload = () => {
      let body: { error?: { code: string; message: string } } & Partial<UploadResult> = {};
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* keep empty */
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body as UploadResult);
      else reject(new ApiError(xhr.status, body.error?.code ?? `http-${xhr.status}`, body.error?.message ?? xhr.statusText));
    };
    xhr.send(form);
  });
}

/** A sentence for the user about any failure. */
export function explain(error: unknown): string {
  if (error instanceof ConnectionLost) return `Connection lost: ${error.message}. Nothing was changed on the server.`;
  if (error instanceof ApiError) return `${error.message} (${error.code})`;
  return error instanceof Error ? error.message : String(error);
}
