// Notice page: the mall's answer (a note, fresh snapshots, device states) to the police.
"use strict";

document.addEventListener("submit", async (ev) => {
  const form = ev.target;
  if (form.id !== "answer-form") return;
  ev.preventDefault();
  const data = new FormData(form);
  const body = {
    note: String(data.get("note") || "").trim(),
    cameras: data.getAll("cameras").map(String),
    devices: data.getAll("devices").map(String),
  };
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await MH.api("POST", `/api/v1/notices/${encodeURIComponent(form.dataset.notice)}/answer`, body);
    location.reload();
  } catch (e) {
    MH.toast(MH.i18n().failed + ": " + e.message, true);
    button.disabled = false;
  }
});
