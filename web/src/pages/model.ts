// The model page: versions, the learning curve (quality against labels used), training progress with ETA,
// and stopping advice (the estimated gain of one more round against its labelling cost).

import { api, ApiError, explain, type ModelVersion, type Project, type Round, type Status, type TrainerJob } from "../api";
import { may } from "../auth";
import { banner, fmtDate, fmtSeconds, h, svg } from "../dom";

export async function renderModel(root: HTMLElement, project: string): Promise<void> {
  const [info, status] = await Promise.all([api.project(project), api.status(project)]);
  let jobs: TrainerJob[] | null = null;
  let trainerNote = "";
  try {
    jobs = (await api.trainerJobs(project)).jobs;
  } catch (error) {
    trainerNote = error instanceof ApiError && error.status === 404 ? "Training progress is not available (no trainer service in this process)." : "Training progress is not available right now.";
  }
  const models = status.models;
  const failed = status.rounds.filter((r) => r.state === "training-failed" && r.failure);
  root.replaceChildren(
    h("section", {}, h("h1", {}, `${project} · model`)),
    ...failed.map((r) => failedRound(project, r)),
    h("section", { class: "card", "data-testid": "advice" }, h("h2", {}, "Stopping advice"), advice(info, models, status.labels, status.images - status.held_out)),
    h("section", { class: "card" }, h("h2", {}, "Learning curve"), curve(models, info.settings.target_dice)),
    h("section", { class: "card", "data-testid": "training" }, h("h2", {}, "Training"), jobs ? training(jobs) : h("p", { class: "muted" }, trainerNote)),
    h("section", { class: "card" }, h("h2", {}, "Versions"), versions(project, models)),
    h("section", { class: "card", "data-testid": "autolabel" }, h("h2", {}, "Auto-label the rest"), autolabel(project, status)),
  );
}

/** A round whose training failed: why, and a button that trains it again on today's labels. */
function failedRound(project: string, round: Round): HTMLElement {
  const failure = round.failure!;
  const retry = async (button: HTMLButtonElement) => {
    button.disabled = true;
    try {
      const again = await api.retryRound(project, round.id);
      banner(`Round ${again.number} is training again (attempt ${again.attempt}) on the labels as they are now.`, "notice");
      await renderModel(document.getElementById("app")!, project);
    } catch (error) {
      button.disabled = false;
      banner(`Training was not retried: ${explain(error)}`, "error");
    }
  };
  const button = h("button", { class: "primary", "data-action": "retry-training" }, "Retry training") as HTMLButtonElement;
  button.addEventListener("click", () => void retry(button));
  return h(
    "section",
    { class: "card warning", "data-testid": "round-failed", "data-round": round.id },
    h("h2", {}, `Training of round ${round.number} failed`),
    h("p", {}, h("strong", {}, failure.code), ` (attempt ${failure.attempt}, ${fmtDate(failure.failed_at)}): `, h("span", { "data-testid": "failure-reason" }, failure.reason)),
    h("p", { class: "muted" }, "Fix the cause (for example correct or re-submit the mask it names), then retry: the round is trained again on today's masks."),
    may("train", project) ? button : h("p", { class: "muted" }, "A project admin can retry it."),
  );
}

function autolabel(project: string, status: Status): HTMLElement {
  const jobs = status.autolabel.map((job) => {
    const done = Number(job.shards_done ?? 0);
    const shards = Number(job.shards ?? 1);
    return h("li", {}, `${job.images} images with model ${String(job.model_version_id).slice(0, 8)}: `, h("progress", { max: shards, value: done }), job.complete ? " done" : ` ${done}/${shards} shards`);
  });
  const run = async () => {
    if (!confirm("Label every unlabelled image with the current model?")) return;
    try {
      await api.autolabel(project);
      banner("Auto-labelling started: machine-made masks appear in Review as they are stored.", "notice");
      await renderModel(document.getElementById("app")!, project);
    } catch (error) {
      banner(`Auto-labelling did not start: ${explain(error)}`, "error");
    }
  };
  return h(
    "div",
    {},
    h("p", { class: "muted" }, "The current model labels every image nobody labelled; check its masks in Review."),
    jobs.length ? h("ul", {}, ...jobs) : null,
    may("train", project)
      ? h("button", { "data-action": "autolabel", onclick: () => void run(), disabled: !status.models.some((m) => m.current) }, "Auto-label with the current model")
      : null,
  );
}

