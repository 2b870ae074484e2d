// contactd dashboard: the contact screen, on the public HTTP API only.
// State lives in `view` (mirrored in the URL, so a link reproduces it); the key in
// sessionStorage (never in the URL). Every search cancels the one before it.

const $ = (selector, root = document) => root.querySelector(selector);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
};

// ---------------------------------------------------------------- API access

const KEY = "contactd.key";

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
    this.details = body?.error?.details || [];
  }
}

async function api(path, { method = "GET", body, signal, headers = {}, raw = false } = {}) {
  const key = sessionStorage.getItem(KEY);
  const init = { method, signal, headers: { ...headers } };
  if (key) init.headers.authorization = `Bearer ${key}`;
  if (body !== undefined) {
    if (typeof body === "string" || body instanceof Blob) {
      init.body = body;
    } else {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    askKey("The key was refused; enter a valid one.");
    throw new ApiError(401, await response.json().catch(() => ({})));
  }
  if (raw) {
    if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => ({})));
    return response;
  }
  const text = await response.text();
  const parsed = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, parsed);
  return { body: parsed, headers: response.headers, status: response.status };
}

function toast(message) {
  const node = $("#toast");
  node.textContent = message;
  node.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => node.classList.remove("show"), 4000);
}

function askKey(message) {
  const dialog = $("#key");
  const error = $("#key-error");
  error.hidden = !message;
  error.textContent = message || "";
  if (!dialog.open) dialog.showModal();
}

// ---------------------------------------------------------------- fields

const BUILTIN_FIELDS = {
  name: "text", email: "text", phone: "text", external_id: "keyword", company_id: "keyword",
  country: "keyword", language: "keyword", tags: "list", assignee: "keyword", channel: "list",
  favorite: "bool", pending_actions: "list", last_interacted_channel: "keyword",
  created_at: "time", updated_at: "time", last_interaction_at: "time",
  last_incoming_message_at: "time", conversation_opened_at: "time",
};
const COLUMNS = [
  "name", "email", "phone", "identities", "company_id", "country", "language", "tags",
  "assignee", "external_id", "favorite", "notes", "last_interaction_at",
  "last_interacted_channel", "last_incoming_message_at", "conversation_opened_at",
  "pending_actions", "created_at", "updated_at",
];
const DEFAULT_COLUMNS = ["name", "email", "phone", "tags", "created_at"];
const SORTABLE_BUILTIN = new Set([
  "name", "created_at", "updated_at", "last_interaction_at", "last_incoming_message_at",
  "conversation_opened_at",
]);
const HIGHLIGHTED = new Set(["name", "email", "phone", "identities"]);
const OPERATORS = {
  text: ["CONTAINS", "NOT CONTAINS", "=", "!=", "EXISTS", "NOT EXISTS"],
  keyword: ["=", "!=", "IN", "NOT IN", "EXISTS", "NOT EXISTS"],
  list: ["IN", "NOT IN", "=", "IS EMPTY", "IS NOT EMPTY"],
  bool: ["="],
  number: ["=", "!=", ">", ">=", "<", "<=", "EXISTS", "NOT EXISTS"],
  time: ["in the last", "more than … ago", "after", "before", "EXISTS", "NOT EXISTS"],
};
const NO_VALUE = new Set(["EXISTS", "NOT EXISTS", "IS EMPTY", "IS NOT EMPTY"]);

let defs = [];

function customKind(def) {
  switch (def.type) {
    case "number": return "number";
    case "date": case "datetime": return "time";
    case "checkbox": return "bool";
    case "dropdown": return "keyword";
    case "multiselect": return "list";
    default: return "text";
  }
}

function fieldKinds() {
  const kinds = { ...BUILTIN_FIELDS };
  for (const def of defs) kinds[`custom.${def.key}`] = customKind(def);
  return kinds;
}

function isSortable(column) {
  if (SORTABLE_BUILTIN.has(column)) return true;
  const def = defs.find((d) => `custom.${d.key}` === column);
  return !!def && ["number", "date", "datetime"].includes(def.type);
}

function label(column) {
  if (column.startsWith("custom.")) {
    const def = defs.find((d) => `custom.${d.key}` === column);
    return def ? def.label : column;
  }
  return column.replaceAll("_", " ");
}

// ---------------------------------------------------------------- the view

const view = {
  q: "", filter: "", sort: "", columns: [...DEFAULT_COLUMNS], inbox: "all", limit: 50,
};
let inboxes = [];
let rows = [];
let total = 0;
let cursor = null;
let loading = false;
let searchController = null;
let generation = 0;
let activeRow = -1;
const selected = new Set();
let allMatching = false;

function readUrl() {
  const params = new URLSearchParams(location.search);
  view.q = params.get("q") || "";
  view.filter = params.get("filter") || "";
  view.sort = params.get("sort") || "";
  view.inbox = params.get("inbox") || "all";
  const columns = params.get("columns");
  view.columns = columns ? columns.split(",").filter(Boolean) : [...DEFAULT_COLUMNS];
  const limit = Number(params.get("limit"));
  view.limit = limit >= 10 && limit <= 500 ? limit : 50;
}

function writeUrl() {
  const params = new URLSearchParams();
  if (view.q) params.set("q", view.q);
  if (view.filter) params.set("filter", view.filter);
  if (view.sort) params.set("sort", view.sort);
  if (view.inbox !== "all") params.set("inbox", view.inbox);
  if (view.columns.join(",") !== DEFAULT_COLUMNS.join(",")) params.set("columns", view.columns.join(","));
  if (view.limit !== 50) params.set("limit", String(view.limit));
  const query = params.toString();
  history.replaceState(null, "", query ? `/?${query}` : "/");
}

function currentInbox() {
  return inboxes.find((i) => i.id === view.inbox);
}

