// Try a chat model: a conversation streamed as it is written, the reasoning of a thinking
// model folded apart, the answer's speed, and the same request as code to copy.

import { copyButton, errorBox, h } from "../dom.js";

let running = null; // the answer being streamed, aborted when the page is left

export function dispose() {
  if (running) running.abort();
  running = null;
}

export async function render({ api, t, origin }) {
  const { data } = await api.get("/v1/models");
  const chatModels = data.filter((model) => (model.capabilities || []).includes("chat"));
  const messages = []; // the conversation so far, as sent to the server

  const modelSelect = h("select", { id: "model" }, chatModels.map((model) =>
    h("option", { value: model.id }, `${model.id}${model.state ? ` (${t(`state_${model.state}`)})` : ""}`)));
  const system = h("textarea", { id: "system", rows: 2, placeholder: t("system_placeholder") });
  const input = h("textarea", { id: "prompt", rows: 3, placeholder: t("prompt_placeholder") });
  const temperature = h("input", { id: "temperature", type: "number", min: 0, max: 2, step: 0.1, placeholder: t("model_default") });
  const topP = h("input", { id: "top_p", type: "number", min: 0, max: 1, step: 0.05, placeholder: t("model_default") });
  const maxTokens = h("input", { id: "max_tokens", type: "number", min: 1, step: 1, value: "256" });
  const stop = h("input", { id: "stop", type: "text", placeholder: t("stop_placeholder") });
  const seed = h("input", { id: "seed", type: "number", step: 1 });
  const jsonMode = h("input", { id: "json_mode", type: "checkbox" });
  const extra = h("textarea", { id: "extra", rows: 3, spellcheck: "false",
    placeholder: '{"chat_template_kwargs": {"enable_thinking": false}}' });
  const conversation = h("div", { class: "conversation", id: "conversation", "aria-live": "polite" });
  const stats = h("div", { class: "stats", id: "stats" });
  const problem = h("div");
  const send = h("button", { class: "primary", type: "submit", id: "send" }, t("send"));
  const stopButton = h("button", { type: "button", id: "stop-answer", disabled: true }, t("stop_answer"));
  const clear = h("button", { type: "button", id: "clear" }, t("clear"));

  let lastSent = null; // the request of the last answer, for "copy as"

  function body(stream, pending = []) {
    const request = {
      model: modelSelect.value,
      messages: conversationWith(system.value, [...messages, ...pending]),
    };
    if (temperature.value !== "") request.temperature = Number(temperature.value);
    if (topP.value !== "") request.top_p = Number(topP.value);
    if (maxTokens.value !== "") request.max_tokens = Number(maxTokens.value);
    const stops = stop.value.split(",").map((s) => s.trim()).filter(Boolean);
    if (stops.length) request.stop = stops;
    if (seed.value !== "") request.seed = Number(seed.value);
    if (jsonMode.checked) request.response_format = { type: "json_object" };
    if (extra.value.trim()) {
      let fields;
      try {
        fields = JSON.parse(extra.value);
      } catch {
        fields = null;
      }
      if (!fields || typeof fields !== "object" || Array.isArray(fields)) {
        throw new Error(t("extra_not_json"));
      }
      Object.assign(request, fields);
    }
    if (stream) {
      request.stream = true;
      request.stream_options = { include_usage: true };
    }
    return request;
  }

  const form = h("form", { class: "card" },
    conversation,
    h("label", {}, t("your_message"), input),
    problem,
    h("div", { class: "row" }, send, stopButton, clear),
    stats,
  );
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });
  clear.addEventListener("click", () => {
    messages.length = 0;
    conversation.replaceChildren();
    stats.replaceChildren();
  });
  stopButton.addEventListener("click", () => running && running.abort());

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || running) return;
    problem.replaceChildren();
    let request;
    try {
      request = body(true, [{ role: "user", content: text }]);
    } catch (error) {
      problem.replaceChildren(errorBox(error));
      return;
    }
    messages.push({ role: "user", content: text });
    lastSent = body(false);
    conversation.append(h("div", { class: "message user" }, text));
    input.value = "";
    const answer = new AnswerView(t);
    conversation.append(answer.element);
    running = new AbortController();
    send.disabled = true;
    stopButton.disabled = false;
    const started = performance.now();
    let firstToken = null;
    let usage = null;
    let finish = null;
    try {
      for await (const chunk of api.stream("/v1/chat/completions", request, running.signal)) {
        if (chunk.usage) usage = chunk.usage;
        for (const choice of chunk.choices || []) {
          const delta = choice.delta || {};
          if (delta.reasoning_content || delta.content) firstToken ??= performance.now();
          if (delta.reasoning_content) answer.addReasoning(delta.reasoning_content);
          if (delta.content) answer.addContent(delta.content);
          if (choice.finish_reason) finish = choice.finish_reason;
        }
      }
    } catch (error) {
      if (error.name !== "AbortError") problem.replaceChildren(errorBox(error));
      finish ??= error.name === "AbortError" ? "stopped" : "error";
    } finally {
      running = null;
      send.disabled = false;
      stopButton.disabled = true;
    }
    const ended = performance.now();
    messages.push({ role: "assistant", content: answer.content });
    stats.replaceChildren(...answerStats(t, { started, firstToken, ended, usage, finish }));
  });

  // The message being written, else the last one sent, as its request.
  const toCopy = () => {
    const text = input.value.trim();
    return text || !lastSent ? body(false, text ? [{ role: "user", content: text }] : []) : lastSent;
  };

  const params = h("div", { class: "card params" },
    h("label", {}, t("model"), modelSelect),
    h("label", {}, t("system_prompt"), system),
    h("label", {}, "temperature", temperature),
    h("label", {}, "top_p", topP),
    h("label", {}, "max_tokens", maxTokens),
    h("label", {}, "stop", stop),
    h("label", {}, "seed", seed),
    h("label", { class: "check" }, jsonMode, t("json_mode")),
    h("label", {}, t("extra_fields"), extra),
    h("h2", {}, t("copy_as")),
    h("div", { class: "row" },
      copyButton(t, () => asCurl(origin, toCopy()), "curl"),
      copyButton(t, () => asPython(origin, toCopy()), "Python"),
      fastGptButton(api, t, () => modelSelect.value),
    ),
  );
  return h("div", {},
    h("h1", {}, t("page_playground")),
    chatModels.length ? h("div", { class: "playground" }, form, params) : h("p", {}, t("no_chat_models")));
}

