// Models: every offered one with its state and what is known of it, and for loaded chat
// models how busy they are (slots, queue, tokens/s, prefix-cache hits); admins load and
// unload them here.

import { errorBox, formatBytes, formatNumber, h } from "../dom.js";

const REFRESH_MS = 2000;
let timer = null;

export function dispose() {
  clearInterval(timer);
  timer = null;
}

export async function render(context) {
  const { t } = context;
  const table = h("div", { class: "card" });
  const problem = h("div");
  const update = async () => {
    try {
      table.replaceChildren(await modelTable(context, update));
      problem.replaceChildren();
    } catch (error) {
      problem.replaceChildren(errorBox(error));
    }
  };
  await update();
  dispose();
  timer = setInterval(update, REFRESH_MS);
  return h("div", {}, h("h1", {}, t("page_models")), problem, table);
}

async function modelTable(context, update) {
  const { api, t, caller } = context;
  const [{ data }, health] = await Promise.all([
    api.get("/v1/models"),
    fetch("/health", { cache: "no-store" }).then((response) => response.json()),
  ]);
  const engines = health.models || {};
  const head = ["model", "capabilities", "state", "precision", "size", "context", "slots_busy",
    "queue", "tokens_per_second", "prefix_hits", "kv_cache", ""];
  return h("table", { id: "models" },
    h("thead", {}, h("tr", {}, head.map((name) => h("th", {}, name ? t(`column_${name}`) : "")))),
    h("tbody", {}, data.map((model) => {
      const stats = engines[model.id];
      const chat = (model.capabilities || []).includes("completions");
      return h("tr", { "data-model": model.id },
        h("td", {}, model.id, model.pinned ? h("span", { class: "badge" }, t("pinned")) : ""),
        h("td", {}, (model.capabilities || []).join(", ")),
        h("td", { class: `state state-${model.state || "loaded"}` }, t(`state_${model.state || "loaded"}`)),
        h("td", {}, model.precision || "—"),
        h("td", { class: "num" }, formatBytes(model.size_bytes)),
        h("td", { class: "num" }, formatNumber(model.context_length)),
        h("td", { class: "num" }, stats ? `${stats.running_requests} / ${stats.slots}` : "—"),
        h("td", { class: "num" }, stats ? stats.queued_requests : "—"),
        h("td", { class: "num" }, stats ? stats.tokens_per_second.toFixed(1) : "—"),
        h("td", { class: "num" }, stats ? hitRate(stats) : "—"),
        h("td", { class: "num" }, stats && stats.kv_cells
          ? `${((100 * stats.kv_cells_used) / stats.kv_cells).toFixed(1)}%` : "—"),
        h("td", {}, caller.admin && chat ? loadButton(context, model, update) : ""),
      );
    })),
  );
}

function hitRate(stats) {
  const prompt = stats.prefill_tokens + stats.cached_prompt_tokens;
  return prompt ? `${((100 * stats.cached_prompt_tokens) / prompt).toFixed(0)}%` : "—";
}

function loadButton({ api, t }, model, update) {
  const unload = model.state === "loaded" || model.state === "loading";
  const button = h("button", { type: "button", class: unload ? "unload" : "load" },
    t(unload ? "unload" : "load"));
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await api.post(`/admin/v1/models/${encodeURIComponent(model.id)}/${unload ? "unload" : "load"}`);
    } catch (error) {
      button.after(errorBox(error));
    }
    await update();
  });
  return button;
}
