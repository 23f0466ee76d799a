// medal's web UI: hash routes over the public REST APIs of the services on this origin.

import { api, apiKey, explain, setApiKey } from "./api";
import { completeSignIn, currentRights, loadRights, may, signIn, signInConfig, signOut } from "./auth";
import { banner, h } from "./dom";
import { renderEditor } from "./pages/label";
import { renderModel } from "./pages/model";
import { renderProject } from "./pages/project";
import { renderProjects } from "./pages/projects";
import { renderQueue } from "./pages/queue";
import { renderReview } from "./pages/review";
import { currentLease, setCurrentLease, unsent } from "./store";

const app = document.getElementById("app")!;
let cleanup: (() => void) | null = null;

function nav(project: string | null): void {
  const links: [string, string][] = [["#/", "Projects"]];
  if (project) {
    links.push([`#/p/${project}`, project], [`#/p/${project}/queue`, "Queue"]);
    if (may("review", project)) links.push([`#/p/${project}/review`, "Review"]);
    links.push([`#/p/${project}/model`, "Model"]);
  }
  const current = location.hash || "#/";
  const me = currentRights();
  const role = !me || me.kind === "local" ? null : me.platform_admin ? "platform admin" : project ? me.projects[project]?.role : null;
  const who = h(
    "span",
    { class: "muted", "data-testid": "me", title: "Signed in as (the author of your leases and masks)" },
    me ? (me.kind === "local" ? "local user" : me.name || me.id) : "not signed in",
    role ? ` (${role})` : "",
  );
  document.getElementById("nav")!.replaceChildren(
    ...links.map(([href, label]) => h("a", { href, class: current === href ? "active" : "" }, label)),
    who,
    me && me.kind !== "local" ? h("button", { class: "link", "data-action": "sign-out", onclick: () => { signOut(); void route(); } }, "Sign out") : "",
    h("button", { class: "link", title: "API key (when the server requires one)", onclick: () => askKey() }, apiKey() ? "API key ✓" : "API key"),
  );
}

/** Nobody is signed in and the server needs it: sign in with the provider, or use an API key. */
async function renderSignIn(): Promise<void> {
  const config = await signInConfig();
  app.replaceChildren(
    h(
      "section",
      { class: "card", "data-testid": "sign-in" },
      h("h1", {}, "Sign in to medal"),
      config.enabled
        ? h("p", {}, h("button", { class: "primary", "data-action": "sign-in", onclick: () => void signIn().catch((e) => banner(explain(e), "error")) }, "Sign in with your organisation"))
        : h("p", { class: "muted" }, "This server takes API keys only (no identity provider is configured)."),
      h("p", {}, h("button", { "data-action": "use-api-key", onclick: () => askKey() }, "Use an API key instead")),
    ),
  );
}

function askKey(): void {
  const key = prompt("API key (X-API-Key); empty for none", apiKey());
  if (key !== null) {
    setApiKey(key.trim());
    void route();
  }
}

async function openTask(project: string): Promise<void> {
  const task = currentLease(project);
  if (!task) {
    location.hash = `#/p/${project}/queue`;
    return;
  }
  const info = await api.project(project);
  cleanup = renderEditor(app, { project: info, imageId: task.image_id, width: task.width, height: task.height, task }, () => {
    location.hash = `#/p/${project}/queue`;
  });
}

async function openImage(project: string, imageId: string): Promise<void> {
  const info = await api.project(project);
  let image: { width: number; height: number } | undefined;
  for (let offset = 0; !image; offset += 1000) {
    const page = await api.images(project, 1000, offset);
    image = page.images.find((i) => i.id === imageId);
    if (offset + 1000 >= page.total) break;
  }
  if (!image) throw new Error(`image ${imageId} is not in project ${project}`);
  const kept = unsent(imageId);
  const task = kept?.task && Date.parse(kept.task.lease_expires_at) > Date.now() ? kept.task : null;
  if (task) setCurrentLease(project, task);
  cleanup = renderEditor(app, { project: info, imageId, width: image.width, height: image.height, task }, () => {
    location.hash = task ? `#/p/${project}/queue` : `#/p/${project}/review`;
  });
}

async function route(): Promise<void> {
  cleanup?.();
  cleanup = null;
  const parts = (location.hash.replace(/^#\/?/, "") || "").split("/").filter(Boolean);
  const project = parts[0] === "p" ? decodeURIComponent(parts[1] ?? "") : null;
  app.setAttribute("aria-busy", "true");
  try {
    const me = await loadRights();
    nav(project);
    if (!me) {
      await renderSignIn();
      return;
    }
    if (!project) await renderProjects(app);
    else if (parts.length === 2) await renderProject(app, project);
    else if (parts[2] === "queue") await renderQueue(app, project);
    else if (parts[2] === "task") await openTask(project);
    else if (parts[2] === "image" && parts[3]) await openImage(project, parts[3]);
    else if (parts[2] === "review") await renderReview(app, project);
    else if (parts[2] === "model") await renderModel(app, project);
    else app.replaceChildren(h("p", {}, "Page not found. ", h("a", { href: "#/" }, "Projects")));
  } catch (error) {
    app.replaceChildren(h("section", { class: "card" }, h("h2", {}, "This page could not be loaded"), h("p", { "data-testid": "page-error" }, explain(error)), h("button", { onclick: () => void route() }, "Retry")));
  } finally {
    app.setAttribute("aria-busy", "false");
  }
}

async function start(): Promise<void> {
  try {
    await completeSignIn(); // back from the identity provider with ?code=…: trade it for a token first
  } catch (error) {
    banner(explain(error), "error");
  }
  await route();
}

window.addEventListener("hashchange", () => void route());
window.addEventListener("offline", () => banner("You are offline. Unsent masks stay in this browser until they are saved.", "warning"));
window.addEventListener("online", () => banner("Back online.", "notice"));
void start();
