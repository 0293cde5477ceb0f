// The vodedge console: a client of the API's actions through the session
// (/console/api/call). No secret is kept here: the session is an HttpOnly cookie,
// and the CSRF token lives in this page's memory only.
"use strict";

const state = { session: null };
const app = document.getElementById("app");

class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// An element: h("p", {class: "x"}, "text", child...).
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) el.append(child);
  }
  return el;
}

async function send(path, params, withCsrf) {
  const headers = { "Content-Type": "application/x-www-form-urlencoded" };
  if (withCsrf && state.session) headers["X-CSRF-Token"] = state.session.CsrfToken;
  const response = await fetch(path, {
    method: "POST", headers, credentials: "same-origin", body: new URLSearchParams(params),
  });
  return [response.status, await response.json()];
}

// Run an API action as the session's key; throws ApiFailure with the API's error.
async function call(action, params) {
  const [status, body] = await send("/console/api/call", { Action: action, ...params }, true);
  if (status === 401) {
    state.session = null;
    showLogon("Your session has expired. Log on again.");
    throw new ApiFailure(status, body.Code, body.Message);
  }
  if (status !== 200) throw new ApiFailure(status, body.Code, body.Message);
  return body;
}

function showLogon(message) {
  document.title = "Log on - vodedge console";
  const error = h("p", { class: "error", id: "logon-error", role: "alert" }, message || "");
  const keyId = h("input", { type: "text", id: "access-key-id", name: "AccessKeyId",
    autocomplete: "username", required: true, autofocus: true });
  const secret = h("input", { type: "password", id: "access-key-secret", name: "AccessKeySecret",
    autocomplete: "off", required: true });
  const form = h("form", { class: "logon", "aria-labelledby": "logon-title", onsubmit: async (event) => {
    event.preventDefault();
    error.textContent = "";
    const [status, body] = await send("/console/api/logon",
      { AccessKeyId: keyId.value, AccessKeySecret: secret.value }, false);
    secret.value = "";
    if (status !== 200) {
      error.textContent = `${body.Message} (${body.Code})`;
      secret.focus();
      return;
    }
    state.session = body;
    if (!location.hash || location.hash === "#/") location.hash = "#/domains";
    render();
  } },
    h("h1", { id: "logon-title" }, "Log on"),
    h("p", { class: "help" }, "Use an AccessKey pair of this node."),
    h("label", { for: "access-key-id" }, "AccessKey ID"), keyId,
    h("label", { for: "access-key-secret" }, "AccessKey Secret"), secret,
    h("button", { type: "submit", class: "primary" }, "Log on"),
    error);
  app.replaceChildren(h("main", { id: "content" }, form));
  keyId.focus();
}

async function logOff() {
  await send("/console/api/logoff", {}, true);
  state.session = null;
  location.hash = "";
  showLogon("You have logged off.");
}

function shell(current, ...content) {
  const link = (href, text, key) =>
    h("li", {}, h("a", { href, "aria-current": current === key ? "page" : null,
      onclick: () => { if (location.hash === href) render(); } }, text));
  const who = h("span", { class: "who" }, `AccessKey ${state.session.AccessKeyId}`,
    state.session.ReadOnly ? h("span", { class: "badge" }, "read-only") : null);
  app.replaceChildren(
    h("header", { class: "top" },
      h("span", { class: "brand" }, "vod", h("span", {}, "edge"), " console"), who,
      h("button", { type: "button", onclick: logOff }, "Log off")),
    h("div", { class: "layout" },
      h("nav", { class: "side", "aria-label": "Console" },
        h("h2", {}, "CDN"),
        h("ul", {}, link("#/domains", "Domain Names", "domains"))),
      h("main", { id: "content" }, ...content)));
}

function failureText(error) {
  return error instanceof ApiFailure ? `${error.message} (${error.code})` : String(error);
}

