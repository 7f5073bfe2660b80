// Usage from the ledger: per day as a chart, per key and per model as bars, and a table to
// download as CSV. An ordinary key sees its own usage only.

import { errorBox, formatNumber, h } from "../dom.js";

export async function render(context) {
  const { t, caller } = context;
  const since = h("select", { id: "usage-since" },
    ["24h", "7d", "30d", "90d"].map((value) => h("option", { value }, t(`since_${value}`))));
  since.value = "7d";
  const key = h("input", { id: "usage-key", placeholder: t("key_filter") });
  const model = h("input", { id: "usage-model", placeholder: t("model_filter") });
  const results = h("div", {});
  const form = h("form", { class: "card row" },
    h("label", {}, t("since"), since),
    caller.admin ? h("label", {}, t("key_label"), key) : "",
    h("label", {}, t("model"), model),
    h("button", { type: "submit", class: "primary" }, t("show")),
  );
  const show = async () => {
    try {
      results.replaceChildren(await report(context, {
        since: since.value, key: caller.admin ? key.value.trim() : "", model: model.value.trim(),
      }));
    } catch (error) {
      results.replaceChildren(errorBox(error));
    }
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); show(); });
  await show();
  return h("div", {}, h("h1", {}, t("page_usage")), form, results);
}

async function report({ api, t, caller }, filters) {
  const groupings = caller.admin ? ["day", "key", "model"] : ["day", "model"];
  const base = caller.admin ? "/admin/v1/usage" : "/v1/privserve/usage";
  const reports = {};
  for (const by of groupings) {
    const query = new URLSearchParams({ by, since: filters.since });
    if (filters.key) query.set("key", filters.key);
    if (filters.model) query.set("model", filters.model);
    reports[by] = (await api.get(`${base}?${query}`)).data;
  }
  const days = everyDay(reports.day, PERIOD_DAYS[filters.since] || 7);
  const parts = [h("div", { class: "card" }, h("h2", {}, t("per_day")), dayChart(t, days))];
  for (const by of groupings.slice(1)) {
    parts.push(h("div", { class: "card" }, h("h2", {}, t(`per_${by}`)), bars(t, reports[by], by)));
  }
  const rows = groupings.flatMap((by) => reports[by].map((group) => ({ by, ...group })));
  parts.push(h("div", { class: "card" },
    h("div", { class: "row" }, h("h2", {}, t("table")), csvLink(t, rows)),
    usageTable(t, rows)));
  return h("div", {}, parts);
}

const PERIOD_DAYS = { "24h": 2, "7d": 7, "30d": 30, "90d": 90 };
const DAY_S = 86400;

// Every UTC day of the period, the days without usage at zero, so the chart's axis is the
// period's.
function everyDay(groups, count) {
  const byDay = new Map(groups.map((group) => [group.group, group]));
  const today = Math.floor(Date.now() / 1000 / DAY_S) * DAY_S;
  const days = [];
  for (let i = count - 1; i >= 0; i -= 1) {
    const day = new Date((today - i * DAY_S) * 1000).toISOString().slice(0, 10);
    days.push(byDay.get(day) || { group: day, requests: 0, prompt_tokens: 0, completion_tokens: 0 });
  }
  return days;
}

function dayChart(t, days) {
  const holder = h("div", { class: "chart", id: "usage-chart" });
  const sorted = [...days].sort((a, b) => a.group.localeCompare(b.group));
  const x = sorted.map((day) => Date.parse(`${day.group}T00:00:00Z`) / 1000);
  // Prompt and completion tokens side by side in each day's slot.
  const barsAt = (align) => (window.uPlot ? window.uPlot.paths.bars({ size: [0.3, 30], align }) : undefined);
  const options = {
    width: 1000,
    height: 260,
    scales: { x: { time: true, range: (_, min, max) => [min - DAY_S / 2, max + DAY_S / 2] } },
    series: [
      {},
      { label: t("prompt_tokens"), stroke: "#2459d8", fill: "rgba(36,89,216,.35)", paths: barsAt(-1), points: { show: false } },
      { label: t("completion_tokens"), stroke: "#1d8a4e", fill: "rgba(29,138,78,.35)", paths: barsAt(1), points: { show: false } },
      { label: t("requests"), stroke: "#b7791f", width: 2, scale: "requests", points: { show: true } },
    ],
    // Days are the ledger's UTC days.
    tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    axes: [{ incrs: [DAY_S, 7 * DAY_S, 30 * DAY_S], values: "{YYYY}-{MM}-{DD}", space: 80 }, { label: t("tokens") }, { side: 1, scale: "requests", label: t("requests"), grid: { show: false } }],
  };
  const data = [x, sorted.map((d) => d.prompt_tokens), sorted.map((d) => d.completion_tokens),
    sorted.map((d) => d.requests)];
  // Drawn once the holder is in the page, at its width.
  requestAnimationFrame(() => {
    if (!window.uPlot) return;
    options.width = Math.max(holder.clientWidth, 300);
    holder.dataset.points = String(x.length);
    new window.uPlot(options, data, holder);
  });
  return holder;
}

function bars(t, groups, by) {
  return h("div", { id: `usage-by-${by}` }, groups.length
    ? barTable(t, groups) : h("p", { class: "muted" }, t("no_usage")));
}

function barTable(t, groups) {
  const most = Math.max(...groups.map((group) => group.total_tokens), 1);
  return h("table", { class: "bars" },
    h("tbody", {}, groups.map((group) => h("tr", {},
      h("td", { style: "width:25%" }, group.group),
      h("td", {}, h("div", { class: "bar", style: `width:${(100 * group.total_tokens) / most}%` })),
      h("td", { class: "num", style: "width:20%" }, `${formatNumber(group.total_tokens)} ${t("tokens")}`),
      h("td", { class: "num", style: "width:15%" }, `${formatNumber(group.requests)} ${t("requests")}`),
    ))));
}

const COLUMNS = ["by", "group", "requests", "errors", "prompt_tokens", "cached_tokens",
  "completion_tokens", "total_tokens"];

function usageTable(t, rows) {
  return h("table", { id: "usage-table" },
    h("thead", {}, h("tr", {}, COLUMNS.map((column) => h("th", { class: column === "by" || column === "group" ? "" : "num" }, column)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, COLUMNS.map((column) =>
      h("td", { class: typeof row[column] === "number" ? "num" : "" }, row[column]))))));
}

function csvLink(t, rows) {
  const quote = (value) => {
    const text = String(value ?? "");
    return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  const csv = [COLUMNS.join(","), ...rows.map((row) => COLUMNS.map((c) => quote(row[c])).join(","))].join("\n");
  const url = URL.createObjectURL(new Blob([`${csv}\n`], { type: "text/csv" }));
  return h("a", { href: url, download: "privserve-usage.csv", id: "usage-csv" }, t("download_csv"));
}
