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
        h("ul", {}, link("#/domains", "Domain Names", "domains"),
          link("#/refresh", "Refresh and Prefetch", "refresh"))),
      h("main", { id: "content" }, ...content)));
}

function failureText(error) {
  return error instanceof ApiFailure ? `${error.message} (${error.code})` : String(error);
}

// Whether `message` names `name` as a whole word (ttl, not the ttl in path_based_ttl_set).
function names(message, name) {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(^|[^A-Za-z0-9_])${escaped}($|[^A-Za-z0-9_])`).test(message);
}

// Show the API's error beside the field whose parameter its message names, else `fallback`.
function placeError(error, fields, fallback) {
  for (const { input, box } of Object.values(fields)) { box.textContent = ""; input.removeAttribute("aria-invalid"); }
  fallback.textContent = "";
  if (error === null) return;
  const named = Object.keys(fields).sort((a, b) => b.length - a.length)
    .find((name) => names(error.message, name));
  if (named) {
    fields[named].box.textContent = failureText(error);
    fields[named].input.setAttribute("aria-invalid", "true");
    fields[named].input.focus();
  } else {
    fallback.textContent = failureText(error);
  }
}

// A labelled text field with its error box: [row, input, box].
function textField(id, label, attrs) {
  const box = h("p", { class: "error", id: `error-${id}`, role: "alert" });
  const input = h("input", { type: "text", id, spellcheck: "false", "aria-describedby": `error-${id}`,
    disabled: state.session.ReadOnly, ...attrs });
  return [h("div", { class: "row" }, h("label", { class: "field", for: id }, label), input, box), input, box];
}

function addDomainCard() {
  const [nameRow, name, nameBox] = textField("add-domain-name", "Domain Name", { placeholder: "video.example.com" });
  const [originRow, origin, originBox] = textField("add-domain-origin", "Origin", { placeholder: "10.0.0.5 or origin.example.com" });
  const [portRow, port, portBox] = textField("add-domain-port", "Port", { value: "80", inputmode: "numeric" });
  const general = h("p", { class: "error", id: "error-add-domain", role: "alert" });
  const status = h("span", { class: "saved", role: "status", "aria-live": "polite" });
  const fields = { DomainName: { input: name, box: nameBox }, Sources: { input: origin, box: originBox },
    port: { input: port, box: portBox } };
  const form = h("form", { "aria-labelledby": "add-domain-title", onsubmit: async (event) => {
    event.preventDefault();
    status.textContent = "";
    const isIp = /^[0-9.]+$|:/.test(origin.value.trim());
    const sources = [{ content: origin.value.trim(), type: isIp ? "ipaddr" : "domain",
      port: Number(port.value) || port.value }];
    try {
      await call("AddCdnDomain", { DomainName: name.value.trim(), CdnType: "video",
        Sources: JSON.stringify(sources) });
    } catch (error) {
      if (error.status !== 401) placeError(error, fields, general);
      return;
    }
    placeError(null, fields, general);
    status.textContent = `Added ${name.value.trim()}.`;
    name.value = ""; origin.value = "";
    await listDomains();
  } },
    nameRow, originRow, portRow,
    h("div", { class: "row" }, h("button", { type: "submit", class: "primary", disabled: state.session.ReadOnly },
      "Add Domain"), status, general));
  return h("section", { class: "card", id: "card-add-domain" },
    h("h3", { id: "add-domain-title" }, "Add Domain"),
    h("p", { class: "help" }, "A video domain pulled from one origin server (more origins: Basic)."), form);
}

let listDomains = async () => {};

async function showDomains() {
  document.title = "Domain Names - vodedge console";
  const body = h("tbody", {}, h("tr", {}, h("td", { colspan: "5" }, "Loading…")));
  const content = h("div", {});
  shell("domains", h("h1", {}, "Domain Names"), content);
  const problem = h("p", { class: "error", id: "error-domains", role: "alert" });
  content.append(addDomainCard(), problem,
    h("table", {},
      h("caption", {}, "The domains this node serves"),
      h("thead", {}, h("tr", {}, ["Domain Name", "Status", "Origins", "Created", "Actions"]
        .map((text) => h("th", { scope: "col" }, text)))),
      body));
  listDomains = async () => {
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
    body.replaceChildren(...domains.map((d) => domainRow(d, problem)));
  };
  await listDomains();
}

async function domainAction(action, domain, problem) {
  problem.textContent = "";
  try {
    await call(action, { DomainName: domain });
  } catch (error) {
    if (error.status !== 401) problem.textContent = `${domain}: ${failureText(error)}`;
    return;
  }
  await listDomains();
}

function domainRow(d, problem) {
  const readOnly = state.session.ReadOnly;
  const name = d.DomainName;
  const online = d.DomainStatus === "online";
  const actions = h("td", { class: "actions" });
  const normal = () => actions.replaceChildren(
    h("a", { href: `#/domain/${encodeURIComponent(name)}/video`, "aria-label": `Manage ${name}` }, "Manage"), " ",
    h("button", { type: "button", disabled: readOnly, "aria-label": `${online ? "Stop" : "Start"} ${name}`,
      onclick: () => domainAction(online ? "StopCdnDomain" : "StartCdnDomain", name, problem) },
      online ? "Stop" : "Start"), " ",
    h("button", { type: "button", disabled: readOnly, "aria-label": `Delete ${name}`, onclick: () => {
      const cancel = h("button", { type: "button", onclick: normal }, "Cancel");
      actions.replaceChildren(h("span", { role: "alert" }, `Delete ${name}? It stops being served. `),
        h("button", { type: "button", class: "primary", onclick: () => domainAction("DeleteCdnDomain", name, problem) },
          "Confirm Delete"), " ", cancel);
      cancel.focus();
    } }, "Delete"));
  normal();
  return h("tr", {},
    h("th", { scope: "row" }, name),
    h("td", { class: `status-${d.DomainStatus}` }, d.DomainStatus),
    h("td", {}, d.Sources.Source.map((s) => h("div", {}, `${s.Content}${s.Port ? ":" + s.Port : ""} (${s.Type})`))),
    h("td", {}, h("time", { datetime: d.GmtCreated }, d.GmtCreated)),
    actions);
}