/// The filter of the whole view: the inbox's ANDed with the drawer's.
function effectiveFilter() {
  const inbox = currentInbox();
  const parts = [];
  if (inbox && inbox.id !== "all" && inbox.filter) parts.push(`(${inbox.filter})`);
  if (view.filter) parts.push(`(${view.filter})`);
  return parts.join(" AND ");
}

function searchParams(withCursor) {
  const params = new URLSearchParams();
  if (view.q) params.set("q", view.q);
  if (view.filter) params.set("filter", view.filter);
  if (view.sort) params.set("sort", view.sort);
  params.set("limit", String(view.limit));
  params.set("fields", view.columns.join(","));
  if (withCursor && cursor) params.set("cursor", cursor);
  return params;
}

async function search({ more = false } = {}) {
  if (more && (!cursor || loading)) return;
  if (!more) {
    searchController?.abort();
    cursor = null;
  }
  const controller = new AbortController();
  searchController = controller;
  const mine = ++generation;
  loading = true;
  document.body.dataset.loading = "true";
  $("#status").textContent = "Loading…";
  const base = view.inbox === "all" ? "/v1/contacts" : `/v1/inboxes/${encodeURIComponent(view.inbox)}/contacts`;
  try {
    const { body } = await api(`${base}?${searchParams(more)}`, { signal: controller.signal });
    if (mine !== generation) return;
    if (!more) {
      rows = [];
      activeRow = -1;
      selected.clear();
      allMatching = false;
    }
    rows.push(...body.hits);
    total = body.total;
    cursor = body.next_cursor;
    hideFilterError();
    render(more ? body.hits : null);
  } catch (error) {
    if (error.name === "AbortError") return;
    if (error.code === "invalid_filter") showFilterError(view.filter, error);
    else if (error.status !== 401) toast(error.message);
  } finally {
    if (mine === generation) {
      loading = false;
      document.body.dataset.loading = "false";
      $("#status").textContent = cursor ? "" : rows.length ? "End of the results." : "No contact matches.";
    }
  }
}

// ---------------------------------------------------------------- table

function fold(text) {
  return text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
}

/// `text` as nodes, with every fragment that matches a word of `q` marked (accents,
/// case and, for phones, spacing ignored).
function highlighted(text, column) {
  const words = view.q.split(/\s+/).filter((w) => w.length > 0);
  if (!words.length || !HIGHLIGHTED.has(column)) return [text];
  const chars = [...text];
  const marks = new Array(chars.length).fill(false);
  const folded = chars.map((c) => fold(c));
  for (const word of words) {
    const needle = fold(word).replace(/^\+/, "");
    const digitsOnly = /^[\d\s().+-]+$/.test(word) && /\d/.test(word);
    // Positions of the characters compared (digits only for a phone-like word).
    const keep = [];
    let haystack = "";
    folded.forEach((f, i) => {
      if (digitsOnly ? /\d/.test(f) : true) {
        for (const part of f) { haystack += part; keep.push(i); }
      }
    });
    const target = digitsOnly ? needle.replace(/\D/g, "") : needle;
    if (!target) continue;
    let from = 0;
    for (;;) {
      const at = haystack.indexOf(target, from);
      if (at < 0) break;
      for (let k = at; k < at + target.length; k++) marks[keep[k]] = true;
      from = at + target.length;
    }
  }
  const nodes = [];
  let run = "";
  let marked = false;
  chars.forEach((c, i) => {
    if (marks[i] !== marked) {
      if (run) nodes.push(marked ? el("mark", { text: run }) : run);
      run = "";
      marked = marks[i];
    }
    run += c;
  });
  if (run) nodes.push(marked ? el("mark", { text: run }) : run);
  return nodes;
}

function cellValue(contact, column) {
  const value = column.startsWith("custom.")
    ? contact.custom_fields?.[column.slice(7)]
    : contact[column];
  if (value === undefined || value === null) return "";
  if (column === "identities") return value.map((i) => `${i.channel}:${i.value}`).join(", ");
  if (column === "tags") return value;
  if (Array.isArray(value)) return value.join(", ");
  if (typeof value === "boolean") return value ? "yes" : "";
  return String(value);
}

function renderHead() {
  const head = $("#table thead");
  head.replaceChildren();
  const [sortField, sortDir] = (view.sort.split(",")[0] || "").split(":");
  const allBox = el("input", {
    type: "checkbox", "aria-label": "Select the loaded rows",
    onchange: (event) => {
      allMatching = false;
      for (const row of rows) {
        if (event.target.checked) selected.add(row.id); else selected.delete(row.id);
      }
      renderSelection();
      for (const box of document.querySelectorAll("tbody input[type=checkbox]")) box.checked = event.target.checked;
    },
  });
  const cells = [el("th", { scope: "col" }, allBox)];
  for (const column of view.columns) {
    const sortable = isSortable(column);
    const th = el("th", { scope: "col", "data-column": column });
    if (sortable) {
      if (sortField === column) th.setAttribute("aria-sort", sortDir === "desc" ? "descending" : "ascending");
      th.append(el("button", {
        type: "button", text: label(column), "aria-label": `Sort by ${label(column)}`,
        onclick: () => {
          const direction = sortField === column && sortDir !== "desc" ? "desc" : "asc";
          view.sort = `${column}:${direction}`;
          changed();
        },
      }));
    } else {
      th.textContent = label(column);
    }
    cells.push(th);
  }
  head.append(el("tr", {}, cells));
}

