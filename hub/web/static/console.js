// The alarm console: live events over server-sent events (EventSource reconnects by itself),
// a sound for new alarms, priority colours, filters, acknowledge and close.
"use strict";

(() => {
  const list = document.getElementById("alarms");
  const tpl = document.getElementById("alarm-tpl");
  const live = document.getElementById("live");
  const empty = document.getElementById("empty");
  const sound = document.getElementById("alert-sound");
  const t = MH.i18n();
  const lang = document.body.dataset.lang;
  let soundOn = false;
  let reloadTimer = null;

  const filters = {
    floor: document.getElementById("f-floor"),
    zone: document.getElementById("f-zone"),
    priority: document.getElementById("f-priority"),
    state: document.getElementById("f-state"),
  };

  function applyFilters() {
    let shown = 0;
    for (const el of list.querySelectorAll(".alarm")) {
      const d = el.dataset;
      const ok = (!filters.floor.value || d.floor === filters.floor.value)
        && (!filters.zone.value || d.zone === filters.zone.value)
        && (!filters.priority.value || d.priority === filters.priority.value)
        && (!filters.state.value || d.state === filters.state.value);
      el.hidden = !ok;
      if (ok) shown += 1;
    }
    empty.hidden = shown > 0;
  }
  for (const f of Object.values(filters)) f.addEventListener("change", applyFilters);

  function setState(el, state, by) {
    el.dataset.state = state;
    el.classList.remove("es-new", "es-acknowledged", "es-closed");
    el.classList.add("es-" + state);
    const s = el.querySelector(".estate");
    const category = el.dataset.category;
    const quiet = state === "new" && (category === "fault" || category === "info");
    s.className = "estate es-" + state + (quiet ? " quiet" : "");
    s.textContent = MH.stateWord(state, category);
    const ack = el.querySelector('[data-act="acknowledge"]');
    if (ack) ack.hidden = state !== "new";
    if (by) el.querySelector(".a-by").textContent = `${t.by}: ${by}`;
  }

  function render(e) {
    const el = tpl.content.firstElementChild.cloneNode(true);
    el.dataset.eventId = e.event_id;
    el.dataset.floor = e.floor || "";
    el.dataset.zone = e.zone || "";
    el.dataset.priority = String(e.priority);
    el.dataset.category = e.category || "alarm";
    el.className = `alarm p${e.priority} es-${e.state}`;
    const prio = el.querySelector(".prio");
    prio.className = `prio p${e.priority}`;
    prio.textContent = t["p" + e.priority] || "P" + e.priority;
    el.querySelector(".a-kind").textContent = lang === "en" ? e.text.en : e.text.zh;
    const time = el.querySelector(".a-time");
    time.dateTime = e.received_at || "";
    time.textContent = MH.localTime(e.received_at);
    el.querySelector(".a-device").textContent = e.device_name || e.device_id || "";
    el.querySelector(".a-floor").textContent = e.floor || "";
    el.querySelector(".a-zone").textContent = e.zone || "";
    el.querySelector(".a-camnames").textContent = (e.cameras || []).map((c) => c.name).join(", ");
    el.querySelector(".a-cams").hidden = !(e.cameras || []).length;
    if (e.test_mode) {
      const tag = document.createElement("span");
      tag.className = "tag test";
      tag.textContent = t.test_event;
      el.querySelector(".a-head").insertBefore(tag, time);
    }
    const story = el.querySelector(".a-story");
    if (story) story.href = "/events/" + e.event_id;
    setState(el, e.state, e.state_by);
    return el;
  }

  async function refreshSnapshots(el) {
    try {
      const story = await MH.api("GET", "/api/v1/events/" + el.dataset.eventId);
      const box = el.querySelector(".a-snaps");
      box.replaceChildren();
      for (const s of story.snapshots) {
        const a = document.createElement("a");
        a.href = s.url; a.target = "_blank"; a.rel = "noopener";
        const img = document.createElement("img");
        img.src = s.url; img.alt = s.camera_name; img.title = s.camera_name;
        a.appendChild(img);
        box.appendChild(a);
      }
    } catch (e) { /* the next update tries again */ }
  }

  function onEvent(e) {
    if (e.category === "info" || e.priority > 3) return;
    if (list.querySelector(`[data-event-id="${CSS.escape(e.event_id)}"]`)) return;
    const el = render(e);
    el.classList.add("fresh");
    list.prepend(el);
    applyFilters();
    if (soundOn && sound) {
      sound.currentTime = 0;
      sound.play().catch(() => {});
    }
  }

  function onUpdate(u) {
    const el = list.querySelector(`[data-event-id="${CSS.escape(u.event_id || "")}"]`);
    if (!el) return;
    if (u.state) {
      if (u.state.state === "closed") { el.remove(); applyFilters(); return; }
      setState(el, u.state.state, u.state.by);
      applyFilters();
    }
    if (u.attachments) refreshSnapshots(el);
  }

  // Reload the open alarms from the API (after a reconnect we may have missed some).
  async function resync() {
    try {
      const page = await MH.api("GET", "/api/v1/events?state=new,acknowledged&max_priority=3&limit=200");
      const keep = new Set(page.items.map((e) => e.event_id));
      for (const el of list.querySelectorAll(".alarm")) {
        if (!keep.has(el.dataset.eventId)) el.remove();
      }
      for (const e of page.items.slice().reverse()) {
        const el = list.querySelector(`[data-event-id="${CSS.escape(e.event_id)}"]`);
        if (el) setState(el, e.state, e.state_by);
        else list.prepend(render(e));
      }
      applyFilters();
    } catch (e) { /* shown by the live indicator */ }
  }

  function connect() {
    const es = new EventSource("/api/v1/live");
    let first = true;
    es.onopen = () => {
      live.textContent = live.dataset.ok;
      live.className = "live on";
      if (!first) resync();
      first = false;
    };
    es.onerror = () => {
      live.textContent = live.dataset.bad;
      live.className = "live off";
      if (es.readyState === EventSource.CLOSED) {
        // The server refused (e.g. logged out): try again, the API call sends us to login.
        clearTimeout(reloadTimer);
        reloadTimer = setTimeout(() => { resync(); connect(); }, 3000);
      }
    };
    es.onmessage = (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch (e) { return; }
      if (msg.type === "hello") { live.textContent = live.dataset.ok; live.className = "live on"; }
      else if (msg.type === "event") onEvent(msg.event);
      else if (msg.type === "update") onUpdate(msg);
      else if (msg.type === "resync") resync();
    };
  }

  list.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("[data-act]");
    if (!btn) return;
    const el = btn.closest(".alarm");
    const id = el.dataset.eventId;
    const note = el.querySelector(".a-note").value.trim();
    btn.disabled = true;
    try {
      if (btn.dataset.act === "acknowledge") {
        const r = await MH.api("POST", `/api/v1/events/${id}/acknowledge`, note ? { note } : {});
        setState(el, r.state);
      } else if (btn.dataset.act === "close") {
        const disposition = el.querySelector("select[name=disposition]").value;
        await MH.api("POST", `/api/v1/events/${id}/close`, note ? { disposition, note } : { disposition });
        el.remove();
      }
      applyFilters();
    } catch (e) {
      MH.toast(t.failed + ": " + e.message, true);
    } finally {
      btn.disabled = false;
    }
  });

  document.getElementById("sound").addEventListener("click", (ev) => {
    soundOn = !soundOn;
    ev.target.textContent = soundOn ? t.sound_enabled : t.sound_on;
    ev.target.classList.toggle("on", soundOn);
    if (soundOn && sound) sound.play().then(() => sound.pause()).catch(() => {});
  });

  applyFilters();
  connect();
})();
