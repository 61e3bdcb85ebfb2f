// Shared helpers: CSRF-protected JSON requests, small forms and buttons that call the API.
"use strict";

const MH = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
  const i18n = () => JSON.parse(document.body.dataset.i18n || "{}");

  async function api(method, url, body) {
    const opts = {
      method,
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf(), Accept: "application/json" },
    };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const resp = await fetch(url, opts);
    if (resp.status === 401) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
      throw new Error("unauthenticated");
    }
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) {
      const msg = (data && (data.message + (data.details ? ": " + data.details.join("; ") : ""))) || resp.statusText;
      throw new Error(msg);
    }
    return data;
  }

  function toast(text, bad) {
    const el = document.getElementById("toast");
    if (!el) return;
    el.textContent = text;
    el.className = bad ? "bad" : "ok";
    el.hidden = false;
    clearTimeout(toast._t);
    toast._t = setTimeout(() => { el.hidden = true; }, 4000);
  }

  // Every time on a page is on the site's clock (the server renders the same), whatever
  // zone the browser's computer is set to; the page's footer names the zone once.
  let siteClock = null;
  function localTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return "";
    if (!siteClock) {
      siteClock = new Intl.DateTimeFormat("en-GB", {
        timeZone: document.body.dataset.tz || "Asia/Shanghai",
        year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
      });
    }
    const part = {};
    for (const p of siteClock.formatToParts(d)) part[p.type] = p.value;
    return `${part.year}-${part.month}-${part.day} ${part.hour}:${part.minute}:${part.second}`;
  }

  // An event's state as the console says it: only an alarm is a "new alarm".
  function stateWord(state, category) {
    const t = i18n();
    if (state === "new" && (category === "fault" || category === "info")) return t["st_new_" + category];
    return t["st_" + state] || state;
  }

  // <form class="api-form" data-api=URL data-method=POST>: fields → JSON body, then reload.
  document.addEventListener("submit", async (ev) => {
    const form = ev.target;
    if (!form.classList || !form.classList.contains("api-form")) return;
    ev.preventDefault();
    const body = {};
    for (const [k, v] of new FormData(form).entries()) {
      if (v !== "") body[k] = v;
    }
    try {
      await api(form.dataset.method || "POST", form.dataset.api, body);
      location.reload();
    } catch (e) {
      toast(i18n().failed + ": " + e.message, true);
    }
  });

  // <button data-api=URL data-body='{}'>: POST and reload.
  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("button[data-api]");
    if (!btn) return;
    try {
      await api("POST", btn.dataset.api, JSON.parse(btn.dataset.body || "{}"));
      location.reload();
    } catch (e) {
      toast(i18n().failed + ": " + e.message, true);
    }
  });

  return { api, toast, i18n, localTime, stateWord };
})();

// Event page: acknowledge / close buttons outside the console.
document.addEventListener("click", async (ev) => {
  const btn = ev.target.closest(".story [data-act]");
  if (!btn) return;
  const box = btn.closest(".a-actions");
  const id = box.dataset.eventId;
  const note = box.querySelector(".a-note").value.trim();
  try {
    if (btn.dataset.act === "acknowledge") {
      await MH.api("POST", `/api/v1/events/${id}/acknowledge`, note ? { note } : {});
    } else {
      const disposition = box.querySelector("select[name=disposition]").value;
      await MH.api("POST", `/api/v1/events/${id}/close`, note ? { disposition, note } : { disposition });
    }
    location.reload();
  } catch (e) {
    MH.toast(MH.i18n().failed + ": " + e.message, true);
  }
});