function renderRow(contact, index) {
  const box = el("input", {
    type: "checkbox", "aria-label": `Select ${contact.name || contact.id}`,
    onclick: (event) => event.stopPropagation(),
    onchange: (event) => {
      allMatching = false;
      if (event.target.checked) selected.add(contact.id); else selected.delete(contact.id);
      renderSelection();
    },
  });
  box.checked = allMatching || selected.has(contact.id);
  const cells = [el("td", {}, box)];
  for (const column of view.columns) {
    const value = cellValue(contact, column);
    const td = el("td", { "data-column": column, title: Array.isArray(value) ? value.join(", ") : value });
    if (Array.isArray(value)) td.append(...value.map((tag) => el("span", { class: "tag" }, ...highlighted(tag, column))));
    else td.append(...highlighted(value, column));
    cells.push(td);
  }
  return el("tr", {
    "data-id": contact.id, "data-index": index, tabindex: "-1",
    onclick: () => openCard(contact.id),
  }, cells);
}

function render(appended) {
  const body = $("#table tbody");
  if (!appended) {
    renderHead();
    body.replaceChildren(...rows.map(renderRow));
  } else {
    const start = rows.length - appended.length;
    body.append(...appended.map((contact, i) => renderRow(contact, start + i)));
  }
  $("#total").textContent = `${total.toLocaleString()} contact${total === 1 ? "" : "s"}`;
  renderSelection();
}

function renderSelection() {
  const count = allMatching ? total : selected.size;
  const node = $("#selection");
  node.replaceChildren();
  $("#bulk").hidden = count === 0;
  if (count > 0) {
    node.append(`${count.toLocaleString()} selected`);
    if (!allMatching && total > selected.size) {
      node.append(" · ", el("button", {
        type: "button", text: `Select all ${total.toLocaleString()} matching`,
        onclick: () => {
          allMatching = true;
          for (const box of document.querySelectorAll("tbody input[type=checkbox]")) box.checked = true;
          renderSelection();
        },
      }));
    }
    node.append(" · ", el("button", {
      type: "button", text: "Clear selection",
      onclick: () => {
        selected.clear();
        allMatching = false;
        for (const box of document.querySelectorAll("#table input[type=checkbox]")) box.checked = false;
        renderSelection();
      },
    }));
  }
}

function setActive(index) {
  const list = document.querySelectorAll("#table tbody tr");
  if (!list.length) return;
  activeRow = Math.max(0, Math.min(index, list.length - 1));
  list.forEach((row, i) => row.classList.toggle("active", i === activeRow));
  list[activeRow].scrollIntoView({ block: "nearest" });
  if (activeRow >= list.length - 3) search({ more: true });
}

function renderColumnsMenu() {
  const menu = $("#columns");
  menu.replaceChildren();
  const all = [...COLUMNS, ...defs.map((d) => `custom.${d.key}`)];
  for (const column of all) {
    const box = el("input", {
      type: "checkbox", "data-column": column,
      onchange: (event) => {
        if (event.target.checked) view.columns.push(column);
        else view.columns = view.columns.filter((c) => c !== column);
        if (!view.columns.length) view.columns = ["name"];
        changed();
      },
    });
    box.checked = view.columns.includes(column);
    menu.append(el("label", {}, box, label(column)));
  }
}

function changed() {
  writeUrl();
  showFilterState();
  renderColumnsMenu();
  search();
}

// ---------------------------------------------------------------- inboxes

async function loadInboxes() {
  const { body } = await api("/v1/inboxes?counts=true");
  inboxes = body.inboxes;
  const select = $("#inbox");
  select.replaceChildren(...inboxes.map((inbox) => el("option", {
    value: inbox.id,
    text: `${inbox.name}${inbox.count === null || inbox.count === undefined ? "" : ` (${inbox.count.toLocaleString()})`}`,
  })));
  if (!inboxes.some((i) => i.id === view.inbox)) view.inbox = "all";
  select.value = view.inbox;
  const inbox = currentInbox();
  $("#inbox-filter").textContent = inbox && inbox.id !== "all" ? `Inbox filter: ${inbox.filter}` : "";
  $("#inbox-edit").disabled = $("#inbox-delete").disabled = view.inbox === "all";
}

async function ask(text, { input, placeholder = "", value = "" } = {}) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = text;
  const inputLabel = $("#confirm-input-label");
  inputLabel.hidden = !input;
  $("span", inputLabel).textContent = input || "";
  const field = $("#confirm-input");
  field.value = value;
  field.placeholder = placeholder;
  dialog.showModal();
  if (input) field.focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok" ? (input ? field.value.trim() : true) : null);
    }, { once: true });
  });
}

async function saveInbox() {
  const name = await ask("Save the current filter, sort and columns as an inbox.", { input: "Name" });
  if (!name) return;
  try {
    const { body } = await api("/v1/inboxes", {
      method: "POST",
      body: { name, filter: effectiveFilter() || "status = active", sort: view.sort || null, columns: view.columns },
    });
    view.inbox = body.id;
    view.filter = "";
    await loadInboxes();
    setFilterText("");
    changed();
    toast(`Inbox "${name}" saved.`);
  } catch (error) {
    toast(error.message);
  }
}

async function updateInbox() {
  const inbox = currentInbox();
  if (!inbox || inbox.id === "all") return;
  const name = await ask(`Update inbox "${inbox.name}" with the current view.`, { input: "Name", value: inbox.name });
  if (!name) return;
  try {
    await api(`/v1/inboxes/${encodeURIComponent(inbox.id)}`, {
      method: "PATCH",
      body: { name, filter: effectiveFilter() || inbox.filter, sort: view.sort || null, columns: view.columns },
    });
    view.filter = "";
    setFilterText("");
    await loadInboxes();
    changed();
    toast("Inbox updated.");
  } catch (error) {
    toast(error.message);
  }
}

async function deleteInbox() {
  const inbox = currentInbox();
  if (!inbox || inbox.id === "all") return;
  if (!(await ask(`Delete inbox "${inbox.name}"? Its contacts stay.`))) return;
  try {
    await api(`/v1/inboxes/${encodeURIComponent(inbox.id)}`, { method: "DELETE" });
    view.inbox = "all";
    await loadInboxes();
    changed();
  } catch (error) {
    toast(error.message);
  }
}

