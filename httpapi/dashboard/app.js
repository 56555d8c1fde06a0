"use strict";
// Renders /v1/cluster every two seconds. Every value goes through
// textContent, never innerHTML.
const REFRESH_MS = 2000;

function $(id) { return document.getElementById(id); }

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells, tag) {
  const tr = el("tr");
  for (const c of cells) tr.appendChild(c instanceof Element ? c : el(tag || "td", c));
  return tr;
}

function fill(target, children) {
  target.replaceChildren(...children);
}

function renderRegions(cs) {
  const cards = (cs.regions || []).map((r) => {
    const card = el("div", null, "card");
    card.appendChild(el("b", r));
    for (const n of (cs.nodes || []).filter((n) => n.region === r)) {
      const line = el("div", "node " + n.id + (n.zone ? " (" + n.zone + ")" : ""), n.reachable ? "" : "down");
      if (!n.reachable) line.textContent += " unreachable";
      card.appendChild(line);
    }
    return card;
  });
  fill($("regions"), cards);
}

function renderNodes(cs) {
  const rows = [row(["node", "region", "zone", "raft", "resp", "http", "reachable", ""], "th")];
  for (const n of cs.nodes || []) {
    const reach = el("td", n.reachable ? "yes" : "no", n.reachable ? "ok" : "down");
    const notes = [];
    if (n.id === cs.system_leader) notes.push("metadata leader");
    if (n.id === cs.node) notes.push("answering this page");
    rows.push(row([n.id, n.region, n.zone || "", n.addr, n.resp_addr || "", n.http_addr || "", reach, el("td", notes.join(", "), "muted")]));
  }
  fill($("nodes"), rows);
}

function renderRTT(cs) {
  const ids = (cs.nodes || []).map((n) => n.id);
  const rtt = cs.rtt_ms || {};
  const rows = [row([""].concat(ids.map((id) => "→ " + id)), "th")];
  for (const a of ids) {
    const cells = [el("th", a)];
    for (const b of ids) {
      const v = (rtt[a] || {})[b];
      if (a === b) cells.push(el("td", "·", "muted"));
      else if (v === undefined) cells.push(el("td", "?", "muted"));
      else cells.push(el("td", v.toFixed(1)));
    }
    rows.push(row(cells));
  }
  fill($("rtt"), rows);
}

function renderKeyspaces(cs) {
  const regionOf = {};
  for (const n of cs.nodes || []) regionOf[n.id] = n.region;
  const out = [];
  for (const ks of cs.keyspaces || []) {
    out.push(el("h3", ks.name));
    out.push(el("div", ks.strategy + ", regions " + (ks.regions || []).join(", ") + ", home " + ks.home_region +
      ", " + (ks.shards || []).length + " shards, " + ks.replicas + " replicas", "muted"));
    const t = el("table");
    t.appendChild(row(["shard", "group", "replicas", "leader", "leader region", "term", "commit", "applied here"], "th"));
    for (const sh of ks.shards || []) {
      const leader = sh.leader ? el("td", sh.leader, sh.leader_region === ks.home_region ? "lead ok" : "lead err") : el("td", "none", "err");
      const replicas = (sh.replicas || []).map((id) => id + " (" + (regionOf[id] || "?") + ")").join(", ");
      t.appendChild(row([sh.index, sh.group, replicas, leader, sh.leader_region || "", sh.term || "", sh.commit || "", sh.applied || ""]));
    }
    out.push(t);
  }
  if (out.length === 0) out.push(el("p", "No keyspaces yet.", "muted"));
  fill($("keyspaces"), out);
}

async function refresh() {
  const status = $("status");
  try {
    const r = await fetch("v1/cluster", { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    const cs = await r.json();
    $("answered").textContent = "node " + cs.node + ", " + cs.region;
    renderRegions(cs);
    renderNodes(cs);
    renderRTT(cs);
    renderKeyspaces(cs);
    status.textContent = "updated " + new Date().toLocaleTimeString();
    status.className = "ok";
  } catch (e) {
    status.textContent = "cannot reach the node: " + e.message;
    status.className = "err";
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
