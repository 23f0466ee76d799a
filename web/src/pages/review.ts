// Review: every image with its newest mask (by a person or machine-made), to check and correct.

import { api, type Image } from "../api";
import { h, thumb } from "../dom";
import { hexToRgb } from "../mask";

export async function renderReview(root: HTMLElement, project: string): Promise<void> {
  const [info, page] = await Promise.all([api.project(project), api.images(project, 500)]);
  const palette = [[0, 0, 0], ...info.settings.classes.map((c) => hexToRgb(c.colour))];
  const filter = h(
    "select",
    { "aria-label": "filter" },
    ...[["all", "All images"], ["human", "Labelled by people"], ["machine", "Machine-made (check these)"], ["none", "Unlabelled"]].map(([v, l]) => h("option", { value: v }, l)),
  );
  const grid = h("div", { class: "cards" });
  root.replaceChildren(
    h("section", {}, h("h1", {}, `${project} · review`), h("p", { class: "muted" }, `${page.total} images. Open one to correct its mask; machine-made masks show their confidence.`), filter),
    grid,
  );
  const cards = page.images.map((image) => card(project, image, palette));
  grid.append(...cards.map((c) => c.element));
  filter.addEventListener("change", () => {
    for (const c of cards) c.element.hidden = filter.value !== "all" && c.kind() !== filter.value;
  });
}

function card(project: string, image: Image, palette: number[][]): { element: HTMLElement; kind: () => string } {
  let kind = "none";
  const overlay = h("canvas", { class: "thumb-overlay", width: image.width, height: image.height });
  const caption = h("span", { class: "muted" }, "…");
  const element = h(
    "a",
    { class: "image-card", href: `#/p/${project}/image/${image.id}`, "data-image": image.id },
    h("div", { class: "thumb-wrap" }, thumb(image.id, "full"), overlay),
    h("div", {}, h("code", {}, image.id.slice(0, 8)), " ", image.modality, image.held_out ? " · held out" : ""),
    caption,
  );
  void api.mask(image.id).then(async (mask) => {
    if (!mask) {
      caption.textContent = "unlabelled";
      return;
    }
    kind = mask.machineMade ? "machine" : "human";
    caption.textContent = mask.machineMade
      ? `machine-made v${mask.version}${mask.confidence !== null ? ` · confidence ${mask.confidence.toFixed(2)}` : ""}`
      : `labelled v${mask.version}`;
    const bitmap = await createImageBitmap(mask.png);
    const context = overlay.getContext("2d")!;
    context.drawImage(bitmap, 0, 0);
    const data = context.getImageData(0, 0, image.width, image.height);
    for (let i = 0; i < data.data.length; i += 4) {
      const colour = palette[data.data[i]];
      if (!colour || data.data[i] === 0) data.data[i + 3] = 0;
      else [data.data[i], data.data[i + 1], data.data[i + 2], data.data[i + 3]] = [colour[0], colour[1], colour[2], 140];
    }
    context.putImageData(data, 0, 0);
  });
  return { element, kind: () => kind };
}
