// Live view of the service's state: one EventSource, no framework, no build step.
//
// The server sends "resync" (the whole state: {reason, state: {links: {key: obj}, ...}})
// when we connect or fall behind, then one "change" ({action, kind, key, obj}) per
// change. Rows are keyed by the server's object key, so a "del" finds the row its
// "new" made. EventSource reconnects by itself and sends Last-Event-ID, so the
// server can replay what we missed (or resync us).
"use strict";

const KIND_TO_COLLECTION = { link: "links", address: "addresses", route: "routes", neighbour: "neighbours", rule: "rules" };
const state = { links: new Map(), addresses: new Map(), routes: new Map(), neighbours: new Map(), rules: new Map() };
const shown = { links: new Map(), addresses: new Map(), routes: new Map() };  // key -> <tr>

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
};

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
  updateCounts();
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
    updateCounts();
    document.getElementById("event-id").textContent = event.lastEventId;
  });
  return events;
}

window.netstate = { state, events: connect() };