// A function's form: an optional switch (argument "enable") and text, on/off or choice
// fields; it saves when the switch changes or on Save, Remove deletes the rule, and the
// API's error is shown beside the field its message names.
function functionCard(domain, spec, values, configId) {
  const readOnly = state.session.ReadOnly;
  const hasSwitch = spec.switch !== false;
  const errors = {};
  const inputs = {};
  const status = h("span", { class: "saved", role: "status", "aria-live": "polite" });
  const errorFor = (arg) => (errors[arg] = h("p", { class: "error", id: `error-${spec.name}-${arg}`, role: "alert" }));
  const switchId = `switch-${spec.name}`;
  const enabled = h("input", { type: "checkbox", role: "switch", id: switchId, name: "enable",
    checked: values.enable === "on", disabled: readOnly, "aria-describedby": `error-${spec.name}-enable` });
  inputs.enable = enabled;
  let savedOn = values.enable === "on";
  let savedId = configId;
  const switchState = h("span", { class: "switch-state", "aria-hidden": "true" }, values.enable === "on" ? "On" : "Off");
  const rows = spec.fields.map((field) => {
    const id = `${spec.name}-${field.arg}`;
    const common = { id, name: field.arg, disabled: readOnly, "aria-describedby": `error-${spec.name}-${field.arg} help-${id}` };
    let input;
    if (field.kind === "onoff") {
      input = h("input", { type: "checkbox", ...common, checked: (values[field.arg] ?? field.default) === "on" });
    } else if (field.choices) {
      input = h("select", common, field.choices.map((c) => h("option", { value: c,
        selected: (values[field.arg] ?? field.default) === c }, c)));
    } else {
      input = h("input", { type: "text", ...common, value: values[field.arg] ?? field.default ?? "", spellcheck: "false" });
    }
    inputs[field.arg] = input;
    return h("div", { class: "row" },
      h("label", { class: "field", for: id }, field.label), input,
      h("span", { class: "help", id: `help-${id}` }, field.kind === "onoff" ? "" : field.arg),
      errorFor(field.arg));
  });
  const clearErrors = () => {
    status.textContent = "";
    for (const [arg, el] of Object.entries(errors)) { el.textContent = ""; inputs[arg].removeAttribute("aria-invalid"); }
  };
  const showError = (error) => {
    // Beside the field the message names (the longest name first), else the switch.
    const named = Object.keys(errors).sort((a, b) => b.length - a.length)
      .find((arg) => arg !== "enable" && names(error.message, arg)) || "enable";
    errors[named].textContent = failureText(error);
    inputs[named].setAttribute("aria-invalid", "true");
  };
  const save = async () => {
    clearErrors();
    const args = hasSwitch ? [{ argName: "enable", argValue: enabled.checked ? "on" : "off" }] : [];
    for (const field of spec.fields) {
      const input = inputs[field.arg];
      const value = field.kind === "onoff" ? (input.checked ? "on" : "off") : input.value;
      if (field.kind === "onoff" || value !== "" || field.required) args.push({ argName: field.arg, argValue: value });
    }
    try {
      const answer = await call("BatchSetCdnDomainConfig", { DomainNames: domain,
        Functions: JSON.stringify([{ functionName: spec.name, functionArgs: args }]) });
      savedId = String(answer.DomainConfigList.DomainConfigModel[0].ConfigId);
      savedOn = enabled.checked;
      switchState.textContent = savedOn ? "On" : "Off";
      status.textContent = "Saved.";
    } catch (error) {
      if (error.status === 401) return;
      showError(error);
      enabled.checked = savedOn;  // the switch shows what is in force, not what failed
    }
  };
  const remove = async () => {
    clearErrors();
    if (!savedId) { status.textContent = "Not set."; return; }
    try {
      await call("DeleteSpecificConfig", { DomainName: domain, ConfigId: savedId });
    } catch (error) {
      if (error.status !== 401) showError(error);
      return;
    }
    savedId = undefined;
    status.textContent = "Removed.";
  };
  enabled.addEventListener("change", save);
  const form = h("form", { "aria-labelledby": `title-${spec.name}`, onsubmit: (event) => { event.preventDefault(); save(); } },
    hasSwitch ? h("div", { class: "row" },
      h("label", { class: "field", for: switchId }, spec.title), enabled, switchState, status,
      errorFor("enable")) : null,
    ...rows,
    spec.fields.length ? h("div", { class: "row" },
      h("button", { type: "submit", class: "primary", disabled: readOnly }, "Save"),
      hasSwitch ? null : h("button", { type: "button", disabled: readOnly, onclick: remove }, "Remove"),
      hasSwitch ? null : status,
      hasSwitch ? null : errorFor("enable")) : null);
  return h("section", { class: "card", id: `card-${spec.name}` },
    h("h3", { id: `title-${spec.name}` }, spec.title), h("p", { class: "help" }, spec.help), form);
}

