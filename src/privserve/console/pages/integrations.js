// The entries FastGPT and One API need for this server, to copy. The signed-in key is never
// put in them: a placeholder stands where the key goes.

import { copyButton, h } from "../dom.js";
import { withPlaceholderKey } from "./playground.js";

export async function render({ api, t }) {
  const found = withPlaceholderKey(await api.get("/v1/privserve/integrations"));
  const block = (title, id, value, help) => {
    const text = JSON.stringify(value, null, 2);
    return h("div", { class: "card" },
      h("div", { class: "row" }, h("h2", {}, title), copyButton(t, text)),
      help ? h("p", { class: "muted" }, help) : "",
      h("pre", { id }, text));
  };
  return h("div", {},
    h("h1", {}, t("page_integrations")),
    h("p", {}, t("integrations_help", { base: found.base_url })),
    block(t("fastgpt_model_json"), "fastgpt-model-json", found.fastgpt.model_json, t("fastgpt_model_json_help")),
    block(t("fastgpt_config_json"), "fastgpt-config-json", found.fastgpt.config_json, t("fastgpt_config_json_help")),
    block(t("one_api_channel"), "one-api-channel", found.one_api, t("one_api_channel_help")),
  );
}
