// The device board: refreshed from the API on live device changes (and every few seconds),
// "probe now", test mode on/off, and the "not online" filter.
"use strict";

(() => {
  const board = document.getElementById("board");
  const notOnline = document.getElementById("not-online");
  const t = MH.i18n();
  const REFRESH_MS = 5000;
  let pending = null;

  function fmt(v, unit, digits) {
    return v === null || v === undefined ? "—" : `${Number(v).toFixed(digits)} ${unit}`;
  }

  function update(d) {
    const el = board.querySelector(`[data-device-id="${CSS.escape(d.id)}"]`);
    if (!el) return;
    el.dataset.state = d.state;
    el.className = `tile ds-${d.state}`;
    const s = el.querySelector(".dstate");
    s.className = `dstate ds-${d.state}`;
    s.textContent = t["ds_" + d.state] || d.state;
    el.querySelector(".d-seen").textContent = d.last_seen ? MH.localTime(d.last_seen) : "—";
    el.querySelector(".d-latency").textContent = fmt(d.latency_ms, "ms", 0);
    el.querySelector(".d-clock").textContent = fmt(d.clock_offset_s, "s", 1);
    const video = el.querySelector(".d-video");
    if (video) video.textContent = d.video || "—";
    el.querySelector(".d-reason").textContent = d.reason || "";
    const ul = el.querySelector(".d-findings");
    ul.replaceChildren();
    for (const f of d.findings) {
      const li = document.createElement("li");
      li.className = f.warning ? "warn" : "bad";
      li.textContent = document.body.dataset.lang === "en" ? f.en : f.zh;
      ul.appendChild(li);
    }
    const thumb = el.querySelector(".thumb");
    if (thumb && d.thumbnail_url && !thumb.querySelector("img")) {
      const img = document.createElement("img");
      img.src = d.thumbnail_url; img.alt = d.name;
      thumb.appendChild(img);
    }
    const test = el.querySelector(".d-test");
    test.hidden = !d.test_mode_until;
    el.querySelector(".d-test-until").textContent = d.test_mode_until ? MH.localTime(d.test_mode_until) : "";
    const on = el.querySelector('[data-act="test-on"]');
    const off = el.querySelector('[data-act="test-off"]');
    if (on) on.hidden = Boolean(d.test_mode_until);
    if (off) off.hidden = !d.test_mode_until;
  }

  async function refresh() {
    try {
      const data = await MH.api("GET", "/api/v1/devices");
      for (const d of data.items) update(d);
      for (const el of document.querySelectorAll("[data-count]")) {
        el.textContent = data.counts[el.dataset.count] || 0;
      }
      applyFilter();
    } catch (e) { /* next round */ }
  }

  function soon() {
    if (pending) return;
    pending = setTimeout(() => { pending = null; refresh(); }, 200);
  }

  function applyFilter() {
    board.classList.toggle("only-bad", notOnline.checked);
    for (const g of board.querySelectorAll(".group")) {
      const visible = [...g.querySelectorAll(".tile")].some((el) => !notOnline.checked || el.dataset.state !== "online");
      g.hidden = !visible;
    }
  }
  notOnline.addEventListener("change", () => {
    const u = new URL(location.href);
    if (notOnline.checked) u.searchParams.set("not_online", "1"); else u.searchParams.delete("not_online");
    history.replaceState(null, "", u);
    applyFilter();
  });

  board.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("[data-act]");
    if (!btn) return;
    const id = btn.closest(".tile").dataset.deviceId;
    btn.disabled = true;
    try {
      if (btn.dataset.act === "probe") {
        await MH.api("POST", `/api/v1/devices/${encodeURIComponent(id)}/probe`);
        MH.toast(t.probe_requested);
      } else if (btn.dataset.act === "test-on") {
        await MH.api("POST", "/api/v1/test-mode", { target: id, minutes: 30 });
      } else if (btn.dataset.act === "test-off") {
        await MH.api("DELETE", `/api/v1/test-mode/${encodeURIComponent(id)}`);
      }
      await refresh();
    } catch (e) {
      MH.toast(t.failed + ": " + e.message, true);
    } finally {
      btn.disabled = false;
    }
  });

  const es = new EventSource("/api/v1/live");
  es.onmessage = (m) => {
    try {
      const msg = JSON.parse(m.data);
      if (msg.type === "device_state" || msg.type === "resync") soon();
    } catch (e) { /* ignore */ }
  };
  es.onopen = soon;
  setInterval(refresh, REFRESH_MS);
  applyFilter();
})();
