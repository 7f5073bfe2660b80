// Building elements from data: text always goes in as text, never as HTML.

export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "class") element.className = value;
    else if (name === "value" || name === "checked") element[name] = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

// The clipboard API exists only on secure origins (https, localhost); a server reached by
// its LAN address over http falls back to the selection.
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // fall through to the selection
    }
  }
  const area = h("textarea", { readonly: true, style: "position:fixed;top:-1000px" }, text);
  document.body.append(area);
  area.select();
  const copied = document.execCommand("copy");
  area.remove();
  return copied;
}

export function copyButton(t, text, label) {
  const button = h("button", { type: "button", class: "copy" }, label || t("copy"));
  button.addEventListener("click", async () => {
    let copied = false;
    try {
      copied = await copyText(await (typeof text === "function" ? text() : text));
    } catch {
      copied = false;
    }
    button.textContent = copied ? t("copied") : t("copy_failed");
    setTimeout(() => { button.textContent = label || t("copy"); }, 1500);
  });
  return button;
}

export function errorBox(error) {
  return h("div", { class: "error", role: "alert" }, String(error && error.message || error));
}

export function formatNumber(value) {
  return value === null || value === undefined ? "—" : Number(value).toLocaleString();
}

export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let size = bytes;
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) { size /= 1024; unit += 1; }
  return `${size.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

export function formatTime(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}
