// API keys: who has one, what it may do, how much of its quota is left; create (the
// secret shown once), change limits, revoke.

import { copyButton, errorBox, formatNumber, formatTime, h } from "../dom.js";

const LIMITS = ["rpm", "tpm", "concurrency", "quota"];

export async function render(context) {
  const page = h("div", {});
  await refresh(page, context);
  return page;
}

async function refresh(page, context, notice) {
  const { api, t } = context;
  const { data } = await api.get("/admin/v1/keys");
  page.replaceChildren(
    h("h1", {}, t("page_keys")),
    notice || "",
    createForm(page, context),
    h("div", { class: "card" }, keyTable(page, context, data)),
  );
}

function createForm(page, context) {
  const { api, t } = context;
  const fields = {
    name: h("input", { id: "new-key-name", required: true, maxlength: 200 }),
    owner: h("input", { id: "new-key-owner", maxlength: 200 }),
    models: h("input", { id: "new-key-models", placeholder: "qwen3-*, bge-m3" }),
    rpm: h("input", { id: "new-key-rpm", type: "number", min: 1 }),
    tpm: h("input", { id: "new-key-tpm", type: "number", min: 1 }),
    concurrency: h("input", { id: "new-key-concurrency", type: "number", min: 1 }),
    quota: h("input", { id: "new-key-quota", placeholder: "2000000/month" }),
    expires: h("input", { id: "new-key-expires", placeholder: "30d" }),
  };
  const admin = h("input", { id: "new-key-admin", type: "checkbox" });
  const problem = h("div");
  const form = h("form", { class: "card", id: "create-key" },
    h("h2", {}, t("create_key")),
    h("div", { class: "row" },
      ...Object.entries(fields).map(([name, input]) => h("label", {}, t(`field_${name}`), input)),
      h("label", { class: "check" }, admin, t("field_admin")),
      h("button", { class: "primary", type: "submit" }, t("create")),
    ),
    problem,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: fields.name.value.trim() };
    for (const name of ["owner", "quota", "expires"]) {
      if (fields[name].value.trim()) body[name] = fields[name].value.trim();
    }
    for (const name of ["rpm", "tpm", "concurrency"]) {
      if (fields[name].value) body[name] = Number(fields[name].value);
    }
    const models = splitList(fields.models.value);
    if (models.length) body.models = models;
    if (admin.checked) body.admin = true;
    try {
      const created = await api.post("/admin/v1/keys", body);
      const secret = h("div", { class: "secret", id: "new-key-secret" }, created.key);
      await refresh(page, context, h("div", { class: "card", id: "key-created" },
        h("p", {}, t("key_shown_once", { name: created.name })),
        secret,
        h("p", {}, copyButton(t, created.key)),
      ));
    } catch (error) {
      problem.replaceChildren(errorBox(error));
    }
  });
  return form;
}

function keyTable(page, context, keys) {
  const { t } = context;
  const head = ["id", "name", "owner", "prefix", "models", ...LIMITS, "quota_left", "last_used", "status", ""];
  return h("table", { id: "keys" },
    h("thead", {}, h("tr", {}, head.map((name) => h("th", {}, name ? t(`field_${name}`) : "")))),
    h("tbody", {}, keys.map((key) => keyRow(page, context, key))),
  );
}

function keyRow(page, context, key) {
  const { api, t } = context;
  const revoked = Boolean(key.revoked_at);
  const left = key.quota === null ? null : quotaLeft(key);
  const actions = h("td", {});
  const row = h("tr", { "data-key-id": key.id, "data-key-name": key.name },
    h("td", {}, key.id),
    h("td", {}, key.name, key.admin ? h("span", { class: "badge" }, t("admin")) : ""),
    h("td", {}, key.owner || "—"),
    h("td", {}, h("code", {}, key.prefix)),
    h("td", {}, key.models.length ? key.models.join(", ") : t("all_models")),
    h("td", { class: "num" }, formatNumber(key.rpm)),
    h("td", { class: "num" }, formatNumber(key.tpm)),
    h("td", { class: "num" }, formatNumber(key.concurrency)),
    h("td", {}, key.quota || "—"),
    h("td", { class: "num" }, formatNumber(left)),
    h("td", {}, formatTime(key.last_used_at)),
    h("td", { class: "status" }, revoked ? t("revoked") : t("active")),
    actions,
  );
  if (!revoked) {
    const edit = h("button", { type: "button", class: "edit" }, t("edit"));
    const revoke = h("button", { type: "button", class: "danger revoke" }, t("revoke"));
    edit.addEventListener("click", () => row.after(editRow(page, context, key)));
    revoke.addEventListener("click", async () => {
      if (!window.confirm(t("confirm_revoke", { name: key.name }))) return;
      try {
        await api.delete(`/admin/v1/keys/${key.id}`);
        await refresh(page, context);
      } catch (error) {
        actions.append(errorBox(error));
      }
    });
    actions.append(edit, " ", revoke);
  }
  return row;
}

function editRow(page, context, key) {
  const { api, t } = context;
  const inputs = Object.fromEntries(LIMITS.map((name) => [name, h("input", {
    class: `edit-${name}`, value: key[name] === null ? "" : String(key[name]),
    type: name === "quota" ? "text" : "number", min: 1,
  })]));
  const problem = h("div");
  const save = h("button", { type: "submit", class: "primary" }, t("save"));
  const form = h("form", { class: "row" },
    ...LIMITS.map((name) => h("label", {}, t(`field_${name}`), inputs[name])), save, problem);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {};
    for (const name of LIMITS) {
      const value = inputs[name].value.trim();
      if (value !== "") body[name] = name === "quota" ? value : Number(value);
    }
    try {
      await api.patch(`/admin/v1/keys/${key.id}`, body);
      await refresh(page, context);
    } catch (error) {
      problem.replaceChildren(errorBox(error));
    }
  });
  return h("tr", { class: "editing" }, h("td", { colspan: 13 }, form));
}

function quotaLeft(key) {
  const total = Number(String(key.quota).split("/")[0]);
  if (!Number.isFinite(total)) return null;
  return Math.max(total - (key.quota_used || 0) - (key.quota_held || 0), 0);
}

function splitList(text) {
  return text.split(",").map((item) => item.trim()).filter(Boolean);
}
