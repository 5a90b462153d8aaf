// Draws the history page's charts with the vendored Chart.js from the JSON the server embedded.
// The numbers themselves are in the HTML already; this only adds the pictures.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("history-data").textContent);

  // Labelling an incident (the buttons are there for those who may edit the DAG): PUT the label,
  // then show the page again with it. What the server says goes in as text, never as HTML.
  document.querySelectorAll(".label-buttons button").forEach((button) => {
    button.addEventListener("click", async () => {
      const note = window.prompt(`Label this incident ${button.dataset.value}. A note (optional):`, "");
      if (note === null) return;
      const row = button.parentElement;
      const response = await fetch(`api/incidents/${encodeURIComponent(row.dataset.incident)}/label`, {
        method: "PUT",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ value: button.dataset.value, note: note || null }),
      });
      if (response.ok) return window.location.reload();
      const detail = (await response.json().catch(() => ({}))).detail;
      row.querySelector(".label-error").textContent = typeof detail === "string" ? detail
        : (detail && detail[0] && detail[0].msg) || `HTTP ${response.status}`;
    });
  });
  const COLORS = { bar: "#4a7fc1", warning: "#d99a00", critical: "#c62828", ok: "#2e7d32", rate: "#6a1b9a" };
  const longRange = data.window.range !== "24h";
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;

  function pad(n) { return String(n).padStart(2, "0"); }
  function hourLabel(iso) {
    const d = new Date(iso);
    const hour = pad(d.getUTCHours()) + ":00";
    return longRange ? `${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${hour}` : hour;
  }
  function stamp(ms) {
    const d = new Date(ms);
    return `${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  }
  function constant(label, value, length, color, axis) {
    return {
      type: "line", label: label, data: Array(length).fill(value), borderColor: color, borderWidth: 2,
      borderDash: [6, 4], pointRadius: 0, pointHitRadius: 0, fill: false, yAxisID: axis || "y", order: 0,
    };
  }

  // Cleanups per hour, against the alert thresholds.
  const hourly = data.cleanups;
  const t = data.thresholds;
  new Chart(document.getElementById("hourly-chart"), {
    data: {
      labels: hourly.hours.map(hourLabel),
      datasets: [
        {
          type: "bar", label: "Cleanups", data: hourly.cleanups, order: 1,
          backgroundColor: hourly.cleanups.map((n) => n >= t.critical ? COLORS.critical : n >= t.warning ? COLORS.warning : COLORS.bar),
        },
        constant(`WARNING (${t.warning})`, t.warning, hourly.hours.length, COLORS.warning),
        constant(`CRITICAL (${t.critical})`, t.critical, hourly.hours.length, COLORS.critical),
      ],
    },
    options: {
      scales: {
        x: { ticks: { autoSkip: true, maxRotation: 0, maxTicksLimit: longRange ? 10 : 12 }, grid: { display: false } },
        y: { beginAtZero: true, suggestedMax: t.critical + 1, ticks: { precision: 0 }, title: { display: true, text: "cleanups / hour" } },
      },
      plugins: { legend: { position: "bottom" } },
    },
  });

  // Batches auto-completed per day, with the rate against the target.
  const daily = data.daily;
  const target = data.rate_target * 100;
  new Chart(document.getElementById("daily-chart"), {
    data: {
      labels: daily.map((d) => d.day.slice(5)),
      datasets: [
        { type: "bar", label: "Batches auto-completed", data: daily.map((d) => d.stalled), backgroundColor: COLORS.bar, yAxisID: "y", order: 1 },
        {
          type: "line", label: "Rate (%)", data: daily.map((d) => d.rate === null ? null : d.rate * 100), yAxisID: "rate",
          borderColor: COLORS.rate, backgroundColor: COLORS.rate, spanGaps: false, order: 0,
        },
        constant(`Target (${target} %)`, target, daily.length, COLORS.ok, "rate"),
      ],
    },
    options: {
      scales: {
        y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "batches" } },
        rate: {
          position: "right", beginAtZero: true, suggestedMax: target * 2, grid: { drawOnChartArea: false },
          ticks: { callback: (v) => `${v} %` }, title: { display: true, text: "rate" },
        },
      },
      plugins: { legend: { position: "bottom" } },
    },
  });

  // The alert timeline: one bar per incident, from start to end (now, while open).
  const canvas = document.getElementById("incident-chart");
  if (canvas) {
    const start = Date.parse(data.window.start);
    const end = Date.parse(data.window.end);
    const now = Date.parse(data.generated_at);
    const incidents = data.incidents.slice().reverse();
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: incidents.map((i) => stamp(Date.parse(i.opened_at))),
        datasets: [{
          label: "Incident",
          data: incidents.map((i) => [Math.max(Date.parse(i.opened_at), start), i.closed_at ? Date.parse(i.closed_at) : now]),
          backgroundColor: incidents.map((i) => i.peak_severity === "CRITICAL" ? COLORS.critical : COLORS.warning),
          minBarLength: 3,
        }],
      },
      options: {
        indexAxis: "y",
        scales: {
          x: {
            type: "linear", min: start, max: end,
            ticks: { callback: stamp, stepSize: { "24h": 3, "7d": 24, "30d": 120 }[data.window.range] * 3600e3 },
          },
        },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: (ctx) => {
                const i = incidents[ctx.dataIndex];
                return `${i.peak_severity}, ${i.duration}${i.open ? " (open)" : ""}, peak ${i.peak_count}`;
              },
            },
          },
        },
      },
    });
  }
  document.body.dataset.chartsReady = "true";
})();