async function showDomains() {
  document.title = "Domain Names - vodedge console";
  const body = h("tbody", {}, h("tr", {}, h("td", { colspan: "5" }, "Loading…")));
  shell("domains", h("h1", {}, "Domain Names"),
    h("table", {},
      h("caption", {}, "The domains this node serves"),
      h("thead", {}, h("tr", {}, ["Domain Name", "Status", "Origins", "Created", "Actions"]
        .map((text) => h("th", { scope: "col" }, text)))),
      body));
  let answer;
  try {
    answer = await call("DescribeUserDomains", { PageSize: "500" });
  } catch (error) {
    if (error.status !== 401) body.replaceChildren(h("tr", {}, h("td", { colspan: "5", class: "error", role: "alert" }, failureText(error))));
    return;
  }
  const domains = answer.Domains.PageData;
  if (!domains.length) {
    body.replaceChildren(h("tr", {}, h("td", { colspan: "5" }, "No domain yet.")));
    return;
  }
  body.replaceChildren(...domains.map((d) => h("tr", {},
    h("th", { scope: "row" }, d.DomainName),
    h("td", { class: `status-${d.DomainStatus}` }, d.DomainStatus),
    h("td", {}, d.Sources.Source.map((s) => h("div", {}, `${s.Content}${s.Port ? ":" + s.Port : ""} (${s.Type})`))),
    h("td", {}, h("time", { datetime: d.GmtCreated }, d.GmtCreated)),
    h("td", {}, h("a", { href: `#/domain/${encodeURIComponent(d.DomainName)}/video`,
      "aria-label": `Manage ${d.DomainName}` }, "Manage")))));
}

// A function's form: a switch (argument "enable") and text or on/off fields; it saves
// when the switch changes or on Save, and shows the API's error beside its field.
function functionCard(domain, spec, values) {
  const readOnly = state.session.ReadOnly;
  const errors = {};
  const inputs = {};
  const status = h("span", { class: "saved", role: "status", "aria-live": "polite" });
  const errorFor = (arg) => (errors[arg] = h("p", { class: "error", id: `error-${spec.name}-${arg}`, role: "alert" }));
  const switchId = `switch-${spec.name}`;
  const enabled = h("input", { type: "checkbox", role: "switch", id: switchId, name: "enable",
    checked: values.enable === "on", disabled: readOnly, "aria-describedby": `error-${spec.name}-enable` });
  inputs.enable = enabled;
  let savedOn = values.enable === "on";
  const switchState = h("span", { class: "switch-state", "aria-hidden": "true" }, values.enable === "on" ? "On" : "Off");
  const rows = spec.fields.map((field) => {
    const id = `${spec.name}-${field.arg}`;
    const input = field.kind === "onoff"
      ? h("input", { type: "checkbox", id, name: field.arg, checked: values[field.arg] === "on", disabled: readOnly,
          "aria-describedby": `error-${spec.name}-${field.arg}` })
      : h("input", { type: "text", id, name: field.arg, value: values[field.arg] ?? field.default ?? "",
          disabled: readOnly, spellcheck: "false", "aria-describedby": `error-${spec.name}-${field.arg} help-${id}` });
    inputs[field.arg] = input;
    return h("div", { class: "row" },
      h("label", { class: "field", for: id }, field.label), input,
      h("span", { class: "help", id: `help-${id}` }, field.kind === "onoff" ? "" : field.arg),
      errorFor(field.arg));
  });
  const save = async () => {
    status.textContent = "";
    for (const [arg, el] of Object.entries(errors)) { el.textContent = ""; inputs[arg].removeAttribute("aria-invalid"); }
    const args = [{ argName: "enable", argValue: enabled.checked ? "on" : "off" }];
    for (const field of spec.fields) {
      const input = inputs[field.arg];
      const value = field.kind === "onoff" ? (input.checked ? "on" : "off") : input.value;
      if (field.kind === "onoff" || value !== "" || field.required) args.push({ argName: field.arg, argValue: value });
    }
    try {
      await call("BatchSetCdnDomainConfig", { DomainNames: domain,
        Functions: JSON.stringify([{ functionName: spec.name, functionArgs: args }]) });
      savedOn = enabled.checked;
      switchState.textContent = savedOn ? "On" : "Off";
      status.textContent = "Saved.";
    } catch (error) {
      if (error.status === 401) return;
      // Beside the field the message names (the longest name first), else the switch.
      const named = Object.keys(errors).sort((a, b) => b.length - a.length)
        .find((arg) => arg !== "enable" && error.message.includes(arg)) || "enable";
      errors[named].textContent = failureText(error);
      inputs[named].setAttribute("aria-invalid", "true");
      enabled.checked = savedOn;  // the switch shows what is in force, not what failed
    }
  };
  enabled.addEventListener("change", save);
  const form = h("form", { "aria-labelledby": `title-${spec.name}`, onsubmit: (event) => { event.preventDefault(); save(); } },
    h("div", { class: "row" },
      h("label", { class: "field", for: switchId }, spec.title), enabled, switchState, status,
      errorFor("enable")),
    ...rows,
    spec.fields.length ? h("div", { class: "row" }, h("button", { type: "submit", class: "primary", disabled: readOnly }, "Save")) : null);
  return h("section", { class: "card", id: `card-${spec.name}` },
    h("h3", { id: `title-${spec.name}` }, spec.title), h("p", { class: "help" }, spec.help), form);
}

