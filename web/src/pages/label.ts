// The labelling page: the canvas with its toolbar, pre-annotation, submit/skip (task) or save (review).

import { api, ApiError, ConnectionLost, explain, type Project, type Task } from "../api";
import { MaskEditor, type Tool } from "../canvas";
import { banner, clearBanner, h } from "../dom";
import { base64ToBlob, decodeMaskPng, decodeRle, encodeRle } from "../mask";
import { forgetUnsent, keepUnsent, setCurrentLease, unsent } from "../store";

export interface EditorTarget {
  project: Project;
  imageId: string;
  width: number;
  height: number;
  task: Task | null; // a leased task; null: review/correct an image's mask
}

const PRESETS: [string, string][] = [
  ["image", "Image window"],
  ["ct-lung", "CT lung (-600/1500)"],
  ["ct-mediastinum", "CT mediastinum (50/350)"],
  ["ct-soft-tissue", "CT soft tissue (40/400)"],
  ["ct-bone", "CT bone (400/1800)"],
  ["ct-brain", "CT brain (40/80)"],
];

const SHORTCUTS =
  "B brush · E eraser · L lasso · P polygon (double-click/Enter closes) · H pan (or Space/right-drag) · 1–9 class · [ ] size · " +
  "Ctrl+Z undo · Ctrl+Y redo · + − zoom · 0 fit · O toggle mask · Ctrl+Enter submit · Shift+X skip";