// ---------------------------------------------------------------- filter drawer

let builder = { op: "AND", items: [] };
const SUGGESTED = ["tags", "country", "language", "assignee", "channel", "last_interacted_channel"];
let suggestions = {};

/// The most frequent values of the fields offered in the drawer, as datalists.
async function loadSuggestions() {
  try {
    const { body } = await api(`/v1/contacts?limit=1&facets=${SUGGESTED.join(",")}`);
    suggestions = {};
    const lists = [];
    for (const field of SUGGESTED) {
      const values = Object.keys(body.facets?.[field] || {});
      if (!values.length) continue;
      suggestions[field] = values;
      lists.push(el("datalist", { id: `values-${field}` }, values.map((v) => el("option", { value: v }))));
    }
    $("#datalists")?.remove();
    document.body.append(el("div", { id: "datalists", hidden: true }, lists));
  } catch (error) {
    if (error.status !== 401 && error.status !== 403) toast(error.message);
  }
}

function quote(value) {
  return /^[\w.@+:-]+$/.test(value) ? value : `"${value.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

function list(value) {
  return `[${value.split(",").map((v) => v.trim()).filter(Boolean).map(quote).join(", ")}]`;
}

function conditionText(cond) {
  const { field, operator, value } = cond;
  if (!field) return "";
  if (NO_VALUE.has(operator)) return `${field} ${operator}`;
  if (value === "" || value === undefined) return "";
  switch (operator) {
    case "in the last": return `${field} >= now-${Number(value) || 0}d`;
    case "more than … ago": return `${field} < now-${Number(value) || 0}d`;
    case "after": return `${field} >= ${quote(value)}`;
    case "before": return `${field} < ${quote(value)}`;
    case "IN": case "NOT IN": return `${field} ${operator} ${list(value)}`;
    default: return `${field} ${operator} ${quote(value)}`;
  }
}

function groupText(group) {
  const parts = group.items
    .map((item) => (item.items ? groupText(item) : conditionText(item)))
    .filter(Boolean)
    .map((text, _, all) => (all.length > 1 && text.includes(" OR ") ? `(${text})` : text));
  const joined = parts.join(` ${group.op} `);
  return joined;
}

function setFilterText(text) {
  $("#filter-text").value = text;
}

function renderBuilder() {
  const root = $("#filter-builder");
  root.replaceChildren(renderGroup(builder, null));
}

function renderGroup(group, parent) {
  const kinds = fieldKinds();
  const node = el("div", { class: "group", role: "group", "aria-label": `${group.op} group` });
  const op = el("select", {
    "aria-label": "Combine with",
    onchange: (event) => { group.op = event.target.value; builderChanged(); },
  }, el("option", { value: "AND", text: "All of (AND)" }), el("option", { value: "OR", text: "Any of (OR)" }));
  op.value = group.op;
  const header = el("div", { class: "row" }, op,
    el("button", { type: "button", text: "+ Condition", onclick: () => { group.items.push({ field: "", operator: "", value: "" }); builderChanged(); } }),
    el("button", { type: "button", text: "+ Group", onclick: () => { group.items.push({ op: group.op === "AND" ? "OR" : "AND", items: [{ field: "", operator: "", value: "" }] }); builderChanged(); } }),
    parent ? el("button", { type: "button", text: "Remove group", onclick: () => { parent.items.splice(parent.items.indexOf(group), 1); builderChanged(); } }) : null);
  node.append(header);
  for (const item of group.items) {
    if (item.items) { node.append(renderGroup(item, group)); continue; }
    const fieldSelect = el("select", {
      "aria-label": "Field",
      onchange: (event) => {
        item.field = event.target.value;
        item.operator = OPERATORS[kinds[item.field]]?.[0] || "=";
        item.value = "";
        builderChanged();
      },
    }, el("option", { value: "", text: "Field…" }),
    Object.keys(kinds).map((name) => el("option", { value: name, text: label(name) })));
    fieldSelect.value = item.field;
    const kind = kinds[item.field];
    const operatorSelect = el("select", {
      "aria-label": "Operator",
      onchange: (event) => { item.operator = event.target.value; builderChanged(); },
    }, (OPERATORS[kind] || ["="]).map((o) => el("option", { value: o, text: o })));
    operatorSelect.value = item.operator || (OPERATORS[kind] || ["="])[0];
    item.operator = operatorSelect.value;
    const input = valueInput(item, kind);
    node.append(el("div", { class: "cond" }, fieldSelect, operatorSelect, input,
      el("button", { type: "button", "aria-label": "Remove condition", text: "×", onclick: () => { group.items.splice(group.items.indexOf(item), 1); builderChanged(); } })));
  }
  return node;
}

function valueInput(item, kind) {
  const update = (event) => { item.value = event.target.value; builderChanged(false); };
  if (NO_VALUE.has(item.operator)) return el("span");
  const def = defs.find((d) => `custom.${d.key}` === item.field);
  if (kind === "bool") {
    const select = el("select", { "aria-label": "Value", onchange: update },
      el("option", { value: "", text: "…" }), el("option", { value: "true", text: "yes" }), el("option", { value: "false", text: "no" }));
    select.value = item.value;
    return select;
  }
  if (def && (def.type === "dropdown" || def.type === "multiselect") && !["IN", "NOT IN"].includes(item.operator)) {
    const select = el("select", { "aria-label": "Value", onchange: update },
      el("option", { value: "", text: "…" }), (def.options || []).map((o) => el("option", { value: o, text: o })));
    select.value = item.value;
    return select;
  }
  const placeholder = item.operator === "in the last" || item.operator === "more than … ago"
    ? "days"
    : ["IN", "NOT IN"].includes(item.operator) ? "a, b, c" : kind === "time" ? "2026-01-31" : "value";
  // Values seen in the base (facet counts) are offered for tags, countries and the like.
  const known = suggestions[item.field];
  return el("input", {
    "aria-label": "Value", value: item.value, placeholder,
    type: item.operator === "in the last" || item.operator === "more than … ago" ? "number" : "text",
    list: known ? `values-${item.field}` : null,
    oninput: update,
  });
}

function builderChanged(rerender = true) {
  setFilterText(groupText(builder));
  if (rerender) renderBuilder();
}

function hideFilterError() {
  $("#filter-error").hidden = true;
}

function showFilterError(text, error) {
  const node = $("#filter-error");
  const position = error.details?.[0]?.position;
  node.replaceChildren();
  node.append(error.message);
  if (Number.isInteger(position)) {
    const bytes = new TextEncoder().encode(text);
    const before = new TextDecoder().decode(bytes.slice(0, position));
    const at = new TextDecoder().decode(bytes.slice(position, position + 1)) || " ";
    const after = new TextDecoder().decode(bytes.slice(position + 1));
    node.append(el("div", { class: "filter-error-text", "data-position": position }, before, el("span", { text: at }), after));
  }
  node.hidden = false;
  $("#filters").hidden = false;
  $("#filters-toggle").setAttribute("aria-expanded", "true");
}

/// The Filters button says when a filter narrows the view.
function showFilterState() {
  $("#filters-toggle").textContent = view.filter ? "Filters (on)" : "Filters";
}

function applyFilter() {
  view.filter = $("#filter-text").value.trim();
  changed();
}

// ---------------------------------------------------------------- bulk

async function bulk(action) {
  const count = allMatching ? total : selected.size;
  const body = { action };
  if (action === "add_tags" || action === "remove_tags") {
    const tags = await ask(`${action === "add_tags" ? "Tag" : "Untag"} ${count.toLocaleString()} contacts.`, { input: "Tags (comma-separated)" });
    if (!tags) return;
    body.tags = tags.split(",").map((t) => t.trim()).filter(Boolean);
  } else if (action === "assign") {
    const assignee = await ask(`Assign ${count.toLocaleString()} contacts (empty: unassign).`, { input: "Assignee" });
    if (assignee === null) return;
    body.assignee = assignee || null;
  } else if (!(await ask(`Delete ${count.toLocaleString()} contacts? They stay restorable in the trash.`))) {
    return;
  }
  if (allMatching) {
    if (view.q) body.q = view.q;
    const filter = effectiveFilter();
    if (filter) body.filter = filter;
    if (!body.q && !body.filter) body.filter = "status = active";
  } else {
    body.ids = [...selected];
  }
  try {
    const response = await api("/v1/contacts/bulk?wait=indexed", { method: "POST", body });
    if (response.status === 202) {
      await followJob(response.body.id, (job) => `${job.processed.toLocaleString()} of ${(job.total || 0).toLocaleString()}`);
      const job = (await api(`/v1/jobs/${response.body.id}`)).body;
      toast(`Done: ${job.updated} changed, ${job.unchanged} unchanged, ${job.failed} failed.`);
      await waitSearchable();
    } else {
      const result = response.body;
      toast(`Done: ${result.changed} changed, ${result.unchanged} unchanged, ${result.failed.length} failed.`);
    }
  } catch (error) {
    toast(error.message);
  }
  await loadInboxes();
  search();
}

async function followJob(id, describe) {
  const node = $("#progress");
  node.hidden = false;
  const bar = $("progress", node);
  try {
    for (;;) {
      const { body: job } = await api(`/v1/jobs/${id}`);
      bar.max = job.total || 1;
      bar.value = job.processed;
      $("span", node).textContent = describe(job);
      if (["done", "failed", "cancelled"].includes(job.state)) return job;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } finally {
    node.hidden = true;
  }
}

async function waitSearchable() {
  for (let i = 0; i < 100; i++) {
    const { body } = await api("/v1/stats");
    if (body.lag === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// ---------------------------------------------------------------- contact card

const EDITABLE = ["name", "email", "phone", "external_id", "company_id", "country", "language", "tags", "assignee", "notes", "avatar_url", "favorite"];
const READ_ONLY = ["id", "status", "version", "phone_e164", "display_name", "merged_into", "deleted_at", "last_interaction_at", "last_interacted_channel", "last_incoming_message_at", "conversation_opened_at", "pending_actions", "created_at", "updated_at"];
let lastMerge = null;

async function openCard(id) {
  const dialog = $("#card");
  let contact;
  try {
    contact = (await api(`/v1/contacts/${encodeURIComponent(id)}`)).body;
  } catch (error) {
    toast(error.message);
    return;
  }
  dialog.replaceChildren();
  const errors = {};
  const inputs = {};
  const fields = el("div", { class: "fields" });
  const addField = (name, input, labelText) => {
    inputs[name] = input;
    fields.append(el("label", { for: `f-${name}`, text: labelText || label(name) }), input);
    errors[name] = el("div", { class: "field-error", "data-error-for": name, hidden: true });
    fields.append(errors[name]);
  };
  for (const name of EDITABLE) {
    const value = contact[name];
    let input;
    if (name === "favorite") {
      input = el("input", { id: `f-${name}`, type: "checkbox", "aria-label": "favorite" });
      input.checked = !!value;
    } else if (name === "notes") {
      input = el("textarea", { id: `f-${name}`, rows: 3, "aria-label": name });
      input.value = value || "";
    } else {
      input = el("input", { id: `f-${name}`, "aria-label": name, value: name === "tags" ? (value || []).join(", ") : value ?? "" });
    }
    addField(name, input);
  }
  for (const def of defs) {
    const value = contact.custom_fields?.[def.key];
    let input;
    if (def.type === "dropdown") {
      input = el("select", { id: `f-custom.${def.key}`, "aria-label": def.label },
        el("option", { value: "", text: "" }), (def.options || []).map((o) => el("option", { value: o, text: o })));
      input.value = value ?? "";
    } else if (def.type === "checkbox") {
      input = el("input", { id: `f-custom.${def.key}`, type: "checkbox", "aria-label": def.label });
      input.checked = !!value;
    } else {
      input = el("input", {
        id: `f-custom.${def.key}`, "aria-label": def.label,
        value: Array.isArray(value) ? value.join(", ") : value ?? "",
      });
    }
    addField(`custom_fields.${def.key}`, input, def.label);
  }
  const identities = el("ul", {}, (contact.identities || []).map((i) => el("li", { text: `${i.channel}: ${i.value}${i.account ? ` (${i.account})` : ""}` })));
  const readOnly = el("div", { class: "fields" }, READ_ONLY.filter((n) => contact[n] !== undefined && contact[n] !== null && !(Array.isArray(contact[n]) && !contact[n].length))
    .flatMap((n) => [el("span", { class: "muted", text: label(n) }), el("span", { "data-field": n, text: Array.isArray(contact[n]) ? contact[n].join(", ") : String(contact[n]) })]));
  const formError = el("p", { class: "error", role: "alert", hidden: true });

  const save = async () => {
    const patch = {};
    for (const name of EDITABLE) {
      const input = inputs[name];
      let value = name === "favorite" ? input.checked : input.value.trim();
      if (name === "tags") value = value ? value.split(",").map((t) => t.trim()).filter(Boolean) : [];
      else if (value === "") value = null;
      const before = name === "tags" ? contact.tags : contact[name] ?? (name === "favorite" ? false : null);
      if (JSON.stringify(value) !== JSON.stringify(before)) patch[name] = value;
    }
    const custom = {};
    for (const def of defs) {
      const input = inputs[`custom_fields.${def.key}`];
      let value = def.type === "checkbox" ? input.checked : input.value.trim();
      if (value === "") value = null;
      else if (def.type === "number") value = Number(value);
      else if (def.type === "multiselect") value = value.split(",").map((v) => v.trim()).filter(Boolean);
      const before = contact.custom_fields?.[def.key] ?? (def.type === "checkbox" ? false : null);
      if (JSON.stringify(value) !== JSON.stringify(before)) custom[def.key] = value;
    }
    if (Object.keys(custom).length) patch.custom_fields = custom;
    for (const node of Object.values(errors)) node.hidden = true;
    formError.hidden = true;
    if (!Object.keys(patch).length) return;
    try {
      await api(`/v1/contacts/${encodeURIComponent(contact.id)}?wait=indexed`, {
        method: "PATCH", body: patch, headers: { "if-match": `"${contact.version}"` },
      });
      toast("Saved.");
      dialog.close();
      search();
    } catch (error) {
      let shown = false;
      for (const detail of error.details || []) {
        const node = errors[detail.field] || errors[detail.field?.replace(/^custom\./, "custom_fields.")];
        if (node) { node.textContent = detail.message; node.hidden = false; shown = true; }
      }
      if (!shown || error.code !== "validation_failed") { formError.textContent = error.message; formError.hidden = false; }
    }
  };
  const act = async (path, method, message) => {
    try {
      await api(path, { method, body: method === "POST" ? {} : undefined });
      toast(message);
      await waitSearchable();
      dialog.close();
      await loadInboxes();
      search();
    } catch (error) {
      formError.textContent = error.message;
      formError.hidden = false;
    }
  };
  const buttons = el("div", { class: "row" },
    contact.status === "active" ? el("button", { type: "button", class: "primary", text: "Save", onclick: save }) : null,
    contact.status === "active" ? el("button", { type: "button", text: "Merge another contact into this…", onclick: () => openMerge(contact, null) }) : null,
    contact.status === "active" ? el("button", { type: "button", class: "danger", text: "Delete", onclick: () => act(`/v1/contacts/${contact.id}`, "DELETE", "Deleted (restorable from the trash).") }) : null,
    contact.status === "deleted" ? el("button", { type: "button", text: "Restore", onclick: () => act(`/v1/contacts/${contact.id}/restore`, "POST", "Restored.") }) : null,
    contact.status === "merged" && contact.merged_into ? el("button", { type: "button", text: "Unmerge", onclick: () => unmerge(contact.merged_into, contact.id, dialog) }) : null,
    lastMerge && lastMerge.survivor === contact.id ? el("button", { type: "button", text: "Undo the merge", onclick: () => unmerge(lastMerge.survivor, lastMerge.other, dialog) }) : null,
    el("button", { type: "button", text: "Close", onclick: () => dialog.close() }));
  const duplicates = el("div", { "aria-label": "Duplicate suggestions" });
  dialog.append(
    el("h2", { text: contact.name || contact.email || contact.phone || contact.id }),
    el("p", { class: "muted", text: `${contact.status} · version ${contact.version}` }),
    fields,
    el("h3", { text: "Identities" }), identities,
    el("h3", { text: "Activity and record" }), readOnly,
    duplicates, formError, buttons,
  );
  if (!dialog.open) dialog.showModal();
  if (contact.status === "active") loadDuplicates(contact, duplicates);
}

async function unmerge(survivor, other, dialog) {
  try {
    await api(`/v1/contacts/${encodeURIComponent(survivor)}/unmerge`, { method: "POST", body: { other_id: other } });
    lastMerge = null;
    toast("Unmerged.");
    await waitSearchable();
    dialog.close();
    search();
  } catch (error) {
    toast(error.message);
  }
}

async function loadDuplicates(contact, node) {
  try {
    const { body } = await api(`/v1/contacts/${encodeURIComponent(contact.id)}/duplicates`);
    if (!body.duplicates.length) return;
    node.append(el("h3", { text: "Likely duplicates" }), el("ul", {}, body.duplicates.map((d) => el("li", {},
      `${d.contact.name || d.contact.email || d.contact.id} — ${Math.round(d.score * 100)}% (${d.reasons.join(", ").replaceAll("_", " ")}) `,
      el("button", { type: "button", text: "Merge…", "data-merge": d.contact.id, onclick: () => openMerge(contact, d.contact) })))));
  } catch (error) {
    if (error.status !== 403) toast(error.message);
  }
}

const KEEPABLE = ["external_id", "name", "email", "phone", "company_id", "country", "language", "assignee", "notes", "avatar_url", "favorite"];

async function openMerge(survivor, other) {
  const dialog = $("#merge");
  dialog.replaceChildren();
  const otherId = el("input", { "aria-label": "Other contact id", value: other?.id || "", placeholder: "id of the contact to merge in" });
  const table = el("table", { class: "side-by-side" });
  const preview = el("pre", { class: "muted", "aria-label": "Merge preview" });
  const error = el("p", { class: "error", role: "alert", hidden: true });
  const keep = {};
  const show = (otherContact) => {
    table.replaceChildren(el("tr", {}, el("th", { text: "field" }), el("th", { text: "keep this" }), el("th", { text: "keep other" })));
    for (const field of KEEPABLE) {
      const mine = survivor[field];
      const theirs = otherContact?.[field];
      if ((mine ?? "") === (theirs ?? "")) continue;
      const name = `keep-${field}`;
      const thisRadio = el("input", { type: "radio", name, value: "this", "aria-label": `${field}: keep this`, onchange: () => { keep[field] = "this"; } });
      const otherRadio = el("input", { type: "radio", name, value: "other", "aria-label": `${field}: keep other`, onchange: () => { keep[field] = "other"; } });
      (keep[field] === "other" ? otherRadio : thisRadio).checked = true;
      table.append(el("tr", {}, el("td", { text: field }),
        el("td", {}, el("label", {}, thisRadio, ` ${mine ?? "—"}`)),
        el("td", {}, el("label", {}, otherRadio, ` ${theirs ?? "—"}`))));
    }
  };
  const loadOther = async () => {
    if (!otherId.value.trim()) return;
    try {
      show((await api(`/v1/contacts/${encodeURIComponent(otherId.value.trim())}`)).body);
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    }
  };
  const run = async (dryRun) => {
    error.hidden = true;
    try {
      const { body } = await api(`/v1/contacts/${encodeURIComponent(survivor.id)}/merge${dryRun ? "?dry_run=true" : "?wait=indexed"}`, {
        method: "POST", body: { other_id: otherId.value.trim(), keep },
      });
      if (dryRun) {
        preview.textContent = JSON.stringify(body.contact ?? body, null, 2);
      } else {
        lastMerge = { survivor: survivor.id, other: otherId.value.trim() };
        toast("Merged. Undo from the contact card.");
        dialog.close();
        await openCard(survivor.id);
        search();
      }
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    }
  };
  dialog.append(
    el("h2", { text: `Merge into ${survivor.name || survivor.id}` }),
    el("div", { class: "row" }, otherId, el("button", { type: "button", text: "Compare", onclick: loadOther })),
    table,
    el("div", { class: "row" },
      el("button", { type: "button", text: "Preview (dry run)", onclick: () => run(true) }),
      el("button", { type: "button", class: "primary", text: "Merge", onclick: () => run(false) }),
      el("button", { type: "button", text: "Cancel", onclick: () => dialog.close() })),
    error, preview);
  if (other) show(other);
  if (!dialog.open) dialog.showModal();
}

// ---------------------------------------------------------------- duplicates list

async function openDuplicates() {
  const dialog = $("#dups");
  dialog.replaceChildren(el("h2", { text: "Likely duplicates" }), el("p", { class: "muted", text: "Loading…" }));
  dialog.showModal();
  try {
    const { body } = await api("/v1/duplicates?limit=100");
    dialog.replaceChildren(el("h2", { text: `Likely duplicates (${body.total})` }),
      el("table", {}, body.pairs.map((pair) => el("tr", {},
        el("td", { text: `${Math.round(pair.score * 100)}%` }),
        el("td", { text: pair.reasons.join(", ").replaceAll("_", " ") }),
        pair.contacts.map((c) => el("td", {}, el("button", { type: "button", text: c.name || c.email || c.id, onclick: () => { dialog.close(); openCard(c.id); } }))))),
      ),
      el("div", { class: "row" }, el("button", { type: "button", text: "Close", onclick: () => dialog.close() })));
  } catch (error) {
    dialog.replaceChildren(el("p", { class: "error", text: error.message }), el("button", { type: "button", text: "Close", onclick: () => dialog.close() }));
  }
}

// ---------------------------------------------------------------- import / export

function openImport() {
  const dialog = $("#import");
  const file = el("input", { type: "file", accept: ".csv,.ndjson,.jsonl,text/csv,application/x-ndjson", "aria-label": "File to import" });
  const progress = el("progress", { max: 100, value: 0, "aria-label": "Upload progress" });
  const status = el("p", { "aria-live": "polite" });
  const errors = el("table", { "aria-label": "Row errors" });
  const start = () => {
    const chosen = file.files[0];
    if (!chosen) return;
    const csv = /\.csv$/i.test(chosen.name);
    const request = new XMLHttpRequest();
    request.open("POST", "/v1/contacts/import");
    request.setRequestHeader("content-type", csv ? "text/csv" : "application/x-ndjson");
    const key = sessionStorage.getItem(KEY);
    if (key) request.setRequestHeader("authorization", `Bearer ${key}`);
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) { progress.max = event.total; progress.value = event.loaded; }
      status.textContent = `Uploading… ${Math.round((event.loaded / Math.max(event.total, 1)) * 100)}%`;
    };
    request.onload = async () => {
      let body = {};
      try { body = JSON.parse(request.responseText); } catch { /* shown below */ }
      if (request.status !== 202) {
        status.textContent = body?.error?.message || `Upload refused (${request.status}).`;
        return;
      }
      for (;;) {
        const { body: job } = await api(`/v1/jobs/${body.id}`);
        progress.max = job.total || 1;
        progress.value = job.processed;
        status.textContent = `${job.state}: ${job.processed.toLocaleString()} rows, ${job.created} created, ${job.updated} updated, ${job.failed} rejected`;
        if (["done", "failed", "cancelled"].includes(job.state)) {
          errors.replaceChildren(el("tr", {}, el("th", { text: "line" }), el("th", { text: "field" }), el("th", { text: "message" })),
            ...job.errors.map((e) => el("tr", {}, el("td", { text: e.line ?? "" }), el("td", { text: e.field ?? "" }), el("td", { text: e.message }))));
          errors.hidden = !job.errors.length;
          await waitSearchable();
          await loadInboxes();
          search();
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
    };
    request.send(chosen);
  };
  errors.hidden = true;
  dialog.replaceChildren(el("h2", { text: "Import contacts" }),
    el("p", { class: "muted", text: "CSV with field names as headers, or NDJSON. Rows upsert by external_id." }),
    el("div", { class: "row" }, file, el("button", { type: "button", class: "primary", text: "Import", onclick: start })),
    progress, status, errors,
    el("div", { class: "row" }, el("button", { type: "button", text: "Close", onclick: () => dialog.close() })));
  dialog.showModal();
}

async function exportView() {
  const params = new URLSearchParams({ format: "csv", fields: view.columns.join(",") });
  if (view.q) params.set("q", view.q);
  const filter = effectiveFilter();
  if (filter) params.set("filter", filter);
  if (view.sort) params.set("sort", view.sort);
  try {
    const response = await api(`/v1/contacts/export?${params}`, { raw: true });
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: "contacts.csv" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (error) {
    toast(error.message);
  }
}

// ---------------------------------------------------------------- start

function bind() {
  const q = $("#q");
  q.addEventListener("input", () => {
    view.q = q.value;
    writeUrl();
    search();
  });
  q.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown") { event.preventDefault(); setActive(activeRow + 1); }
    else if (event.key === "ArrowUp") { event.preventDefault(); setActive(activeRow - 1); }
    else if (event.key === "Enter" && activeRow >= 0) { event.preventDefault(); openCard(rows[activeRow].id); }
    else if (event.key === "Escape") { q.value = ""; view.q = ""; writeUrl(); search(); }
  });
  $("#inbox").addEventListener("change", (event) => {
    view.inbox = event.target.value;
    const inbox = currentInbox();
    if (inbox && inbox.id !== "all") {
      if (inbox.columns?.length) view.columns = [...inbox.columns];
      view.sort = inbox.sort || "";
    }
    $("#inbox-filter").textContent = inbox && inbox.id !== "all" ? `Inbox filter: ${inbox.filter}` : "";
    $("#inbox-edit").disabled = $("#inbox-delete").disabled = view.inbox === "all";
    changed();
  });
  $("#filters-toggle").addEventListener("click", () => {
    const drawer = $("#filters");
    drawer.hidden = !drawer.hidden;
    $("#filters-toggle").setAttribute("aria-expanded", String(!drawer.hidden));
  });
  $("#filter-apply").addEventListener("click", applyFilter);
  $("#filter-text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) applyFilter();
  });
  $("#filter-clear").addEventListener("click", () => {
    builder = { op: "AND", items: [] };
    renderBuilder();
    setFilterText("");
    applyFilter();
  });
  $("#inbox-save").addEventListener("click", saveInbox);
  $("#inbox-edit").addEventListener("click", updateInbox);
  $("#inbox-delete").addEventListener("click", deleteInbox);
  $("#export").addEventListener("click", exportView);
  $("#import-open").addEventListener("click", openImport);
  $("#duplicates-open").addEventListener("click", openDuplicates);
  $("#page-size").addEventListener("change", (event) => {
    const size = Number(event.target.value);
    if (size >= 10 && size <= 500) { view.limit = size; changed(); }
  });
  $("#theme").addEventListener("click", () => {
    const dark = document.documentElement.classList.toggle("dark");
    localStorage.setItem("contactd.theme", dark ? "dark" : "light");
  });
  $("#forget-key").addEventListener("click", () => { sessionStorage.removeItem(KEY); askKey(); });
  for (const button of document.querySelectorAll("[data-bulk]")) {
    button.addEventListener("click", () => bulk(button.dataset.bulk));
  }
  $("#key").addEventListener("close", async () => {
    const key = $("#key-input").value.trim();
    if (key) sessionStorage.setItem(KEY, key);
    $("#key-input").value = "";
    await start();
  });
  new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) search({ more: true });
  }).observe($("#sentinel"));
}

async function start() {
  try {
    defs = (await api("/v1/custom-fields")).body.custom_fields ?? [];
  } catch (error) {
    if (error.status !== 401) toast(error.message);
    return;
  }
  await loadInboxes();
  loadSuggestions();
  $("#q").value = view.q;
  setFilterText(view.filter);
  $("#page-size").value = String(view.limit);
  showFilterState();
  renderBuilder();
  renderColumnsMenu();
  search();
  document.body.dataset.ready = "true";
}

const theme = localStorage.getItem("contactd.theme");
if (theme === "dark" || (!theme && matchMedia("(prefers-color-scheme: dark)").matches)) {
  document.documentElement.classList.add("dark");
}
readUrl();
bind();
start();