const PAGES = {
  video: { title: "Video", functions: [
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
  ] },
  basic: { title: "Basic", origins: true, functions: [
    { name: "set_req_host_header", title: "Back-to-origin Host", switch: false,
      help: "The Host header sent to the origin (by default the requested domain).",
      fields: [{ arg: "domain_name", label: "Origin Host", required: true }] },
  ] },
  "access-control": { title: "Access Control", functions: [
    { name: "referer_white_list_set", title: "Referer Allow List", switch: false,
      help: "Only requests from these referers (comma-separated) are served.",
      fields: [
        { arg: "refer_domain_allow_list", label: "Allowed referers", required: true },
        { arg: "allow_empty", label: "Allow an empty Referer", kind: "onoff", default: "off" },
      ] },
    { name: "ip_black_list_set", title: "IP Block List", switch: false,
      help: "Requests from these addresses or networks (comma-separated) are refused.",
      fields: [{ arg: "ip_list", label: "Blocked IP addresses", required: true }] },
    { name: "aliauth", title: "URL Signing", switch: false,
      help: "Requests must carry a signature made with one of these keys.",
      fields: [
        { arg: "auth_type", label: "Signing type", choices: ["type_a", "type_b", "type_c", "type_f"], default: "type_a" },
        { arg: "auth_key1", label: "Primary key" },
        { arg: "auth_key2", label: "Secondary key" },
        { arg: "ali_auth_delta", label: "Validity (seconds)", default: "1800" },
      ] },
  ] },
  cache: { title: "Cache", ttlRules: true, functions: [
    { name: "set_hashkey_args", title: "Cache Key Parameters", switch: false,
      help: "Only these query parameters (comma-separated) are kept in the cache key.",
      fields: [{ arg: "hashkey_args", label: "Kept parameters" }] },
  ] },
  https: { title: "HTTPS", certificate: true, functions: [
    { name: "https_force", title: "Force HTTPS",
      help: "Plain HTTP requests are redirected to HTTPS.",
      fields: [{ arg: "https_rewrite", label: "Redirect status", choices: ["301", "302", "307", "308"], default: "301" }] },
  ] },
};