function conversationWith(system, messages) {
  return system.trim() ? [{ role: "system", content: system }, ...messages] : [...messages];
}

class AnswerView {
  constructor(t) {
    this.content = "";
    this.reasoning = "";
    this.reasoningText = h("div", { class: "reasoning-text" });
    this.reasoningBox = h("details", { class: "reasoning", hidden: true },
      h("summary", {}, t("reasoning")), this.reasoningText);
    this.contentText = h("div", { class: "content" });
    this.element = h("div", { class: "message assistant" }, this.reasoningBox, this.contentText);
  }

  addReasoning(text) {
    this.reasoning += text;
    this.reasoningBox.hidden = false;
    this.reasoningText.textContent = this.reasoning;
  }

  addContent(text) {
    this.content += text;
    this.contentText.textContent = this.content;
  }
}

function answerStats(t, { started, firstToken, ended, usage, finish }) {
  const items = [];
  if (usage) {
    items.push(`${t("prompt_tokens")}: ${usage.prompt_tokens}`);
    items.push(`${t("completion_tokens")}: ${usage.completion_tokens}`);
  }
  if (firstToken !== null) {
    items.push(h("span", { id: "ttft" }, `${t("ttft")}: ${Math.round(firstToken - started)} ms`));
    const seconds = (ended - firstToken) / 1000;
    if (usage && usage.completion_tokens > 1 && seconds > 0) {
      const rate = (usage.completion_tokens - 1) / seconds;
      items.push(h("span", { id: "tokens-per-second" }, `${rate.toFixed(1)} ${t("tokens_per_second")}`));
    }
  }
  if (finish) items.push(h("span", { id: "finish-reason" }, `finish_reason: ${finish}`));
  return items.map((item) => (item instanceof Node ? item : h("span", {}, item)));
}

// The request as code, with the key left to the environment: the console's own key (often
// an admin key) never goes into a snippet.
function asCurl(origin, request) {
  const json = JSON.stringify(request, null, 2).replaceAll("'", "'\\''");
  return [
    `curl ${origin}/v1/chat/completions \\`,
    '  -H "Authorization: Bearer $PRIVSERVE_API_KEY" \\',
    '  -H "Content-Type: application/json" \\',
    `  -d '${json}'`,
  ].join("\n");
}

// What the openai client takes as arguments; other fields go in its extra_body.
const OPENAI_ARGUMENTS = new Set(["frequency_penalty", "logit_bias", "logprobs",
  "max_completion_tokens", "max_tokens", "n", "parallel_tool_calls", "presence_penalty",
  "reasoning_effort", "response_format", "seed", "stop", "stream", "stream_options",
  "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user"]);

function asPython(origin, request) {
  const { model, messages, ...rest } = request;
  const own = Object.entries(rest).filter(([name]) => !OPENAI_ARGUMENTS.has(name));
  const entries = Object.entries(rest).filter(([name]) => OPENAI_ARGUMENTS.has(name));
  if (own.length) entries.push(["extra_body", Object.fromEntries(own)]);
  const extra = entries.map(([name, value]) => `    ${name}=${pythonValue(value)},\n`).join("");
  return [
    "import os",
    "",
    "from openai import OpenAI",
    "",
    `client = OpenAI(base_url="${origin}/v1", api_key=os.environ["PRIVSERVE_API_KEY"])`,
    "reply = client.chat.completions.create(",
    `    model=${JSON.stringify(model)},`,
    `    messages=${pythonValue(messages)},`,
    `${extra})`,
    "print(reply.choices[0].message.content)",
  ].join("\n");
}

function pythonValue(value) {
  // JSON is Python, but for its three literals.
  return JSON.stringify(value)
    .replace(/\btrue\b(?=(?:[^"]*"[^"]*")*[^"]*$)/g, "True")
    .replace(/\bfalse\b(?=(?:[^"]*"[^"]*")*[^"]*$)/g, "False")
    .replace(/\bnull\b(?=(?:[^"]*"[^"]*")*[^"]*$)/g, "None");
}

function fastGptButton(api, t, model) {
  return copyButton(t, async () => {
    const { fastgpt } = await api.get("/v1/privserve/integrations");
    const entry = fastgpt.model_json.find((candidate) => candidate.model === model());
    return JSON.stringify(withPlaceholderKey(entry || {}), null, 2);
  }, t("fastgpt_entry"));
}

export function withPlaceholderKey(value) {
  return JSON.parse(JSON.stringify(value, (name, item) =>
    (name === "requestAuth" || name === "key") && typeof item === "string" ? "YOUR_PRIVSERVE_KEY" : item));
}
