// Live view of the service's state: one EventSource, no framework, no build step.
//
// The server sends "resync" (the whole state: {reason, state: {links: {key: obj}, ...}})
// when we connect or fall behind, then one "change" ({action, kind, key, obj}) per
// change. Rows are keyed by the server's object key, so a "del" finds the row its
// "new" made. EventSource reconnects by itself and sends Last-Event-ID, so the
// server can replay what we missed (or resync us).
"use strict";

const KIND_TO_COLLECTION = {
  link: "links", address: "addresses", route: "routes", neighbour: "neighbours", rule: "rules",
  nft_table: "nft_tables", nft_chain: "nft_chains", nft_set: "nft_sets", nft_element: "nft_elements", nft_rule: "nft_rules",
  conntrack: "conntrack",
};
const state = {};
for (const collection of Object.values(KIND_TO_COLLECTION)) state[collection] = new Map();
const shown = { links: new Map(), addresses: new Map(), routes: new Map(), nft_rules: new Map(), nft_sets: new Map() };  // key -> <tr>

// A rule's statements in nft's own words, from the nft -j form the server sends.
function nftValue(value) {
  if (value === null || value === undefined) return "";
  if (typeof value !== "object") return String(value);
  if (Array.isArray(value)) return value.map(nftValue).join(" ");
  if (value.payload) return value.payload.protocol ? `${value.payload.protocol} ${value.payload.field}` : `@${value.payload.base},${value.payload.offset},${value.payload.len}`;
  if (value.meta) return `meta ${value.meta.key}`;
  if (value.prefix) return `${value.prefix.addr}/${value.prefix.len}`;
  if (value.range) return `${nftValue(value.range[0])}-${nftValue(value.range[1])}`;
  if (value.elem) return nftValue(value.elem.val);
  return JSON.stringify(value);
}

function nftStatement(statement) {
  const [name, body] = Object.entries(statement)[0];
  if (name === "match") return `${nftValue(body.left)} ${body.op === "==" ? "" : body.op + " "}${nftValue(body.right)}`;
  if (name === "jump" || name === "goto") return `${name} ${body.target}`;
  if (name === "counter") return `counter packets ${body.packets} bytes ${body.bytes}`;
  if (name === "log") return body && body.prefix !== undefined ? `log prefix "${body.prefix}"` : "log";
  if (body === null) return name;
  return `${name} ${JSON.stringify(body)}`;
}

function text(value) {
  if (value === undefined || value === null) return "";
  if (Array.isArray(value)) return value.join(",");
  return String(value);
}

function linkName(ifindex) {
  for (const link of state.links.values()) if (link.ifindex === ifindex) return link.ifname;
  return ifindex === undefined ? "" : String(ifindex);
}

const COLUMNS = {
  links: (o) => [o.ifindex, o.ifname, o.operstate, o.mtu, o.link_type, o.address, o.flags],
  addresses: (o) => [
    o.dev ?? o.ifname ?? linkName(o.ifindex),
    o.family,
    o.local !== undefined ? `${o.local}/${o.prefixlen}` : "",
    o.scope,
    o.label,
  ],
  routes: (o) => [o.dst, o.gateway, o.dev, o.protocol, o.scope, o.metric],
  nft_rules: (o) => [o.family, o.table, o.chain, o.handle, (o.expr || []).map(nftStatement).join(" "), o.comment],
  nft_sets: (o) => [o.family, o.table, o.name, o.type, (o.flags || []).join(","), elementCount(o)],
};

function elementCount(set) {
  let count = 0;
  for (const element of state.nft_elements.values()) {
    if (element.family === set.family && element.table === set.table && element.set === set.name) count += 1;
  }
  return count;
}

function refreshSets() {
  for (const [key, obj] of state.nft_sets) upsert("nft_sets", key, obj, false);
}

function makeRow(collection, key, obj) {
  const row = document.createElement("tr");
  row.dataset.key = key;
  if (collection === "links") row.dataset.ifname = text(obj.ifname);
  for (const value of COLUMNS[collection](obj)) {
    const cell = document.createElement("td");
    cell.textContent = text(value);  // never innerHTML: names come from the network
    row.appendChild(cell);
  }
  return row;
}