const TTL_KINDS = { path_based_ttl_set: ["Directory", "path"], filetype_based_ttl_set: ["File type", "file_type"] };

// The TTL rules (repeatable): the list with Remove on each, and a form adding one.
function ttlCard(domain, configs) {
  const readOnly = state.session.ReadOnly;
  const body = h("tbody", {});
  const problem = h("p", { class: "error", id: "error-ttl", role: "alert" });
  const status = h("span", { class: "saved", role: "status", "aria-live": "polite" });
  const kind = h("select", { id: "ttl-kind", disabled: readOnly },
    Object.entries(TTL_KINDS).map(([name, [label]]) => h("option", { value: name }, label)));
  const [valueRow, value, valueBox] = textField("ttl-value", "Directory or file types", { placeholder: "/videos or mp4,flv" });
  const [ttlRow, ttl, ttlBox] = textField("ttl-seconds", "TTL (seconds)", { inputmode: "numeric" });
  const fields = { path: { input: value, box: valueBox }, file_type: { input: value, box: valueBox },
    ttl: { input: ttl, box: ttlBox } };
  const rows = (list) => body.replaceChildren(...(list.length ? list.map((c) => {
    const args = Object.fromEntries(c.FunctionArgs.FunctionArg.map((a) => [a.ArgName, a.ArgValue]));
    const [label, arg] = TTL_KINDS[c.FunctionName];
    return h("tr", {}, h("td", {}, label), h("th", { scope: "row" }, args[arg]), h("td", {}, args.ttl),
      h("td", {}, h("button", { type: "button", disabled: readOnly, "aria-label": `Remove ${args[arg]}`,
        onclick: async () => {
          try { await call("DeleteSpecificConfig", { DomainName: domain, ConfigId: c.ConfigId }); }
          catch (error) { if (error.status !== 401) problem.textContent = failureText(error); return; }
          await reload();
        } }, "Remove")));
  }) : [h("tr", {}, h("td", { colspan: "4" }, "No TTL rule: the origin's headers decide."))]));
  const reload = async () => {
    let answer;
    try {
      answer = await call("DescribeCdnDomainConfigs", { DomainName: domain, FunctionNames: Object.keys(TTL_KINDS).join(",") });
    } catch (error) { if (error.status !== 401) problem.textContent = failureText(error); return; }
    rows(answer.DomainConfigs.DomainConfig);
  };
  rows(configs);
  const form = h("form", { "aria-labelledby": "title-ttl", onsubmit: async (event) => {
    event.preventDefault();
    status.textContent = "";
    const args = [{ argName: TTL_KINDS[kind.value][1], argValue: value.value.trim() }, { argName: "ttl", argValue: ttl.value.trim() }];
    try {
      await call("BatchSetCdnDomainConfig", { DomainNames: domain,
        Functions: JSON.stringify([{ functionName: kind.value, functionArgs: args }]) });
    } catch (error) { if (error.status !== 401) placeError(error, fields, problem); return; }
    placeError(null, fields, problem);
    status.textContent = "Added.";
    value.value = ""; ttl.value = "";
    await reload();
  } },
    h("div", { class: "row" }, h("label", { class: "field", for: "ttl-kind" }, "Rule for"), kind),
    valueRow, ttlRow,
    h("div", { class: "row" }, h("button", { type: "submit", class: "primary", disabled: readOnly }, "Add TTL Rule"), status, problem));
  return h("section", { class: "card", id: "card-ttl" },
    h("h3", { id: "title-ttl" }, "TTL Rules"),
    h("p", { class: "help" }, "How long objects are cached, by directory or by file type."),
    h("table", {}, h("caption", {}, "The domain's TTL rules"),
      h("thead", {}, h("tr", {}, ["Rule for", "Directory or file types", "TTL (seconds)", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
      body),
    form);
}

// The domain's origin servers: shown, and replaced by one (ModifyCdnDomain).
async function originsCard(domain) {
  const readOnly = state.session.ReadOnly;
  const list = h("ul", { class: "origins" });
  const general = h("p", { class: "error", id: "error-origins", role: "alert" });
  const status = h("span", { class: "saved", role: "status", "aria-live": "polite" });
  const [originRow, origin, originBox] = textField("origin-content", "Origin", { placeholder: "10.0.0.5 or origin.example.com" });
  const [portRow, port, portBox] = textField("origin-port", "Port", { value: "80", inputmode: "numeric" });
  const fields = { Sources: { input: origin, box: originBox }, port: { input: port, box: portBox } };
  const show = async () => {
    let answer;
    try {
      answer = await call("DescribeCdnDomainDetail", { DomainName: domain });
    } catch (error) { if (error.status !== 401) general.textContent = failureText(error); return; }
    const sources = answer.GetDomainDetailModel.SourceModels.SourceModel;
    list.replaceChildren(...sources.map((s) => h("li", {}, `${s.Content}${s.Port ? ":" + s.Port : ""} (${s.Type}, priority ${s.Priority})`)));
  };
  const form = h("form", { "aria-labelledby": "title-origins", onsubmit: async (event) => {
    event.preventDefault();
    status.textContent = "";
    const isIp = /^[0-9.]+$|:/.test(origin.value.trim());
    const sources = [{ content: origin.value.trim(), type: isIp ? "ipaddr" : "domain", port: Number(port.value) || port.value }];
    try {
      await call("ModifyCdnDomain", { DomainName: domain, Sources: JSON.stringify(sources) });
    } catch (error) { if (error.status !== 401) placeError(error, fields, general); return; }
    placeError(null, fields, general);
    status.textContent = "Saved.";
    await show();
  } },
    originRow, portRow,
    h("div", { class: "row" }, h("button", { type: "submit", class: "primary", disabled: readOnly }, "Save Origin"), status, general));
  await show();
  return h("section", { class: "card", id: "card-origins" },
    h("h3", { id: "title-origins" }, "Origins"),
    h("p", { class: "help" }, "Where this domain's files are fetched from. Saving replaces them with the one below."),
    list, form);
}

// The domain's certificate: what is in force, and an upload (PEM text or files). The
// private key leaves the page with the upload and is not kept in it.
async function certificateCard(domain) {
  const readOnly = state.session.ReadOnly;
  const info = h("dl", { class: "cert" });
  const status = h("span", { class: "saved", role: "status", "aria-live": "polite" });
  const general = h("p", { class: "error", id: "error-certificate", role: "alert" });
  const area = (id, label, help) => {
    const box = h("p", { class: "error", id: `error-${id}`, role: "alert" });
    const input = h("textarea", { id, rows: "4", cols: "64", spellcheck: "false", disabled: readOnly,
      "aria-describedby": `error-${id}`, placeholder: help });
    const file = h("input", { type: "file", id: `${id}-file`, accept: ".pem,.crt,.key,.cer", disabled: readOnly,
      "aria-label": `${label} file`, onchange: async () => { if (file.files[0]) input.value = await file.files[0].text(); } });
    return [h("div", { class: "row" }, h("label", { class: "field", for: id }, label), input, file, box), input, box];
  };
  const [pubRow, pub, pubBox] = area("ssl-pub", "Certificate (PEM)", "-----BEGIN CERTIFICATE-----");
  const [priRow, pri, priBox] = area("ssl-pri", "Private Key (PEM)", "-----BEGIN PRIVATE KEY-----");
  const fields = { SSLPub: { input: pub, box: pubBox }, SSLPri: { input: pri, box: priBox },
    certificate: { input: pub, box: pubBox }, "private key": { input: pri, box: priBox } };
  const show = async () => {
    let answer;
    try {
      answer = await call("DescribeDomainCertificateInfo", { DomainName: domain });
    } catch (error) {
      if (error.status !== 401) general.textContent = failureText(error);
      return;
    }
    const cert = answer.CertInfos.CertInfo[0] || {};
    const item = (term, value) => [h("dt", {}, term), h("dd", {}, value || "-")];
    info.replaceChildren(...item("HTTPS", cert.ServerCertificateStatus),
      ...item("Certificate names", cert.CertDomainName), ...item("Expires", cert.CertExpireTime));
  };
  const set = async (protocol) => {
    status.textContent = "";
    const params = { DomainName: domain, SSLProtocol: protocol };
    if (protocol === "on") Object.assign(params, { CertType: "upload", SSLPub: pub.value, SSLPri: pri.value });
    try {
      await call("SetCdnDomainSSLCertificate", params);
    } catch (error) {
      if (error.status !== 401) placeError(error, fields, general);
      return;
    }
    placeError(null, fields, general);
    pri.value = "";
    status.textContent = protocol === "on" ? "Certificate uploaded." : "HTTPS is off.";
    await show();
  };
  await show();
  return h("section", { class: "card", id: "card-certificate" },
    h("h3", {}, "HTTPS Certificate"), h("p", { class: "help" }, "The certificate and key this domain is served with over TLS."),
    info, pubRow, priRow,
    h("div", { class: "row" },
      h("button", { type: "button", class: "primary", disabled: readOnly, onclick: () => set("on") }, "Upload Certificate"),
      h("button", { type: "button", disabled: readOnly, onclick: () => set("off") }, "Turn HTTPS Off"),
      status, general));
}

async function showDomain(domain, pageName) {
  const page = PAGES[pageName] || PAGES.video;
  document.title = `${page.title} - ${domain} - vodedge console`;
  const pane = h("div", {}, h("p", {}, "Loading…"));
  const here = `#/domain/${encodeURIComponent(domain)}/`;
  shell("domains",
    h("p", { class: "crumbs" }, h("a", { href: "#/domains" }, "Domain Names"), " / ", domain),
    h("h1", {}, domain),
    h("div", { class: "domain" },
      h("nav", { class: "side", "aria-label": "Domain settings" },
        h("ul", {}, ["basic", "cache", "video", "access-control", "https"].map((name) => h("li", {},
          h("a", { href: here + name, "aria-current": PAGES[name] === page ? "page" : null }, PAGES[name].title))))),
      pane));
  let answer;
  const wanted = page.functions.map((f) => f.name).concat(page.ttlRules ? Object.keys(TTL_KINDS) : []);
  try {
    answer = await call("DescribeCdnDomainConfigs", { DomainName: domain, FunctionNames: wanted.join(",") });
  } catch (error) {
    if (error.status !== 401) pane.replaceChildren(h("p", { class: "error", role: "alert" }, failureText(error)));
    return;
  }
  const values = {};
  const ids = {};
  for (const config of answer.DomainConfigs.DomainConfig) {
    ids[config.FunctionName] = config.ConfigId;
    values[config.FunctionName] = Object.fromEntries(
      config.FunctionArgs.FunctionArg.map((a) => [a.ArgName, a.ArgValue]));
  }
  pane.replaceChildren(h("div", {},
    h("h2", {}, page.title),
    state.session.ReadOnly ? h("p", { class: "note" }, "This AccessKey is read-only: you can see the settings but not change them.") : null,
    page.origins ? await originsCard(domain) : null,
    page.certificate ? await certificateCard(domain) : null,
    page.ttlRules ? ttlCard(domain, answer.DomainConfigs.DomainConfig.filter((c) => c.FunctionName in TTL_KINDS)) : null,
    page.functions.map((spec) => functionCard(domain, spec, values[spec.name] || {}, ids[spec.name]))));
}

let taskPoll = null;

async function showRefresh() {
  document.title = "Refresh and Prefetch - vodedge console";
  const readOnly = state.session.ReadOnly;
  const box = h("p", { class: "error", id: "error-object-path", role: "alert" });
  const urls = h("textarea", { id: "object-path", rows: "5", cols: "70", spellcheck: "false",
    "aria-describedby": "error-object-path help-object-path", disabled: readOnly,
    placeholder: "video.example.com/v/talk.mp4" });
  const kind = (value, label, checked) => h("label", {},
    h("input", { type: "radio", name: "object-type", value, checked, disabled: readOnly }), ` ${label}`);
  const status = h("span", { class: "saved", role: "status", "aria-live": "polite" });
  const tasks = h("tbody", {});
  // An unknown domain's error names no parameter, but it is the URLs' too.
  const fields = { ObjectPath: { input: urls, box }, "The domain": { input: urls, box } };
  const general = h("p", { class: "error", id: "error-refresh", role: "alert" });
  const submit = async (action) => {
    status.textContent = "";
    const params = { ObjectPath: urls.value };
    if (action === "RefreshObjectCaches") {
      params.ObjectType = document.querySelector("input[name=object-type]:checked").value;
    }
    let answer;
    try {
      answer = await call(action, params);
    } catch (error) {
      if (error.status !== 401) placeError(error, fields, general);
      return;
    }
    placeError(null, fields, general);
    status.textContent = `Submitted: task ${answer.RefreshTaskId || answer.PushTaskId}.`;
    await listTasks(20);
  };
  shell("refresh", h("h1", {}, "Refresh and Prefetch"),
    h("section", { class: "card" },
      h("h3", {}, "Submit URLs"),
      h("p", { class: "help", id: "help-object-path" },
        "One URL or directory per line. Refresh drops them from the cache; Prefetch fetches them into it."),
      h("div", { class: "row" }, h("label", { class: "field", for: "object-path" }, "URLs"), urls, box),
      h("fieldset", { class: "row" }, h("legend", {}, "Refresh by"), kind("File", "File", true), kind("Directory", "Directory", false)),
      h("div", { class: "row" },
        h("button", { type: "button", class: "primary", disabled: readOnly, onclick: () => submit("RefreshObjectCaches") }, "Submit Refresh"),
        h("button", { type: "button", disabled: readOnly, onclick: () => submit("PushObjectCache") }, "Submit Prefetch"),
        status, general)),
    h("h2", {}, "Tasks"),
    h("table", {},
      h("caption", {}, "The latest refresh and prefetch tasks"),
      h("thead", {}, h("tr", {}, ["Task ID", "URL", "Type", "Status", "Progress", "Created"]
        .map((text) => h("th", { scope: "col" }, text)))),
      tasks));
  // Until every task shown is done, look again every second (a bounded number of times).
  const listTasks = async (polls) => {
    clearTimeout(taskPoll);
    let answer;
    try {
      answer = await call("DescribeRefreshTasks", { PageSize: "50" });
    } catch (error) {
      if (error.status !== 401) general.textContent = failureText(error);
      return;
    }
    const list = answer.Tasks.CDNTask;
    tasks.replaceChildren(...(list.length ? list.map((t) => h("tr", {},
      h("th", { scope: "row" }, t.TaskId), h("td", {}, t.ObjectPath), h("td", {}, t.ObjectType),
      h("td", { class: `task-${t.Status}` }, t.Status), h("td", {}, t.Process),
      h("td", {}, h("time", { datetime: t.CreationTime }, t.CreationTime))))
      : [h("tr", {}, h("td", { colspan: "6" }, "No task yet."))]));
    if (polls > 0 && list.some((t) => t.Status === "Refreshing") && location.hash === "#/refresh") {
      taskPoll = setTimeout(() => listTasks(polls - 1), 1000);
    }
  };
  await listTasks(20);
}

function render() {
  if (!state.session) { showLogon(); return; }
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  if (parts[0] === "domain" && parts[1]) showDomain(decodeURIComponent(parts[1]), parts[2]);
  else if (parts[0] === "refresh") showRefresh();
  else showDomains();
}

window.addEventListener("hashchange", render);

(async () => {
  const response = await fetch("/console/api/session", { credentials: "same-origin" });
  if (response.status === 200) state.session = await response.json();
  render();
})();
