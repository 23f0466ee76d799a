// The annotator's queue: who I am (the signed-in caller), the task I hold, unsent masks kept in this
// browser, the open round.

import { api, explain, type Lease } from "../api";
import { banner, fmtDate, h, thumb } from "../dom";
import { allUnsent, currentLease, forgetUnsent, setCurrentLease } from "../store";

const WAITING: Record<string, string> = {
  "not-started": "Labelling has not started: start the cold-start round on the project page.",
  "waiting-for-model": "Nothing to label right now: the committee is training and will choose the next images.",
  done: "Labelling is done for this project (target reached or budget spent).",
};

function whyNoTask(lease: Lease): string {
  if (lease.status === "training-failed" && lease.failure) {
    const f = lease.failure;
    return `Training of round ${f.round_number} failed (${f.code}): ${f.reason} Fix it, then retry on the Model page.`;
  }
  return WAITING[lease.status] ?? lease.status;
}

export async function renderQueue(root: HTMLElement, project: string): Promise<void> {
  const rounds = await api.rounds(project);
  const open = rounds.filter((r) => r.state === "open");
  const tasks = (await Promise.all(open.map((r) => api.roundTasks(r.id)))).flat();
  const held = currentLease(project);
  const stillMine = held && Date.parse(held.lease_expires_at) > Date.now() && tasks.some((t) => t.task_id === held.task_id && t.state === "leased");
  const me = await api.me();

  const next = async () => {
    try {
      const lease = await api.lease(project);
      if (!lease.task) return banner(whyNoTask(lease), "warning");
      setCurrentLease(project, lease.task);
      location.hash = `#/p/${project}/task`;
    } catch (error) {
      banner(`No task leased: ${explain(error)}`, "error");
    }
  };

  const unsentMasks = allUnsent(project);
  const remaining = tasks.filter((t) => t.state === "open" || t.state === "leased").length;
  root.replaceChildren(
    ...[
    h(
      "section",
      {},
      h("h1", {}, `${project} · my queue`),
      h(
        "div",
        { class: "actions" },
        h("span", { "data-testid": "signed-in-as" }, "Signed in as ", h("strong", {}, me.id)),
        stillMine
          ? h("a", { class: "button primary", href: `#/p/${project}/task`, "data-action": "continue" }, "Continue my task")
          : h("button", { class: "primary", "data-action": "next", onclick: () => void next() }, "Label next image"),
        h("span", { class: "muted", "data-testid": "remaining" }, `${remaining} task(s) left in the open round`),
      ),
    ),
    unsentMasks.length
      ? h(
          "section",
          { class: "card warning", "data-testid": "unsent" },
          h("h2", {}, "Unsent masks kept in this browser"),
          h(
            "ul",
            {},
            ...unsentMasks.map((m) =>
              h(
                "li",
                {},
                h("code", {}, m.imageId.slice(0, 8)),
                ` ${fmtDate(m.updatedAt)} ${m.problem ? `(${m.problem})` : "(draft)"} `,
                h("a", { class: "button", href: `#/p/${project}/image/${m.imageId}` }, "Open and save"),
                h("button", { class: "link", onclick: () => { if (confirm("Discard this mask?")) { forgetUnsent(m.imageId); void renderQueue(root, project); } } }, "discard"),
              ),
            ),
          ),
        )
      : null,
    h(
      "section",
      { class: "card" },
      h("h2", {}, open.length ? `Open round ${open.map((r) => r.number).join(", ")}` : "No open round"),
      h(
        "table",
        { class: "grid compact", "data-testid": "queue" },
        h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "Image"), h("th", {}, "State"), h("th", {}, "Held / labelled by"), h("th", {}, "Until"))),
        h(
          "tbody",
          {},
          ...tasks.map((t) =>
            h(
              "tr",
              { "data-task": t.task_id, "data-state": t.state, class: held?.task_id === t.task_id ? "mine" : "" },
              h("td", {}, t.position + 1),
              h("td", {}, thumb(t.image_id), h("code", {}, t.image_id.slice(0, 8))),
              h("td", {}, h("span", { class: `state ${t.state}` }, t.state)),
              h("td", {}, t.state === "leased" || t.state === "submitted" ? t.lease_owner ?? "" : ""),
              h("td", {}, t.state === "leased" ? fmtDate(t.lease_expires_at) : t.state === "submitted" ? fmtDate(t.submitted_at) : ""),
            ),
          ),
        ),
      ),
    ),
    ].filter((node): node is HTMLElement => node !== null),
  );
}
