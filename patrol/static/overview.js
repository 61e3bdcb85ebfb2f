"use strict";
// The city overview: malls (sortable, filterable by district), the live alarm queue, acks.
(() => {
  const t = JSON.parse(document.body.dataset.strings);
  const lang = document.body.dataset.lang;
  let csrf = "";
  let malls = [];
  let sort = "site_id";
  let desc = false;
  const alarms = new Map();
  const names = new Map();

  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  };
  const when = (iso) => (iso ? new Date(iso).toLocaleString(lang) : "");
  const api = (path, opts = {}) =>
    fetch(path, { credentials: "same-origin", ...opts }).then((r) => {
      if (r.status === 401) window.location.assign("/login");
      return r;
    });

  function renderMalls() {
    const district = document.getElementById("district").value;
    const rows = malls
      .filter((m) => !district || m.district === district)
      .sort((a, b) => {
        const x = a[sort], y = b[sort];
        const c = x < y ? -1 : x > y ? 1 : a.site_id < b.site_id ? -1 : 1;
        return desc ? -c : c;
      });
    const body = document.querySelector("#malls tbody");
    body.replaceChildren();
    for (const m of rows) {
      const tr = el("tr");
      tr.dataset.site = m.site_id;
      tr.className = m.online ? "online" : "offline";
      tr.append(el("td", m.name), el("td", m.district));
      const conn = m.online
        ? t.online
        : m.state === "offline"
          ? `${t.offline} · ${t.offline_since} ${when(m.offline_since)}`
          : t.unknown;
      tr.append(el("td", conn, "conn"));
      const prio = Object.entries(m.open_alarms_by_priority)
        .map(([p, n]) => `P${p}×${n}`)
        .join(" ");
      tr.append(el("td", m.open_alarms ? `${m.open_alarms} (${prio})` : "0", "open"));
      const c = m.compliance;
      tr.append(el("td", c ? t[c.overall] || c.overall : t.unknown, "compliance"));
      tr.append(el("td", `${m.devices_offline}/${m.devices}`, "devoff"));
      tr.append(el("td", m.receipts_outstanding, "receipts"));
      const notices = el("td", null, "notices");
      if (m.notices_open) {
        const late = m.notices_overdue ? ` (${t.overdue} ${m.notices_overdue})` : "";
        const a = el("a", `${m.notices_open}${late}`);
        a.href = `/notices?site_id=${encodeURIComponent(m.site_id)}`;
        notices.append(a);
      } else {
        notices.textContent = "0";
      }
      tr.append(notices);
      const go = el("a", t.inspect, "inspect");
      go.href = `/inspections?site_id=${encodeURIComponent(m.site_id)}`;
      const td = el("td");
      td.append(go);
      tr.append(td);
      body.append(tr);
    }
    const off = malls.filter((m) => !m.online).length;
    document.getElementById("summary").textContent =
      `${t.malls_total}: ${malls.length} · ${t.malls_offline}: ${off}`;
  }

  function renderDistricts() {
    const sel = document.getElementById("district");
    const have = new Set([...sel.options].map((o) => o.value));
    for (const d of [...new Set(malls.map((m) => m.district))].sort()) {
      if (d && !have.has(d)) sel.append(new Option(d, d));
    }
  }

  async function loadMalls() {
    const r = await api("/api/v1/malls");
    if (!r.ok) return;
    malls = (await r.json()).malls;
    for (const m of malls) names.set(m.site_id, m.name);
    renderDistricts();
    renderMalls();
  }

  function renderAlarms() {
    const body = document.querySelector("#alarms tbody");
    body.replaceChildren();
    const list = [...alarms.values()]
      .filter((a) => a.state === "open" || a.state === "ack_sent")
      .sort((a, b) => a.priority - b.priority || (a.stored_at < b.stored_at ? 1 : -1));
    for (const a of list) {
      const tr = el("tr", null, `p${a.priority}`);
      tr.dataset.event = a.event_id;
      tr.append(
        el("td", `P${a.priority}`),
        el("td", when(a.occurred_at)),
        el("td", names.get(a.site_id) || a.site_id),
        el("td", lang === "en" ? a.text?.en || a.kind : a.text?.zh || a.kind),
        el("td", a.device_id),
        el("td", t[`st_${a.state}`] || a.state, "state"),
      );
      const td = el("td");
      if (a.state === "open") {
        const b = el("button", t.acknowledge, "ack");
        b.addEventListener("click", () => ack(a.event_id, b));
        td.append(b);
      }
      tr.append(td);
      body.append(tr);
    }
    document.getElementById("no-alarms").hidden = list.length > 0;
  }

  async function loadAlarms() {
    const r = await api("/api/v1/alarms?state=open&limit=1000");
    if (!r.ok) return;
    for (const a of (await r.json()).alarms) alarms.set(a.event_id, a);
    renderAlarms();
  }

  async function ack(eventId, button) {
    button.disabled = true;
    const r = await api(`/api/v1/alarms/${encodeURIComponent(eventId)}/ack`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: "{}",
    });
    if (r.ok) {
      const got = await r.json();
      if (got.alarm) alarms.set(eventId, got.alarm);
    } else {
      button.disabled = false;
    }
    renderAlarms();
  }

  let mallsTimer = null;
  function live() {
    const src = new EventSource("/api/v1/live");
    const state = document.getElementById("live-state");
    src.onopen = () => { state.textContent = t.live; state.className = "up"; };
    src.onerror = () => { state.textContent = t.reconnecting; state.className = "down"; };
    src.addEventListener("alarm", (ev) => {
      const a = JSON.parse(ev.data);
      a.text = { zh: a.text_zh, en: a.text_en };
      alarms.set(a.event_id, a);
      renderAlarms();
    });
    src.addEventListener("state", (ev) => {
      const s = JSON.parse(ev.data);
      const a = alarms.get(s.event_id);
      if (a) { a.state = s.state; renderAlarms(); }
    });
    src.addEventListener("malls", () => {
      if (mallsTimer === null) {
        mallsTimer = setTimeout(() => { mallsTimer = null; loadMalls(); }, 500);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const me = await api("/api/v1/me");
    if (!me.ok) return;
    const who = await me.json();
    csrf = who.csrf_token;
    document.getElementById("who").textContent = `${who.display_name || who.name} (${t[`urole_${who.role}`] || who.role})`;
    document.getElementById("district").addEventListener("change", renderMalls);
    for (const th of document.querySelectorAll("#malls th.sortable")) {
      th.addEventListener("click", () => {
        desc = sort === th.dataset.sort ? !desc : false;
        sort = th.dataset.sort;
        renderMalls();
      });
    }
    document.getElementById("logout").addEventListener("click", async () => {
      await api("/api/v1/session", { method: "DELETE", headers: { "X-CSRF-Token": csrf } });
      window.location.assign("/login");
    });
    live();
    await loadMalls();
    await loadAlarms();
  });
})();