/** Gain per label from the last two versions, extrapolated one round (k labels) ahead. */
function advice(project: Project, models: ModelVersion[], labels: number, pool: number): HTMLElement {
  const s = project.settings;
  const target = s.target_dice;
  const remainingBudget = s.label_budget === null ? pool - labels : Math.min(pool, s.label_budget) - labels;
  if (!models.length) return h("p", {}, `No model yet. Label the cold-start set (${s.initial_labels} images); advice follows the first model.`);
  const last = models[models.length - 1];
  if (last.validation_dice >= target) return h("p", { class: "ok" }, `Stop: model v${last.version} reached the target Dice ${target} (${last.validation_dice.toFixed(3)}). Auto-label the rest and export.`);
  if (remainingBudget <= 0) return h("p", { class: "ok" }, "Stop: the label budget is spent. Auto-label the rest and export.");
  if (models.length < 2) return h("p", {}, `Continue: one model so far (Dice ${last.validation_dice.toFixed(3)} of target ${target}); the gain per round can be estimated after the next one.`);
  const prev = models[models.length - 2];
  const perLabel = (last.validation_dice - prev.validation_dice) / Math.max(1, last.labels - prev.labels);
  const k = Math.min(s.batch, remainingBudget);
  const gain = perLabel * k;
  const roundsToTarget = gain > 0 ? Math.ceil((target - last.validation_dice) / gain) : Infinity;
  const worth = gain >= 0.005;
  return h(
    "div",
    {},
    h("p", { class: worth ? "" : "warning-text" }, worth ? "Continue labelling." : "Consider stopping: one more round is unlikely to help much."),
    h(
      "ul",
      {},
      h("li", {}, `Estimated gain of one more round: ${gain >= 0 ? "+" : ""}${gain.toFixed(3)} Dice (${(perLabel * 100).toFixed(2)} points per label, from v${prev.version} → v${last.version}).`),
      h("li", {}, `Its cost: ${k} images to label (${remainingBudget} left in the budget).`),
      h("li", {}, Number.isFinite(roundsToTarget) ? `At this rate the target ${target} is about ${roundsToTarget} round(s) away.` : `At this rate the target ${target} is not reached.`),
    ),
  );
}

function curve(models: ModelVersion[], target: number): Element {
  if (!models.length) return h("p", { class: "muted" }, "The curve appears with the first model.");
  const W = 560, H = 260, L = 48, B = 36, T = 12, R = 16;
  const maxLabels = Math.max(...models.map((m) => m.labels), 1);
  const x = (labels: number) => L + (labels / maxLabels) * (W - L - R);
  const y = (dice: number) => T + (1 - dice) * (H - T - B);
  const points = models.map((m) => `${x(m.labels)},${y(m.validation_dice)}`).join(" ");
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  return svg(
    "svg",
    { viewBox: `0 0 ${W} ${H}`, class: "curve", role: "img", "aria-label": "validation Dice against labels used" },
    ...ticks.map((t) => svg("line", { x1: L, x2: W - R, y1: y(t), y2: y(t), class: "gridline" })),
    ...ticks.map((t) => svg("text", { x: L - 6, y: y(t) + 4, "text-anchor": "end" }, t.toFixed(2))),
    svg("line", { x1: L, x2: W - R, y1: y(target), y2: y(target), class: "target" }),
    svg("text", { x: W - R, y: y(target) - 4, "text-anchor": "end", class: "target-label" }, `target ${target}`),
    svg("polyline", { points, class: "line" }),
    ...models.map((m) => svg("circle", { cx: x(m.labels), cy: y(m.validation_dice), r: 4, class: m.current ? "point current" : "point" }, svg("title", {}, `v${m.version}: ${m.labels} labels, Dice ${m.validation_dice.toFixed(3)}`))),
    ...models.map((m) => svg("text", { x: x(m.labels), y: H - B + 16, "text-anchor": "middle" }, String(m.labels))),
    svg("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle" }, "labels used"),
    svg("text", { x: 12, y: T + (H - T - B) / 2, transform: `rotate(-90 12 ${T + (H - T - B) / 2})`, "text-anchor": "middle" }, "validation Dice"),
  );
}

