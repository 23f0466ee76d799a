// One project: upload studies, its rounds (tasks, who holds them, progress), settings, exports.

import { api, downloadExport, explain, uploadStudies, type Project, type Round } from "../api";
import { may } from "../auth";
import { banner, fmtDate, h } from "../dom";

export async function renderProject(root: HTMLElement, name: string): Promise<void> {
  const [project, status] = await Promise.all([api.project(name), api.status(name)]);
  const open = status.rounds.find((r) => r.state === "open");
  const actions = h(
    "div",
    { class: "actions" },
    h("a", { class: "button primary", href: `#/p/${name}/queue` }, "Label (my queue)"),
    may("review", name) ? h("a", { class: "button", href: `#/p/${name}/review` }, "Review") : null,
    h("a", { class: "button", href: `#/p/${name}/model` }, "Model"),
    status.rounds.length === 0 && may("rounds", name)
      ? h("button", { "data-action": "start", onclick: () => void start(name) }, "Start labelling (cold-start round)")
      : null,
    open && may("rounds", name) ? h("button", { "data-action": "close-round", onclick: () => void closeRound(name, open) }, `End round ${open.number} and train`) : null,
  );
  root.replaceChildren(
    h(
      "section",
      {},
      h("h1", {}, project.name),
      h(
        "p",
        { class: "stats" },
        stat("images", status.images),
        stat("labelled", status.labels),
        stat("held out", status.held_out),
        stat("rounds", status.rounds.length),
        stat("models", status.models.length),
        status.done ? h("strong", { class: "ok" }, "target reached / budget spent") : null,
      ),
      actions,
    ),
    may("ingest", name) ? uploadCard(name) : "",
    await roundsCard(status.rounds),
    may("settings", name) ? settingsCard(project) : "",
    !may("export", name)
      ? ""
      : h(
      "section",
      { class: "card", "data-testid": "export" },
      h("h2", {}, "Export"),
      ...["png", "coco", "nifti", "dicom-seg"].map((f) =>
        h(
          "button",
          {
            class: "button",
            onclick: () => {
              downloadExport(name, f).catch((error: Error) => banner(`export failed: ${error.message}`, "error"));
            },
          },
          f,
        ),
      ),
    ),
  );
}

function stat(label: string, value: number): HTMLElement {
  return h("span", { class: "stat" }, h("b", {}, value), ` ${label}`);
}

async function start(name: string): Promise<void> {
  try {
    const round = await api.startRound(name);
    banner(`Round ${round.number} started with ${round.tasks} tasks.`, "notice");
  } catch (error) {
    banner(`Labelling did not start: ${explain(error)}`, "error");
  }
  await renderProject(document.getElementById("app")!, name);
}

async function closeRound(name: string, round: Round): Promise<void> {
  if (!confirm(`End round ${round.number} now? Unlabelled tasks are skipped and the committee trains on all labels.`)) return;
  try {
    await api.closeRound(round.id);
    banner(`Round ${round.number} ended: training starts.`, "notice");
  } catch (error) {
    banner(`The round was not ended: ${explain(error)}`, "error");
  }
  await renderProject(document.getElementById("app")!, name);
}

function uploadCard(name: string): HTMLElement {
  const input = h("input", { type: "file", multiple: true, name: "studies", accept: ".dcm,.zip,application/dicom,application/zip,*/*" });
  const bar = h("progress", { max: 100, value: 0, hidden: true });
  const results = h("ul", { class: "outcomes", "data-testid": "upload-outcomes" });
  const form = h(
    "form",
    { class: "card", "data-testid": "upload" },
    h("h2", {}, "Upload studies"),
    h("p", { class: "muted" }, "DICOM files, several at once, or zips of them. Each instance is de-identified on arrival."),
    input,
    h("button", { class: "primary", type: "submit" }, "Upload"),
    bar,
    results,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const files = Array.from(input.files ?? []);
    if (!files.length) return banner("Choose DICOM files or zips first.", "warning");
    bar.hidden = false;
    bar.value = 0;
    results.replaceChildren();
    try {
      const answer = await uploadStudies(name, files, (sent, total) => (bar.value = total ? (100 * sent) / total : 0));
      bar.value = 100;
      const zips = files.some((f) => f.name.toLowerCase().endsWith(".zip"));
      for (const outcome of answer.results) {
        const file = !zips && files[outcome.index] ? files[outcome.index].name : `instance ${outcome.index + 1}`;
        const text =
          outcome.outcome === "refused"
            ? `${file}: refused — ${outcome.code === "not_dicom" ? "not a DICOM file" : outcome.reason ?? outcome.code}`
            : `${file}: ${outcome.outcome}${outcome.reason ? ` (${outcome.reason})` : ""}`;
        results.append(h("li", { class: outcome.outcome }, text));
      }
      const { accepted, duplicate, refused } = answer.summary;
      banner(`Upload finished: ${accepted} accepted, ${duplicate} duplicate, ${refused} refused.`, refused ? "warning" : "notice");
    } catch (error) {
      bar.hidden = true;
      banner(`Upload failed: ${explain(error)}`, "error");
    }
  });
  return form;
}

async function roundsCard(rounds: Round[]): Promise<HTMLElement> {
  if (!rounds.length) return h("section", { class: "card" }, h("h2", {}, "Rounds"), h("p", { class: "muted" }, "Not started."));
  const latest = [...rounds].reverse();
  const taskLists = await Promise.all(latest.slice(0, 3).map((r) => api.roundTasks(r.id).catch(() => [])));
  return h(
    "section",
    { class: "card" },
    h("h2", {}, "Rounds"),
    ...latest.map((round, i) =>
      h(
        "div",
        { class: "round", "data-round": round.number },
        h(
          "h3",
          {},
          `Round ${round.number} · ${round.state} · ${round.source} · ${round.submitted}/${round.tasks} labelled `,
          h("progress", { max: round.tasks || 1, value: round.submitted }),
        ),
        i < 3 && taskLists[i].length
          ? h(
              "table",
              { class: "grid compact" },
              h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "Image"), h("th", {}, "State"), h("th", {}, "Held / labelled by"), h("th", {}, "Lease until / submitted"))),
              h(
                "tbody",
                {},
                ...taskLists[i].map((t) =>
                  h(
                    "tr",
                    { "data-task": t.task_id, "data-state": t.state },
                    h("td", {}, t.position + 1),
                    h("td", {}, h("code", {}, t.image_id.slice(0, 8))),
                    h("td", {}, h("span", { class: `state ${t.state}` }, t.state)),
                    h("td", {}, t.state === "leased" || t.state === "submitted" ? t.lease_owner ?? "" : ""),
                    h("td", {}, t.state === "submitted" ? fmtDate(t.submitted_at) : t.state === "leased" ? fmtDate(t.lease_expires_at) : ""),
                  ),
                ),
              ),
            )
          : null,
      ),
    ),
  );
}

function settingsCard(project: Project): HTMLElement {
  const text = h("textarea", { rows: 14, spellcheck: "false", "aria-label": "settings JSON" }, JSON.stringify(project.settings, null, 2));
  const save = async () => {
    try {
      await api.putSettings(project.name, JSON.parse(text.value));
      banner("Settings saved.", "notice");
    } catch (error) {
      banner(error instanceof SyntaxError ? `Settings are not valid JSON: ${error.message}` : `Settings not saved: ${explain(error)}`, "error");
    }
  };
  return h("details", { class: "card" }, h("summary", {}, "Settings"), text, h("button", { onclick: () => void save() }, "Save settings"));
}
