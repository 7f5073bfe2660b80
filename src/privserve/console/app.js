// The console's shell: sign-in, the page menu (what the key may see), language, routing.

import { Api, ApiError } from "./api.js";
import { errorBox, h } from "./dom.js";
import { translator } from "./i18n.js";
import * as integrations from "./pages/integrations.js";
import * as keys from "./pages/keys.js";
import * as models from "./pages/models.js";
import * as playground from "./pages/playground.js";
import * as usage from "./pages/usage.js";

const PAGES = [
  { path: "playground", page: playground, admin: false },
  { path: "keys", page: keys, admin: true },
  { path: "usage", page: usage, admin: false },
  { path: "models", page: models, admin: true },
  { path: "integrations", page: integrations, admin: true },
];

class Console {
  constructor() {
    this.main = document.getElementById("page");
    this.nav = document.getElementById("nav");
    this.who = document.getElementById("who");
    this.languageSelect = document.getElementById("language");
    this.signOutButton = document.getElementById("sign-out");
    this.session = null; // {api, caller} once signed in
    this.current = null; // the shown page's module, for its dispose()
    this.language = chooseLanguage();
    this.t = translator(this.language);
    this.languageSelect.value = this.language;
    this.languageSelect.addEventListener("change", () => this.setLanguage(this.languageSelect.value));
    this.signOutButton.addEventListener("click", () => this.signOut());
    window.addEventListener("hashchange", () => this.show());
  }

  setLanguage(language) {
    this.language = language;
    this.t = translator(language);
    localStorage.setItem("privserve.language", language); // a preference, not a secret
    document.documentElement.lang = language === "zh" ? "zh-CN" : "en";
    this.show();
  }

  context() {
    return { api: this.session.api, caller: this.session.caller, t: this.t, origin: location.origin };
  }

  async signIn(key) {
    const api = new Api(key);
    const caller = await api.get("/v1/privserve/me");
    this.session = { api, caller };
    if (!location.hash) location.hash = "#/playground";
    this.show();
  }

  signOut() {
    this.session = null;
    this.show();
  }

  renderSignIn() {
    const t = this.t;
    const input = h("input", {
      type: "password", id: "api-key", autocomplete: "off", spellcheck: "false",
      placeholder: "sk-ps-…", "aria-label": t("api_key"),
    });
    const problem = h("div");
    const form = h("form", { class: "card sign-in" },
      h("h1", {}, t("sign_in")),
      h("p", { class: "muted" }, t("sign_in_help")),
      h("label", {}, t("api_key"), input),
      problem,
      h("p", {}, h("button", { class: "primary", type: "submit" }, t("sign_in"))),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      problem.replaceChildren();
      try {
        await this.signIn(input.value.trim());
      } catch (error) {
        problem.replaceChildren(errorBox(error instanceof ApiError && error.status === 401
          ? t("key_refused") : error));
      }
    });
    return form;
  }

  async show() {
    if (this.current && this.current.dispose) this.current.dispose();
    this.current = null;
    const t = this.t;
    this.signOutButton.textContent = t("sign_out");
    if (!this.session) {
      this.nav.hidden = true;
      this.signOutButton.hidden = true;
      this.who.textContent = "";
      this.main.replaceChildren(this.renderSignIn());
      document.getElementById("api-key").focus();
      return;
    }
    const { caller } = this.session;
    const allowed = PAGES.filter((entry) => caller.admin || !entry.admin);
    const wanted = location.hash.replace(/^#\/?/, "") || "playground";
    const entry = allowed.find((candidate) => candidate.path === wanted) || allowed[0];
    this.nav.hidden = false;
    this.nav.replaceChildren(...allowed.map((candidate) => h("a", {
      href: `#/${candidate.path}`, class: candidate === entry ? "active" : null,
      id: `nav-${candidate.path}`,
    }, t(`page_${candidate.path}`))));
    this.who.textContent = `${caller.name}${caller.admin ? ` · ${t("admin")}` : ""}`;
    this.signOutButton.hidden = false;
    this.current = entry.page;
    try {
      this.main.replaceChildren(await entry.page.render(this.context()));
    } catch (error) {
      this.main.replaceChildren(errorBox(error));
    }
  }
}

function chooseLanguage() {
  const saved = localStorage.getItem("privserve.language");
  if (saved === "en" || saved === "zh") return saved;
  return (navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en";
}

new Console().show();