const VIDEO_FUNCTIONS = [
  { name: "ali_video_split", title: "Audio Extraction",
    help: "Requests with ?ali_audio_only=1 get the audio track only (MP4 and FLV).", fields: [] },
  { name: "video_seek", title: "Video Seeking",
    help: "Start and end query parameters cut MP4 and FLV files; FLV seeks by byte offset unless by time.",
    fields: [
      { arg: "flv_seek_by_time", label: "FLV seek by time", kind: "onoff" },
      { arg: "mp4_seek_start", label: "MP4 start parameter", default: "start" },
      { arg: "mp4_seek_end", label: "MP4 end parameter", default: "end" },
      { arg: "flv_seek_start", label: "FLV start parameter", default: "start" },
      { arg: "flv_seek_end", label: "FLV end parameter", default: "end" },
    ] },
  { name: "ali_video_preview", title: "Audio/video Preview",
    help: "A request with this parameter gets only its first N seconds.",
    fields: [{ arg: "ali_video_preview_argument", label: "Preview parameter", required: true }] },
];

async function showVideo(domain) {
  document.title = `Video - ${domain} - vodedge console`;
  const pane = h("div", {}, h("p", {}, "Loading…"));
  shell("domains",
    h("p", { class: "crumbs" }, h("a", { href: "#/domains" }, "Domain Names"), " / ", domain),
    h("h1", {}, domain),
    h("div", { class: "domain" },
      h("nav", { class: "side", "aria-label": "Domain settings" },
        h("ul", {}, h("li", {}, h("a", { href: `#/domain/${encodeURIComponent(domain)}/video`, "aria-current": "page" }, "Video")))),
      pane));
  let answer;
  try {
    answer = await call("DescribeCdnDomainConfigs", { DomainName: domain,
      FunctionNames: VIDEO_FUNCTIONS.map((f) => f.name).join(",") });
  } catch (error) {
    if (error.status !== 401) pane.replaceChildren(h("p", { class: "error", role: "alert" }, failureText(error)));
    return;
  }
  const values = {};
  for (const config of answer.DomainConfigs.DomainConfig) {
    values[config.FunctionName] = Object.fromEntries(
      config.FunctionArgs.FunctionArg.map((a) => [a.ArgName, a.ArgValue]));
  }
  pane.replaceChildren(
    h("h2", {}, "Video"),
    state.session.ReadOnly ? h("p", { class: "note" }, "This AccessKey is read-only: you can see the settings but not change them.") : null,
    ...VIDEO_FUNCTIONS.map((spec) => functionCard(domain, spec, values[spec.name] || {})));
}

function render() {
  if (!state.session) { showLogon(); return; }
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  if (parts[0] === "domain" && parts[1]) showVideo(decodeURIComponent(parts[1]));
  else showDomains();
}

window.addEventListener("hashchange", render);

(async () => {
  const response = await fetch("/console/api/session", { credentials: "same-origin" });
  if (response.status === 200) state.session = await response.json();
  render();
})();
