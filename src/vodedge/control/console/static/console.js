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
          link("#/refresh", "Refresh and Prefetch", "refresh"),
          link("#/usage", "Usage", "usage"))),
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
  const body = h("tbody", {}, h("tr", {}, h("td", { colspan: "6" }, "Loading…")));
  const content = h("div", {});
  shell("domains", h("h1", {}, "Domain Names"), content);
  const problem = h("p", { class: "error", id: "error-domains", role: "alert" });
  content.append(addDomainCard(), problem,
    h("table", {},
      h("caption", {}, "The domains this node serves"),
      h("thead", {}, h("tr", {}, ["Domain Name", "CNAME (node address)", "Status", "Origins", "Created", "Actions"]
        .map((text) => h("th", { scope: "col" }, text)))),
      body));
  listDomains = async () => {
    let answer;
    try {
      answer = await call("DescribeUserDomains", { PageSize: "500" });
    } catch (error) {
      if (error.status !== 401) body.replaceChildren(h("tr", {}, h("td", { colspan: "6", class: "error", role: "alert" }, failureText(error))));
      return;
    }
    const domains = answer.Domains.PageData;
    if (!domains.length) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: "6" }, "No domain yet.")));
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
    h("a", { href: `#/usage/${encodeURIComponent(name)}/hour`, "aria-label": `Usage of ${name}` }, "Usage"), " ",
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
    h("td", { class: "cname" }, h("code", {}, d.Cname || "-")),
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
    { name: "referer_black_list_set", title: "Referer Deny List", switch: false,
      help: "Requests from these referers (comma-separated) are refused (an allow list and a deny list exclude each other).",
      fields: [
        { arg: "refer_domain_deny_list", label: "Denied referers", required: true },
        { arg: "allow_empty", label: "Allow an empty Referer", kind: "onoff", default: "on" },
      ] },
    { name: "ip_black_list_set", title: "IP Block List", switch: false,
      help: "Requests from these addresses or networks (comma-separated) are refused.",
      fields: [{ arg: "ip_list", label: "Blocked IP addresses", required: true }] },
    { name: "ip_white_list_set", title: "IP Allow List", switch: false,
      help: "Only requests from these addresses or networks (comma-separated) are served (excludes the block list).",
      fields: [{ arg: "ip_list", label: "Allowed IP addresses", required: true }] },
    { name: "aliauth", title: "URL Signing", switch: false,
      help: "Requests must carry a signature made with one of these keys.",
      fields: [
        { arg: "auth_type", label: "Signing type", choices: ["type_a", "type_b", "type_c", "type_f"], default: "type_a" },
        { arg: "auth_key1", label: "Primary key" },
        { arg: "auth_key2", label: "Secondary key" },
        { arg: "ali_auth_delta", label: "Validity (seconds)", default: "1800" },
        { arg: "sign_param", label: "Signature parameter (type F)", default: "sign" },
        { arg: "time_param", label: "Time parameter (type F)", default: "time" },
      ] },
  ] },
  cache: { title: "Cache", ttlRules: true, functions: [
    { name: "set_hashkey_args", title: "Cache Key Parameters", switch: false,
      help: "Only these query parameters (comma-separated) are kept in the cache key.",
      fields: [
        { arg: "hashkey_args", label: "Kept parameters" },
        { arg: "disable", label: "Ignore all parameters", kind: "onoff", default: "off" },
        { arg: "keep_oss_args", label: "Send every parameter to the origin", kind: "onoff", default: "off" },
      ] },
    { name: "ali_remove_args", title: "Removed Parameters", switch: false,
      help: "These query parameters (space-separated) are left out of the cache key and the origin request (kept and removed parameters exclude each other).",
      fields: [
        { arg: "ali_remove_args", label: "Removed parameters", required: true },
        { arg: "keep_oss_args", label: "Send them to the origin anyway", kind: "onoff", default: "off" },
      ] },
  ] },
  https: { title: "HTTPS", certificate: true, functions: [
    { name: "https_force", title: "Force HTTPS",
      help: "Plain HTTP requests are redirected to HTTPS.",
      fields: [{ arg: "https_rewrite", label: "Redirect status", choices: ["301", "302", "307", "308"], default: "301" }] },
  ] },
};