function placeRow(collection, row, obj) {
  const body = document.querySelector(`#${collection} tbody`);
  if (collection === "links") {  // keep ifindex order
    for (const other of body.children) {
      const index = Number(other.firstChild.textContent);
      if (index > obj.ifindex) { body.insertBefore(row, other); return; }
    }
  }
  body.appendChild(row);
}

// Routes: the main table, as `ip route` shows (a route names its table only
// when it is not main). The other tables stay in `state` and in /api/routes?table=all.
function visible(collection, obj) {
  return collection in shown && !(collection === "routes" && obj.table !== undefined);
}

function upsert(collection, key, obj, fresh) {
  state[collection].set(key, obj);
  if (!visible(collection, obj)) return;
  const row = makeRow(collection, key, obj);
  if (fresh) row.classList.add("fresh");
  const old = shown[collection].get(key);
  if (old) old.replaceWith(row); else placeRow(collection, row, obj);
  shown[collection].set(key, row);
}

function remove(collection, key) {
  state[collection].delete(key);
  if (!(collection in shown)) return;
  const row = shown[collection].get(key);
  if (row) row.remove();
  shown[collection].delete(key);
}

function updateCounts() {
  for (const element of document.querySelectorAll("[data-count]")) {
    const collection = element.dataset.count;
    element.textContent = String(collection in shown ? shown[collection].size : state[collection].size);
  }
}

function resync(snapshot) {
  for (const collection of Object.keys(state)) {
    state[collection].clear();
    if (collection in shown) {
      shown[collection].clear();
      document.querySelector(`#${collection} tbody`).replaceChildren();
    }
    const objects = snapshot[collection] || {};
    // links first so addresses can name their device
    for (const [key, obj] of Object.entries(objects)) upsert(collection, key, obj, false);
  }
  refreshSets();  // element counts, now that every element is in
  scheduleConntrack();
  updateCounts();
}

// Connection tracking: a summary (count, per protocol, per state), not one
// row per entry (the table may hold thousands). Redrawn at most ten times a second.
let conntrackPending = false;
function countBy(values) {
  const counts = new Map();
  for (const value of values) counts.set(value, (counts.get(value) || 0) + 1);
  return [...counts.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
}
function renderConntrack() {
  conntrackPending = false;
  const flows = [...state.conntrack.values()];
  document.getElementById("conntrack-count").textContent = String(flows.length);
  const rows = [];
  for (const [name, count] of countBy(flows.map((flow) => flow.protocol))) rows.push(["protocol", name, count]);
  for (const [name, count] of countBy(flows.filter((flow) => flow.state).map((flow) => flow.state))) rows.push(["state", name, count]);
  const body = document.querySelector("#conntrack-summary tbody");
  body.replaceChildren(...rows.map((values) => {
    const row = document.createElement("tr");
    row.dataset.key = `${values[0]}:${values[1]}`;
    for (const value of values) {
      const cell = document.createElement("td");
      cell.textContent = text(value);
      row.appendChild(cell);
    }
    return row;
  }));
}
function scheduleConntrack() {
  if (conntrackPending) return;
  conntrackPending = true;
  setTimeout(renderConntrack, 100);  // not requestAnimationFrame: it never fires in a hidden tab
}

function setConnection(stateName, label) {
  const element = document.getElementById("connection");
  element.dataset.state = stateName;
  element.textContent = label;
}

function connect() {
  const events = new EventSource("/api/events");
  events.onopen = () => setConnection("live", "live");
  events.onerror = () => setConnection("reconnecting", "reconnecting…");
  events.addEventListener("resync", (event) => {
    const message = JSON.parse(event.data);
    resync(message.state);
    document.getElementById("event-id").textContent = event.lastEventId;
    document.body.dataset.resyncs = String(Number(document.body.dataset.resyncs || 0) + 1);
  });
  events.addEventListener("change", (event) => {
    const change = JSON.parse(event.data);
    const collection = KIND_TO_COLLECTION[change.kind];
    if (!collection) return;
    if (change.action === "del") remove(collection, change.key);
    else upsert(collection, change.key, change.obj, true);
    if (collection === "nft_elements") refreshSets();
    if (collection === "conntrack") scheduleConntrack();
    updateCounts();
    document.getElementById("event-id").textContent = event.lastEventId;
  });
  return events;
}

window.netstate = { state, events: connect() };