export function renderEditor(root: HTMLElement, target: EditorTarget, done: () => void): () => void {
  const { project, imageId, width, height, task } = target;
  const settings = project.settings;
  let baseVersion = 0;
  let saveTimer: number | undefined;
  let busy = false;

  const keep = (problem?: string): boolean => {
    const ok = keepUnsent({
      project: project.name,
      imageId,
      task,
      rle: encodeRle(editor.mask, width, height),
      updatedAt: new Date().toISOString(),
      problem,
    });
    if (!ok) banner("This browser cannot store more unsent masks: submit or discard some first.", "warning");
    return ok;
  };
  const changed = () => {
    window.clearTimeout(saveTimer);
    saveTimer = window.setTimeout(() => keep(), 250);
    pixelsInfo.textContent = `${editor.labelledPixels()} labelled pixels`;
  };
  const editor = new MaskEditor(width, height, settings.classes, changed);

  const toolButtons = new Map<Tool, HTMLButtonElement>();
  const setTool = (tool: Tool) => {
    editor.tool = tool;
    editor.cancelPath();
    for (const [name, button] of toolButtons) button.classList.toggle("active", name === tool);
  };
  const toolButton = (tool: Tool, label: string, key: string) => {
    const button = h("button", { class: "tool", title: `${label} (${key})`, "data-tool": tool, onclick: () => setTool(tool) }, label);
    toolButtons.set(tool, button);
    return button;
  };

  const classButtons = settings.classes.map((c, i) =>
    h(
      "button",
      { class: "class-chip", "data-class": i + 1, title: `${c.name} (${i + 1})`, onclick: () => setLabel(i + 1) },
      h("span", { class: "swatch", style: `background:${c.colour}` }),
      `${i + 1} ${c.name}`,
    ),
  );
  const setLabel = (index: number) => {
    if (index < 1 || index > settings.classes.length) return;
    editor.label = index;
    classButtons.forEach((b, i) => b.classList.toggle("active", i + 1 === index));
    if (editor.tool === "eraser") setTool("brush");
  };

  const sizeInput = h("input", { type: "range", min: 1, max: 80, value: editor.size, "aria-label": "brush size" });
  const sizeLabel = h("span", { class: "muted" }, `${editor.size}px`);
  const setSize = (size: number) => {
    editor.size = Math.min(80, Math.max(1, size));
    sizeInput.value = String(editor.size);
    sizeLabel.textContent = `${editor.size}px`;
  };
  sizeInput.addEventListener("input", () => setSize(Number(sizeInput.value)));

  let opacity = 0.5;
  const opacityInput = h("input", { type: "range", min: 0, max: 100, value: 50, "aria-label": "mask opacity" });
  opacityInput.addEventListener("input", () => {
    opacity = Number(opacityInput.value) / 100;
    editor.setOpacity(opacity);
  });
  editor.setOpacity(opacity);

  const windowSelect = h(
    "select",
    { "aria-label": "window preset" },
    ...PRESETS.map(([value, label]) => h("option", { value, selected: value === settings.window }, label)),
  );
  windowSelect.addEventListener("change", () => void editor.setImage(imageId, windowSelect.value).catch((e) => banner(explain(e), "error")));

  const pixelsInfo = h("span", { class: "muted" }, "");
  const leaseInfo = h("span", { class: "lease", "data-testid": "lease" }, "");
  const modelInfo = h("span", { class: "muted" }, "");

  const preAnnotate = async (quiet: boolean) => {
    try {
      const prediction = await api.predict(project.name, imageId);
      const values = await decodeMaskPng(base64ToBlob(prediction.mask_png_base64, "image/png"), width, height);
      editor.load(values);
      changed();
      modelInfo.textContent = `pre-annotated by model v${prediction.version} (confidence ${prediction.confidence.toFixed(2)}): correct it`;
    } catch (error) {
      if (error instanceof ApiError && error.code === "no-model") modelInfo.textContent = "no model yet: label from scratch";
      else if (error instanceof ApiError && error.status === 404 && error.code === "not-found")
        modelInfo.textContent = "pre-annotation not available (no inference service)";
      else if (!quiet) banner(`Pre-annotation failed: ${explain(error)}`, "error");
      else modelInfo.textContent = "pre-annotation not available";
    }
  };

  const saveAsNewVersion = async () => {
    const current = await api.mask(imageId);
    const saved = await api.putMask(imageId, current?.version ?? 0, encodeRle(editor.mask, width, height));
    forgetUnsent(imageId);
    if (task) setCurrentLease(project.name, null);
    banner(`Saved your mask as version ${saved.version} of this image.`, "notice");
    done();
  };

  const leaseLost = (error: ApiError) => {
    keep(error.code);
    const text =
      error.code === "lease-expired"
        ? "Your lease on this task expired before the mask was saved (the task may go to someone else). "
        : error.code === "task-closed"
          ? "This task was closed meanwhile (submitted, skipped or its round ended). "
          : "This task is no longer leased to you. ";
    banner(text + "Your mask is kept in this browser until it is saved.", "error", [
      h("button", { "data-action": "save-anyway", onclick: () => void saveAsNewVersion().catch((e) => banner(explain(e), "error")) }, "Save it as a new mask version"),
      h("button", { class: "link", onclick: () => { forgetUnsent(imageId); setCurrentLease(project.name, null); done(); } }, "Discard my mask"),
    ]);
  };

  const submit = async () => {
    if (busy) return;
    busy = true;
    submitButton.disabled = true;
    keep();
    const rle = encodeRle(editor.mask, width, height);
    try {
      if (task) {
        const saved = await api.submit(task, rle);
        forgetUnsent(imageId);
        setCurrentLease(project.name, null);
        banner(
          `Submitted: mask version ${saved.version}.${saved.round_completed ? " The round is complete: the committee trains now." : ""}`,
          "notice",
        );
      } else {
        const saved = await api.putMask(imageId, baseVersion, rle);
        forgetUnsent(imageId);
        banner(`Saved mask version ${saved.version}.`, "notice");
      }
      done();
    } catch (error) {
      if (error instanceof ConnectionLost) {
        keep("connection-lost");
        banner("Connection lost while saving. Your mask is kept in this browser: press Submit again when the connection is back.", "error");
      } else if (error instanceof ApiError && ["lease-expired", "not-your-lease", "task-closed"].includes(error.code)) {
        leaseLost(error);
      } else if (error instanceof ApiError && error.code === "stale-version") {
        keep("stale-version");
        banner("Someone saved a newer mask of this image meanwhile. Your mask is kept in this browser.", "error", [
          h("button", { onclick: () => void saveAsNewVersion().catch((e) => banner(explain(e), "error")) }, "Save mine as the newest version"),
        ]);
      } else {
        keep("refused");
        banner(`The mask was not saved: ${explain(error)}. It is kept in this browser.`, "error");
      }
    } finally {
      busy = false;
      submitButton.disabled = false;
    }
  };

  const skip = async () => {
    if (!task) return done();
    try {
      await api.skip(task);
      forgetUnsent(imageId);
      setCurrentLease(project.name, null);
      banner("Task skipped.", "notice");
      done();
    } catch (error) {
      banner(`Could not skip: ${explain(error)}`, "error");
    }
  };

  const submitButton = h("button", { class: "primary", "data-action": "submit", onclick: () => void submit() }, task ? "Submit" : "Save");

  const toolbar = h(
    "div",
    { class: "toolbar" },
    h("div", { class: "group" }, toolButton("brush", "Brush", "B"), toolButton("eraser", "Eraser", "E"), toolButton("lasso", "Lasso", "L"), toolButton("polygon", "Polygon", "P"), toolButton("pan", "Pan", "H")),
    h("label", { class: "group" }, "Size ", sizeInput, sizeLabel),
    h("div", { class: "group classes" }, ...classButtons),
    h("label", { class: "group" }, "Mask ", opacityInput),
    h("label", { class: "group" }, windowSelect),
    h(
      "div",
      { class: "group" },
      h("button", { title: "Zoom in (+)", onclick: () => editor.zoom(1.25) }, "+"),
      h("button", { title: "Zoom out (−)", onclick: () => editor.zoom(0.8) }, "−"),
      h("button", { title: "Fit (0)", onclick: () => editor.fit() }, "Fit"),
      h("button", { title: "Undo (Ctrl+Z)", "data-action": "undo", onclick: () => editor.undo() }, "Undo"),
      h("button", { title: "Redo (Ctrl+Y)", onclick: () => editor.redo() }, "Redo"),
      h("button", { title: "Clear the mask", onclick: () => editor.clear() }, "Clear"),
    ),
    h(
      "div",
      { class: "group" },
      h("button", { "data-action": "preannotate", onclick: () => void preAnnotate(false) }, "Pre-annotate"),
      task ? h("button", { "data-action": "skip", onclick: () => void skip() }, "Skip") : null,
      submitButton,
    ),
  );

  root.replaceChildren(
    h(
      "section",
      { class: "labelling" },
      h("div", { class: "label-head" }, h("h2", {}, task ? `Round ${task.round_number} · task` : "Review"), h("code", { class: "muted" }, imageId), leaseInfo, pixelsInfo, modelInfo),
      toolbar,
      editor.element,
      h("p", { class: "muted shortcuts" }, SHORTCUTS),
    ),
  );

  const keydown = (e: KeyboardEvent) => {
    const target = e.target as HTMLElement;
    if (target.tagName === "INPUT" || target.tagName === "SELECT" || target.tagName === "TEXTAREA") return;
    const ctrl = e.ctrlKey || e.metaKey;
    if (ctrl && e.key === "Enter") return void (e.preventDefault(), submit());
    if (ctrl && (e.key === "z" || e.key === "Z")) return void (e.preventDefault(), e.shiftKey ? editor.redo() : editor.undo());
    if (ctrl && (e.key === "y" || e.key === "Y")) return void (e.preventDefault(), editor.redo());
    if (ctrl) return;
    if (e.shiftKey && (e.key === "X" || e.key === "x")) return void skip();
    const tools: Record<string, Tool> = { b: "brush", e: "eraser", l: "lasso", p: "polygon", h: "pan" };
    if (tools[e.key]) return setTool(tools[e.key]);
    if (/^[1-9]$/.test(e.key)) return setLabel(Number(e.key));
    if (e.key === "[") return setSize(editor.size - (editor.size > 10 ? 4 : 1));
    if (e.key === "]") return setSize(editor.size + (editor.size >= 10 ? 4 : 1));
    if (e.key === "+" || e.key === "=") return editor.zoom(1.25);
    if (e.key === "-") return editor.zoom(0.8);
    if (e.key === "0") return editor.fit();
    if (e.key === "o") {
      const visible = opacityInput.value !== "0";
      opacityInput.value = visible ? "0" : String(Math.round(opacity * 100) || 50);
      return editor.setOpacity(visible ? 0 : opacity || 0.5);
    }
    if (e.key === "Enter") return editor.closePolygon();
    if (e.key === "Escape") return editor.cancelPath();
  };
  window.addEventListener("keydown", keydown);

  let countdown: number | undefined;
  if (task) {
    const tick = () => {
      const left = (Date.parse(task.lease_expires_at) - Date.now()) / 1000;
      leaseInfo.textContent = left > 0 ? `lease: ${Math.floor(left / 60)}:${String(Math.floor(left % 60)).padStart(2, "0")} left` : "lease expired";
      leaseInfo.classList.toggle("expired", left <= 0);
    };
    tick();
    countdown = window.setInterval(tick, 1000);
  }

  setTool("brush");
  setLabel(1);
  clearBanner();
  void (async () => {
    try {
      await editor.setImage(imageId, windowSelect.value);
    } catch (error) {
      banner(explain(error), "error");
    }
    editor.fit();
    const kept = unsent(imageId);
    const stored = await api.mask(imageId).catch(() => null);
    baseVersion = stored?.version ?? 0;
    if (kept) {
      editor.load(decodeRle(kept.rle), false);
      banner("Restored your unsent mask of this image from this browser.", "warning");
    } else if (stored) {
      editor.load(await decodeMaskPng(stored.png, width, height), false);
      modelInfo.textContent = stored.machineMade
        ? `machine-made mask v${stored.version}${stored.confidence !== null ? ` (confidence ${stored.confidence.toFixed(2)})` : ""}: correct it`
        : `mask v${stored.version}`;
    } else if (task) {
      await preAnnotate(true);
    }
    pixelsInfo.textContent = `${editor.labelledPixels()} labelled pixels`;
    editor.element.focus();
  })();

  return () => {
    window.removeEventListener("keydown", keydown);
    window.clearInterval(countdown);
    window.clearTimeout(saveTimer);
  };
}