const TTL_KINDS = { path_based_ttl_set: ["Directory", "path"], filetype_based_ttl_set: ["File type", "file_type"] };
const TTL_OPTIONS = [
  ["swift_origin_cache_high", "Origin cache headers first"],
  ["swift_no_cache_low", "Cache despite no-cache from the origin"],
  ["swift_follow_cachetime", "Clients keep it as long as the node does"],
  ["force_revalidate", "Revalidate every time (TTL 0)"],
];

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
  const [weightRow, weight, weightBox] = textField("ttl-weight", "Weight (1-99, higher wins)", { inputmode: "numeric", value: "1" });
  const options = TTL_OPTIONS.map(([arg, label]) => [arg, label, h("input", { type: "checkbox", id: `ttl-${arg}`, disabled: readOnly })]);
  const fields = { path: { input: value, box: valueBox }, file_type: { input: value, box: valueBox },
    ttl: { input: ttl, box: ttlBox }, weight: { input: weight, box: weightBox } };
  const rows = (list) => body.replaceChildren(...(list.length ? list.map((c) => {
    const args = Object.fromEntries(c.FunctionArgs.FunctionArg.map((a) => [a.ArgName, a.ArgValue]));
    const [label, arg] = TTL_KINDS[c.FunctionName];
    const chosen = TTL_OPTIONS.filter(([name]) => args[name] === "on").map(([, text]) => text);
    return h("tr", {}, h("td", {}, label), h("th", { scope: "row" }, args[arg]), h("td", {}, args.ttl),
      h("td", {}, args.weight || "1"), h("td", {}, chosen.length ? chosen.join("; ") : "-"),
      h("td", {}, h("button", { type: "button", disabled: readOnly, "aria-label": `Remove ${args[arg]}`,
        onclick: async () => {
          try { await call("DeleteSpecificConfig", { DomainName: domain, ConfigId: c.ConfigId }); }
          catch (error) { if (error.status !== 401) problem.textContent = failureText(error); return; }
          await reload();
        } }, "Remove")));
  }) : [h("tr", {}, h("td", { colspan: "6" }, "No TTL rule: the origin's headers decide."))]));
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
    const args = [{ argName: TTL_KINDS[kind.value][1], argValue: value.value.trim() }, { argName: "ttl", argValue: ttl.value.trim() },
      { argName: "weight", argValue: weight.value.trim() },
      ...options.map(([arg, , box]) => ({ argName: arg, argValue: box.checked ? "on" : "off" }))];
    try {
      await call("BatchSetCdnDomainConfig", { DomainNames: domain,
        Functions: JSON.stringify([{ functionName: kind.value, functionArgs: args }]) });
    } catch (error) { if (error.status !== 401) placeError(error, fields, problem); return; }
    placeError(null, fields, problem);
    status.textContent = "Added.";
    value.value = ""; ttl.value = ""; weight.value = "1";
    for (const [, , box] of options) box.checked = false;
    await reload();
  } },
    h("div", { class: "row" }, h("label", { class: "field", for: "ttl-kind" }, "Rule for"), kind),
    valueRow, ttlRow, weightRow,
    h("fieldset", { class: "row" }, h("legend", {}, "Options"),
      options.map(([arg, label, box]) => h("label", { for: `ttl-${arg}` }, box, ` ${label}`))),
    h("div", { class: "row" }, h("button", { type: "submit", class: "primary", disabled: readOnly }, "Add TTL Rule"), status, problem));
  return h("section", { class: "card", id: "card-ttl" },
    h("h3", { id: "title-ttl" }, "TTL Rules"),
    h("p", { class: "help" }, "How long objects are cached, by directory or by file type."),
    h("table", {}, h("caption", {}, "The domain's TTL rules"),
      h("thead", {}, h("tr", {}, ["Rule for", "Directory or file types", "TTL (seconds)", "Weight", "Options", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
      body),
    form);
}

// The domain's origin servers: each a row (address, port, priority, weight), rows added
// and removed, all saved at once (ModifyCdnDomain); the API's error goes beside the field
// of the row it names.
const PRIORITIES = [["20", "Primary"], ["30", "Backup"]];

async function originsCard(domain) {
  const readOnly = state.session.ReadOnly;
  const list = h("ul", { class: "origins" });
  const rowsBox = h("div", { class: "origin-rows" });
  const general = h("p", { class: "error", id: "error-origins", role: "alert" });
  const status = h("span", { class: "saved", role: "status", "aria-live": "polite" });
  let rows = [];
  const field = (row, key, label, input) => {
    const id = `origin-${row.n}-${key}`;
    const box = h("p", { class: "error", id: `error-${id}`, role: "alert" });
    input.id = id;
    input.setAttribute("aria-describedby", `error-${id}`);
    if (readOnly) input.disabled = true;
    row[key] = { input, box };
    return h("div", { class: "cell" }, h("label", { for: id }, label), input, box);
  };
  const renumber = () => rows.forEach((row, i) => { row.legend.textContent = `Origin ${i + 1}`; });
  const addRow = (source) => {
    // A parent node (vodedge) or a bucket (oss) keeps its kind; others go by the address.
    const row = { n: rows.length ? Math.max(...rows.map((r) => r.n)) + 1 : 1,
      kind: ["vodedge", "oss"].includes(source.Type) ? source.Type : null };
    const content = h("input", { type: "text", spellcheck: "false", value: source.Content || "",
      placeholder: "10.0.0.5 or origin.example.com" });
    const port = h("input", { type: "text", inputmode: "numeric", size: "6", value: String(source.Port || 80) });
    const priority = h("select", {}, PRIORITIES.map(([value, text]) =>
      h("option", { value, selected: String(source.Priority || "20") === value }, text)));
    const weight = h("input", { type: "text", inputmode: "numeric", size: "4", value: String(source.Weight || 10) });
    row.legend = h("legend", {}, "Origin");
    row.element = h("fieldset", { class: "origin-row" }, row.legend,
      field(row, "content", "Address", content), field(row, "port", "Port", port),
      field(row, "priority", "Priority", priority), field(row, "weight", "Weight", weight),
      h("button", { type: "button", disabled: readOnly, onclick: () => {
        rows = rows.filter((r) => r !== row);
        row.element.remove();
        renumber();
        (rows[0] ? rows[0].content.input : addButton).focus();
      } }, "Remove"));
    rows.push(row);
    rowsBox.append(row.element);
    renumber();
    return row;
  };
  const addButton = h("button", { type: "button", disabled: readOnly, onclick: () => addRow({}).content.input.focus() }, "Add Origin");
  const clear = () => {
    general.textContent = "";
    for (const row of rows) for (const key of ["content", "port", "priority", "weight"]) {
      row[key].box.textContent = ""; row[key].input.removeAttribute("aria-invalid");
    }
  };
  // The field an error is about: the key it names (port, priority, weight) in the row
  // whose value it quotes, else the address it quotes; else the list as a whole.
  const fieldOf = (message) => {
    const got = (message.match(/got (.*)$/) || [])[1] || "";
    for (const key of ["port", "priority", "weight"]) {
      if (names(message, key)) return (rows.find((r) => got.includes(r[key].input.value)) || rows[0])[key];
    }
    const row = rows.find((r) => r.content.input.value.trim() && message.includes(r.content.input.value.trim()));
    return row ? row.content : null;
  };
  const show = async () => {
    let answer;
    try {
      answer = await call("DescribeCdnDomainDetail", { DomainName: domain });
    } catch (error) { if (error.status !== 401) general.textContent = failureText(error); return; }
    const sources = answer.GetDomainDetailModel.SourceModels.SourceModel;
    list.replaceChildren(...sources.map((s) => h("li", {},
      `${s.Content}${s.Port ? ":" + s.Port : ""} (${s.Type}, ${s.Priority === "20" ? "primary" : s.Priority === "30" ? "backup" : "priority " + s.Priority}, weight ${s.Weight})`)));
    rows = [];
    rowsBox.replaceChildren();
    for (const source of sources) addRow(source);
    if (!sources.length) addRow({});
  };
  const form = h("form", { "aria-labelledby": "title-origins", onsubmit: async (event) => {
    event.preventDefault();
    clear();
    status.textContent = "";
    const number = (text) => (/^[0-9]+$/.test(text.trim()) ? Number(text.trim()) : text.trim());
    const sources = rows.map((r) => {
      const content = r.content.input.value.trim();
      return { content, type: r.kind || (/^[0-9.]+$|:/.test(content) ? "ipaddr" : "domain"), port: number(r.port.input.value),
        priority: r.priority.input.value, weight: number(r.weight.input.value) };
    });
    try {
      await call("ModifyCdnDomain", { DomainName: domain, Sources: JSON.stringify(sources) });
    } catch (error) {
      if (error.status === 401) return;
      const target = rows.length ? fieldOf(error.message) : null;
      if (target) {
        target.box.textContent = failureText(error);
        target.input.setAttribute("aria-invalid", "true");
        target.input.focus();
      } else {
        general.textContent = failureText(error);
      }
      return;
    }
    status.textContent = "Saved.";
    await show();
  } },
    rowsBox,
    h("div", { class: "row" }, addButton,
      h("button", { type: "submit", class: "primary", disabled: readOnly }, "Save Origins"), status, general));
  await show();
  return h("section", { class: "card", id: "card-origins" },
    h("h3", { id: "title-origins" }, "Origins"),
    h("p", { class: "help" }, "Where this domain's files are fetched from: primary origins first, backups when they fail; weights are kept with them."),
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
          h("a", { href: here + name, "aria-current": PAGES[name] === page ? "page" : null }, PAGES[name].title))),
          h("li", {}, h("a", { href: `#/usage/${encodeURIComponent(domain)}/hour` }, "Usage")))),
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

