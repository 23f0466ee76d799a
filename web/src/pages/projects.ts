// Projects: the list, and a form that creates one with its classes and settings.

import { api, explain, type LabelClass } from "../api";
import { may } from "../auth";
import { banner, fmtDate, h } from "../dom";

const DEFAULT_COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45"];

export async function renderProjects(root: HTMLElement): Promise<void> {
  const projects = await api.projects();
  const list = projects.length
    ? h(
        "table",
        { class: "grid", "data-testid": "projects" },
        h("thead", {}, h("tr", {}, h("th", {}, "Project"), h("th", {}, "Images"), h("th", {}, "Classes"), h("th", {}, "Strategy"), h("th", {}, "Created"))),
        h(
          "tbody",
          {},
          ...projects.map((p) =>
            h(
              "tr",
              {},
              h("td", {}, h("a", { href: `#/p/${p.name}`, "data-project": p.name }, p.name)),
              h("td", {}, p.images),
              h("td", {}, ...p.settings.classes.map((c) => h("span", { class: "class-tag" }, h("span", { class: "swatch", style: `background:${c.colour}` }), c.name))),
              h("td", {}, `${p.settings.strategy} (K=${p.settings.candidates}, k=${p.settings.batch})`),
              h("td", {}, fmtDate(p.created_at)),
            ),
          ),
        ),
      )
    : h("p", { class: "muted" }, may("create-project") ? "No projects yet: create one below, then upload DICOM studies to it." : "You have no role in any project yet: ask a project admin.");
  root.replaceChildren(h("section", {}, h("h1", {}, "Projects"), list), may("create-project") ? createForm() : "");
}

function classRow(c: LabelClass): HTMLElement {
  const row = h(
    "div",
    { class: "class-row" },
    h("input", { name: "class-name", value: c.name, placeholder: "class name", required: true, maxlength: 64 }),
    h("input", { name: "class-colour", type: "color", value: c.colour }),
    h("button", { type: "button", class: "link", onclick: () => row.remove() }, "remove"),
  );
  return row;
}

function createForm(): HTMLElement {
  const classes = h("div", { class: "classes-edit" }, classRow({ name: "ground-glass", colour: "#3cb44b" }), classRow({ name: "consolidation", colour: "#e6194b" }));
  const field = (label: string, input: HTMLElement, hint = "") => h("label", { class: "field" }, h("span", {}, label), input, hint ? h("small", { class: "muted" }, hint) : null);
  const number = (name: string, value: number, min: number, step = 1) => h("input", { name, type: "number", value, min, step });
  const form = h(
    "form",
    { class: "card", "data-testid": "create-project" },
    h("h2", {}, "New project"),
    field("Name", h("input", { name: "name", required: true, pattern: "[a-z0-9][a-z0-9-]{0,62}", placeholder: "covid-ct" }), "lower-case letters, digits and -"),
    h("div", { class: "field" }, h("span", {}, "Label classes (0 is background)"), classes, h("button", { type: "button", onclick: () => classes.append(classRow({ name: "", colour: DEFAULT_COLOURS[classes.children.length % DEFAULT_COLOURS.length] })) }, "Add class")),
    h(
      "div",
      { class: "row" },
      field("Window", h("select", { name: "window" }, ...["image", "ct-lung", "ct-mediastinum", "ct-soft-tissue", "ct-bone", "ct-brain"].map((w) => h("option", { value: w }, w)))),
      field("Strategy", h("select", { name: "strategy" }, ...["suggestive", "suggestive-coverage", "random", "uncertainty", "entropy", "bald", "coreset"].map((s) => h("option", { value: s }, s)))),
      field("Candidates K", number("candidates", 16, 1)),
      field("Batch k", number("batch", 8, 1)),
      field("Initial labels", number("initial_labels", 8, 1)),
      field("Committee M", number("committee", 4, 1)),
    ),
    h(
      "div",
      { class: "row" },
      field("Target Dice", number("target_dice", 0.9, 0.01, 0.01)),
      field("Label budget", h("input", { name: "label_budget", type: "number", min: 1, placeholder: "none" })),
      field("Lease (s)", number("lease_seconds", 900, 5)),
      field("Keep annotators busy", h("input", { name: "keep_annotators_busy", type: "checkbox", checked: true })),
    ),
    h("button", { class: "primary", type: "submit" }, "Create project"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const names = data.getAll("class-name").map(String);
    const colours = data.getAll("class-colour").map(String);
    const budget = String(data.get("label_budget") ?? "");
    const settings = {
      classes: names.map((name, i) => ({ name, colour: colours[i] })),
      window: String(data.get("window")),
      strategy: String(data.get("strategy")),
      candidates: Number(data.get("candidates")),
      batch: Number(data.get("batch")),
      initial_labels: Number(data.get("initial_labels")),
      committee: Number(data.get("committee")),
      target_dice: Number(data.get("target_dice")),
      label_budget: budget ? Number(budget) : null,
      lease_seconds: Number(data.get("lease_seconds")),
      keep_annotators_busy: data.get("keep_annotators_busy") !== null,
    };
    const name = String(data.get("name"));
    try {
      await api.createProject(name, settings);
      banner(`Project ${name} created: upload studies to it.`, "notice");
      location.hash = `#/p/${name}`;
    } catch (error) {
      banner(`The project was not created: ${explain(error)}`, "error");
    }
  });
  return form;
}