function training(jobs: TrainerJob[]): HTMLElement {
  if (!jobs.length) return h("p", { class: "muted" }, "No training yet.");
  const latest = Math.max(...jobs.map((j) => j.round_number));
  const current = jobs.filter((j) => j.round_number === latest).sort((a, b) => a.member_index - b.member_index);
  const eta = Math.max(0, ...current.filter((j) => j.state !== "done").map((j) => j.eta_seconds ?? 0));
  const done = current.filter((j) => j.state === "done").length;
  return h(
    "div",
    {},
    h("p", {}, `Round ${latest}: ${done}/${current.length} committee members trained`, done < current.length ? ` · ETA ${fmtSeconds(eta)}` : ""),
    h(
      "table",
      { class: "grid compact" },
      h("thead", {}, h("tr", {}, ...["Member", "State", "Epoch", "Loss", "Val. Dice", "ETA", "Queue"].map((t) => h("th", {}, t)))),
      h(
        "tbody",
        {},
        ...current.map((j) =>
          h(
            "tr",
            {},
            h("td", {}, `${j.member_index + 1}/${j.committee_size}`),
            h("td", {}, h("span", { class: `state ${j.state}` }, j.state), j.error ? ` ${j.error}` : ""),
            h("td", {}, h("progress", { max: j.max_epochs, value: j.epoch ?? 0 }), ` ${j.epoch ?? 0}/${j.max_epochs}`),
            h("td", {}, j.loss?.toFixed(4) ?? "—"),
            h("td", {}, j.validation_dice?.toFixed(3) ?? "—"),
            h("td", {}, j.state === "done" ? "" : fmtSeconds(j.eta_seconds)),
            h("td", {}, j.queue_position ?? ""),
          ),
        ),
      ),
    ),
  );
}

function versions(project: string, models: ModelVersion[]): HTMLElement {
  if (!models.length) return h("p", { class: "muted" }, "No versions yet.");
  const promote = async (version: number) => {
    try {
      await api.promote(project, version);
      banner(`Model v${version} is now current (pre-annotation and auto-labelling use it).`, "notice");
      window.setTimeout(() => void renderModel(document.getElementById("app")!, project), 800);
    } catch (error) {
      banner(error instanceof ApiError && error.status === 404 && error.code === "not-found" ? "Promotion is not available (no trainer service in this process)." : `Not promoted: ${explain(error)}`, "error");
    }
  };
  return h(
    "table",
    { class: "grid compact" },
    h("thead", {}, h("tr", {}, ...["Version", "Labels", "Validation Dice", "Current", "Trained", ""].map((t) => h("th", {}, t)))),
    h(
      "tbody",
      {},
      ...[...models].reverse().map((m) =>
        h(
          "tr",
          {},
          h("td", {}, `v${m.version}`),
          h("td", {}, m.labels),
          h("td", {}, m.validation_dice.toFixed(3)),
          h("td", {}, m.current ? "✓ current" : ""),
          h("td", {}, fmtDate(m.created_at)),
          h("td", {}, m.current || !may("models", project) ? "" : h("button", { "data-action": "promote", onclick: () => void promote(m.version) }, "Make current")),
        ),
      ),
    ),
  );
}
