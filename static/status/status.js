// The live status page: /status.json every 2 s, rendered as a table (no framework, no CDN).
"use strict";

const fmt = (v, digits = 1) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
const pct = (v) => (v === null || v === undefined ? "–" : (v * 100).toFixed(1) + "%");

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
}

function render(status) {
  const body = document.querySelector("#sources tbody");
  body.replaceChildren();
  for (const s of status.sources) {
    const row = body.insertRow();
    row.className = s.state;
    row.dataset.source = s.name;
    cell(row, s.name);
    cell(row, s.kind);
    cell(row, s.state, "state");
    cell(row, s.circuit);
    cell(row, fmt(s.p50_ms), "num");
    cell(row, fmt(s.p99_ms), "num");
    cell(row, pct(s.error_rate), "num");
    cell(row, fmt(s.per_second, 2), "num");
    cell(row, s.last_error || "");
  }
  const down = status.sources.filter((s) => s.state === "down").map((s) => s.name);
  const cache = status.cache
    ? `cache ${status.cache.entries} entries, ${(status.cache.bytes / 1048576).toFixed(1)} MiB, hit rate ${pct(status.cache.hit_rate)}`
    : "cache off";
  document.querySelector("#summary").textContent =
    `${fmt(status.requests.per_second, 2)} requests/s (last minute) · ${cache} · ` +
    (down.length ? `DOWN: ${down.join(", ")}` : "every source up");
  document.querySelector("#updated").textContent =
    `updated ${new Date().toLocaleTimeString()}; figures over the last ${status.window_s / 60} minutes`;
}

async function refresh() {
  try {
    const answer = await fetch("/status.json", { cache: "no-store" });
    render(await answer.json());
  } catch (err) {
    document.querySelector("#summary").textContent = `the gateway does not answer (${err})`;
  }
}

refresh();
setInterval(refresh, 2000);