// --- Usage: the node's (or fleet's) counters per domain, as charts with table twins ---

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, value);
  for (const child of children.flat()) if (child !== null && child !== undefined) el.append(child);
  return el;
}

const PERIODS = {
  hour: { label: "Last hour", seconds: 3600, interval: 60, per: "minute" },
  day: { label: "Last day", seconds: 86400, interval: 300, per: "5 minutes" },
};
const FUNCTION_SERIES = [
  { key: "PlainRequests", label: "Plain", cls: "plain" },
  { key: "AudioOnlyRequests", label: "Audio only", cls: "audio" },
  { key: "AudioSeekRequests", label: "Audio + seek", cls: "audioseek" },
  { key: "SeekRequests", label: "Seek", cls: "seek" },
  { key: "PreviewRequests", label: "Preview", cls: "preview" },
];

function bytesText(n) {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let value = n, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return unit === 0 ? `${n} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}
const countText = (n) => String(n);
const ratioText = (hits, lookups) => lookups ? `${(100 * hits / lookups).toFixed(1)}%` : "–";
const clock = (stamp) => stamp.slice(11, 16);
const utcTime = (date) => date.toISOString().replace(/\.\d{3}Z$/, "Z");

// A bar chart of `points` (stacked `series`), with a summary for screen readers and
// the same numbers as a table.
function barChart(id, title, points, series, format, period, max, overall) {
  const width = 760, height = 170, left = 76, bottom = 22, top = 8;
  const totals = points.map((p) => series.reduce((sum, s) => sum + (p[s.key] || 0), 0));
  const peak = Math.max(0, ...totals.filter((t) => t !== null));
  const scale = max || peak || 1;
  const slot = (width - left) / Math.max(points.length, 1);
  const bars = points.map((p, i) => {
    let y = height - bottom;
    const parts = series.map((s) => {
      const value = p[s.key] || 0;
      const h = (value / scale) * (height - bottom - top);
      y -= h;
      return value > 0 ? svg("rect", { x: (left + i * slot).toFixed(1), y: y.toFixed(1),
        width: Math.max(slot - 1, 1).toFixed(1), height: Math.max(h, 0.5).toFixed(1), class: `bar-${s.cls}` }) : null;
    });
    const tip = `${clock(p.TimeStamp)} UTC: ` + series.map((s) => `${s.label} ${format(p[s.key] || 0)}`).join(", ");
    return svg("g", {}, svg("title", {}, tip), ...parts);
  });
  const whole = totals.reduce((a, b) => a + b, 0);
  const peakAt = points[totals.indexOf(peak)];
  const summary = points.length
    ? `${title}, ${period.label.toLowerCase()}, per ${period.per}: ${overall || `total ${format(whole)}`}, peak ${format(peak)}` +
      (peak > 0 && peakAt ? ` at ${clock(peakAt.TimeStamp)} UTC` : "")
    : `${title}: no data`;
  const axis = [
    svg("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, class: "axis" }),
    svg("text", { x: left - 6, y: top + 10, "text-anchor": "end", class: "tick" }, format(scale)),
    svg("text", { x: left - 6, y: height - bottom, "text-anchor": "end", class: "tick" }, format(0)),
  ];
  if (points.length) {
    const ends = [[0, "start"], [Math.floor(points.length / 2), "middle"], [points.length - 1, "end"]];
    for (const [i, anchor] of ends) {
      const x = anchor === "start" ? left + i * slot : anchor === "end" ? left + (i + 1) * slot : left + (i + 0.5) * slot;
      // Over a day, a time alone is ambiguous: the date goes with it.
      const stamp = points[i].TimeStamp;
      const text = period.seconds > 3600 ? `${stamp.slice(5, 10)} ${clock(stamp)}` : clock(stamp);
      axis.push(svg("text", { x: x.toFixed(1), y: height - 6, "text-anchor": anchor, class: "tick" }, text));
    }
  }
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": `${id}-summary`,
    class: "chart", id: `${id}-chart` }, ...axis, ...bars);
  const legend = series.length > 1 ? h("ul", { class: "legend", "aria-hidden": "true" },
    series.map((s) => h("li", {}, h("span", { class: `swatch bar-${s.cls}` }), s.label))) : null;
  const rows = points.filter((p, i) => totals[i] > 0).map((p) => h("tr", {},
    h("th", { scope: "row" }, h("time", { datetime: p.TimeStamp }, `${clock(p.TimeStamp)} UTC`)),
    series.map((s) => h("td", {}, format(p[s.key] || 0)))));
  return h("figure", { class: "card chart-card", id },
    h("figcaption", {}, h("h3", {}, title), h("p", { class: "help", id: `${id}-summary` }, summary)),
    chart, legend,
    h("details", {}, h("summary", {}, `${title}: the numbers`),
      h("table", {}, h("caption", {}, `${title} per ${period.per} (intervals with none are left out)`),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Time"), series.map((s) => h("th", { scope: "col" }, s.label)))),
        h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: String(series.length + 1) }, "None."))))));
}

async function showUsage(domain, periodName) {
  const period = PERIODS[periodName] || PERIODS.hour;
  document.title = "Usage - vodedge console";
  const pane = h("div", { id: "usage-charts", "aria-live": "polite" }, h("p", {}, "Loading…"));
  const problem = h("p", { class: "error", id: "error-usage", role: "alert" });
  const select = h("select", { id: "usage-domain" }, h("option", { value: "" }, "All domains"));
  const go = (d, p) => { location.hash = `#/usage/${encodeURIComponent(d)}/${p}`; };
  select.addEventListener("change", () => go(select.value, periodName || "hour"));
  const choice = (name) => h("label", { for: `usage-period-${name}` }, h("input", { type: "radio",
    id: `usage-period-${name}`, name: "usage-period", value: name, checked: period === PERIODS[name],
    onchange: () => go(select.value, name) }), ` ${PERIODS[name].label}`);
  shell("usage", h("h1", {}, "Usage"),
    h("p", { class: "help" }, "What this node served (on a fleet: every node together), from its own counters, sampled once a minute."),
    h("div", { class: "row" }, h("label", { class: "field", for: "usage-domain" }, "Domain"), select,
      h("fieldset", { class: "row periods" }, h("legend", {}, "Period"), choice("hour"), choice("day")),
      h("button", { type: "button", onclick: () => showUsage(domain, periodName) }, "Refresh")),
    problem, pane);
  try {
    const domains = (await call("DescribeUserDomains", { PageSize: "500" })).Domains.PageData;
    for (const d of domains) select.append(h("option", { value: d.DomainName, selected: d.DomainName === domain }, d.DomainName));
  } catch (error) { if (error.status !== 401) problem.textContent = failureText(error); return; }
  // The end is exclusive and in whole seconds: a second on, so the current minute counts.
  const end = new Date(Date.now() + 1000);
  const params = { StartTime: utcTime(new Date(end - period.seconds * 1000)), EndTime: utcTime(end),
    Interval: String(period.interval) };
  if (domain) params.DomainName = domain;
  let answer;
  try {
    answer = await call("DescribeDomainVideoUsageData", params);
  } catch (error) { if (error.status !== 401) problem.textContent = failureText(error); return; }
  const points = answer.VideoUsageDataPerInterval.DataModule;
  const nodes = answer.Nodes ? answer.Nodes.Node : [];
  const sum = (key) => points.reduce((total, p) => total + (p[key] || 0), 0);
  const ratios = points.map((p) => ({ TimeStamp: p.TimeStamp,
    HitRatio: p.CacheLookups ? Math.round(1000 * p.CacheHits / p.CacheLookups) / 10 : 0 }));
  const total = (id, label, value) => h("div", { class: "tile" }, h("dt", {}, label), h("dd", { id: `usage-total-${id}` }, value));
  pane.replaceChildren(
    h("section", { class: "card", id: "usage-totals", "aria-labelledby": "usage-totals-title" },
      h("h2", { id: "usage-totals-title" }, `${domain || "All domains"}, ${period.label.toLowerCase()}`),
      h("p", { class: "help", id: "usage-nodes" }, nodes.length
        ? `Counted by ${nodes.length} node${nodes.length > 1 ? "s" : ""}: ` +
          nodes.map((n) => `${n.NodeName} (last sample ${n.LastSampleTime.slice(11, 19)} UTC)`).join(", ")
        : "No node has sampled its counters in this period yet."),
      h("dl", { class: "tiles" },
        total("traffic", "Bytes served", `${sum("Traffic")} (${bytesText(sum("Traffic"))})`),
        total("saved", "Bytes saved by audio extraction", `${sum("AudioSavedTraffic")} (${bytesText(sum("AudioSavedTraffic"))})`),
        total("hit-ratio", "Cache hit ratio", ratioText(sum("CacheHits"), sum("CacheLookups"))),
        total("requests", "Requests", countText(sum("Requests"))),
        FUNCTION_SERIES.map((s) => total(s.cls, `Requests: ${s.label}`, countText(sum(s.key)))))),
    barChart("usage-traffic", "Bytes served", points, [{ key: "Traffic", label: "Bytes served", cls: "traffic" }], bytesText, period),
    barChart("usage-saved", "Bytes saved by audio extraction", points,
      [{ key: "AudioSavedTraffic", label: "Bytes saved", cls: "saved" }], bytesText, period),
    barChart("usage-requests", "Requests by function", points, FUNCTION_SERIES, countText, period),
    barChart("usage-hit-ratio", "Cache hit ratio", ratios, [{ key: "HitRatio", label: "Hit ratio", cls: "hit" }],
      (v) => `${v}%`, period, 100, `overall ${ratioText(sum("CacheHits"), sum("CacheLookups"))}`));
}

function render() {
  if (!state.session) { showLogon(); return; }
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  if (parts[0] === "domain" && parts[1]) showDomain(decodeURIComponent(parts[1]), parts[2]);
  else if (parts[0] === "refresh") showRefresh();
  else if (parts[0] === "usage") showUsage(decodeURIComponent(parts[1] || ""), parts[2]);
  else showDomains();
}

window.addEventListener("hashchange", render);

(async () => {
  const response = await fetch("/console/api/session", { credentials: "same-origin" });
  if (response.status === 200) state.session = await response.json();
  render();
})();
